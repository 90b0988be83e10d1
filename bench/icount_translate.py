"""The Anthropic stream translation alone, for valgrind: N delta events -> OpenAI chunks.

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python bench/icount_translate.py "$PWD" 2000 [text|tool] [json|models]   # and with 0

The difference divided by N is one event's instructions. The first argument is the tree to
import ``gateway`` from (compare two checkouts); the third the kind of delta: ``text``
(default) or ``tool`` (a tool call's ``input_json_delta``); the fourth what each event is
read from: ``json`` (the default, and the only one a tree whose adapter reads the events' JSON
offers: the event decoded by ``json.loads`` from its SSE data line, then translated) or
``models`` (a tree before that: the SDK's event model built from that JSON, as the SDK's
stream does, then translated). Both count what an event costs between its data line and its
chunk, so the two trees' numbers compare.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any


def main() -> None:
    root, n = sys.argv[1], int(sys.argv[2])
    kind = sys.argv[3] if len(sys.argv) > 3 else "text"
    read = sys.argv[4] if len(sys.argv) > 4 else "json"
    sys.path.insert(0, root)
    base = importlib.import_module("gateway.providers.base")
    if read == "json":
        module = importlib.import_module("gateway.providers._anthropic_response")
        translator = module.StreamTranslator("claude-haiku-4-5", base.ChunkStream())

        def parse(data: str) -> Any:
            return json.loads(data)
    else:
        module = importlib.import_module("gateway.providers.anthropic")
        models = importlib.import_module("anthropic._models")
        event_type = importlib.import_module("anthropic.types").RawMessageStreamEvent
        translator = module._StreamTranslator("claude-haiku-4-5", base.ChunkStream())

        def parse(data: str) -> Any:
            return models.construct_type(type_=event_type, value=json.loads(data))

    translator.response_id = "msg_1"
    if kind == "tool":
        start = {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
        }
        translator.translate(parse(json.dumps(start)))
        delta = {"type": "input_json_delta", "partial_json": '{"city": '}
    else:
        delta = {"type": "text_delta", "text": "w "}
    data = json.dumps({"type": "content_block_delta", "index": 0, "delta": delta})
    for _ in range(200 + n):
        translator.translate(parse(data))


if __name__ == "__main__":
    main()
