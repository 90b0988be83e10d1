"""The Anthropic stream translation alone, for valgrind: N delta events -> OpenAI chunks.

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python bench/icount_translate.py "$PWD" 2000 [text|tool]   # and with 0; difference / 2000

The first argument is the tree to import ``gateway`` from (compare two checkouts); the third
the kind of delta: ``text`` (default) or ``tool`` (a tool call's ``input_json_delta``).
"""

from __future__ import annotations

import importlib
import sys


def main() -> None:
    root, n = sys.argv[1], int(sys.argv[2])
    kind = sys.argv[3] if len(sys.argv) > 3 else "text"
    sys.path.insert(0, root)
    types = importlib.import_module("anthropic.types")
    adapter = importlib.import_module("gateway.providers.anthropic")
    base = importlib.import_module("gateway.providers.base")
    translator = adapter._StreamTranslator("claude-haiku-4-5", base.ChunkStream())
    translator.response_id = "msg_1"
    if kind == "tool":
        start = types.RawContentBlockStartEvent.model_validate(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
            }
        )
        translator.translate(start)
        delta = {"type": "input_json_delta", "partial_json": '{"city": '}
    else:
        delta = {"type": "text_delta", "text": "w "}
    event = types.RawContentBlockDeltaEvent.model_validate(
        {"type": "content_block_delta", "index": 0, "delta": delta}
    )
    for _ in range(200 + n):
        translator.translate(event)


if __name__ == "__main__":
    main()
