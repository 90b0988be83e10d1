"""The Anthropic stream translation alone, for valgrind: N text-delta events -> OpenAI chunks.

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python bench/icount_translate.py "$PWD" 2000      # and with 0; difference / 2000

The first argument is the tree to import ``gateway`` from (compare two checkouts).
"""

from __future__ import annotations

import importlib
import sys


def main() -> None:
    root, n = sys.argv[1], int(sys.argv[2])
    sys.path.insert(0, root)
    types = importlib.import_module("anthropic.types")
    adapter = importlib.import_module("gateway.providers.anthropic")
    base = importlib.import_module("gateway.providers.base")
    event = types.RawContentBlockDeltaEvent.model_validate(
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "w "}}
    )
    translator = adapter._StreamTranslator("claude-haiku-4-5", base.ChunkStream())
    translator.response_id = "msg_1"
    for _ in range(200 + n):
        translator.translate(event)


if __name__ == "__main__":
    main()
