"""``gateway serve`` with changes to the OpenAI adapter applied in memory, to measure them.

    python bench/what_if.py FEATURES serve --config gateway.yaml --port 8080

FEATURES is a comma list (bench/proxy.py's ``--what-if`` side runs ``all``):

- ``post``: a non-streamed call is ``client.post("/chat/completions", body=...)`` (the SDK's
  public way to call an endpoint with a body it does not transform) instead of
  ``chat.completions.with_raw_response.create``, whose recursive TypedDict transform of the
  arguments costs ~230 µs per call here (the adapter itself does this since branch
  perf-paths, streams included: the feature changes nothing on such a tree);
- ``chunks``: each chunk of a stream is ``ChatCompletionChunk.model_validate(data)``
  (pydantic-core) instead of the SDK's pure-Python ``construct_type`` (~100 µs per chunk),
  falling back to the SDK's lenient construction when the chunk does not validate;
- ``aiohttp``: the async client sends through ``openai.DefaultAioHttpClient()`` (the SDK's
  aiohttp transport, ``pip install 'openai[aiohttp]'``) instead of httpx2's pool; skipped, and
  said so on stderr, when aiohttp is not installed.

Nothing here is used by the gateway itself: it only shows what those changes would buy.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FEATURES = ("post", "chunks", "aiohttp")


def apply(features: set[str]) -> list[str]:
    """Patch the OpenAI adapter in this process; the features applied."""
    import httpx2
    from openai import AsyncOpenAI
    from openai._base_client import AsyncAPIClient, make_request_options
    from openai.types.chat import ChatCompletionChunk
    from pydantic import ValidationError

    from gateway.providers import openai as adapter

    applied: list[str] = []
    cls: Any = adapter.OpenAIAdapter
    if "post" in features:

        async def acomplete(self: Any, model: str, request: Any) -> Any:
            body = self._call_options(model, request, stream=False)
            extras = ("extra_headers", "extra_query", "extra_body", "timeout")
            options = make_request_options(**{k: body.pop(k) for k in extras if k in body})
            with adapter._MappedErrors(self.name, model):
                response = await self._async_sdk_client().post(
                    "/chat/completions", body=body, cast_to=httpx2.Response, options=options
                )
            return self._response(response, model)

        cls.acomplete = acomplete
        applied.append("post")
    if "chunks" in features:
        construct = AsyncAPIClient._process_response_data

        def process(self: Any, *, data: object, cast_to: Any, response: Any) -> Any:
            if cast_to is ChatCompletionChunk:
                try:
                    return ChatCompletionChunk.model_validate(data)
                except ValidationError:
                    pass
            return construct(self, data=data, cast_to=cast_to, response=response)

        AsyncAPIClient._process_response_data = process  # type: ignore[method-assign]
        applied.append("chunks")
    if "aiohttp" in features:
        try:
            import aiohttp  # noqa: F401
        except ImportError:
            print("what_if: aiohttp is not installed; 'aiohttp' not applied", file=sys.stderr)
        else:
            from openai import DefaultAioHttpClient

            def async_client(self: Any) -> Any:
                if self._async_client is None:
                    options = self._client_options()
                    http = DefaultAioHttpClient(timeout=options["timeout"])
                    self._async_client = AsyncOpenAI(**options, http_client=http)
                return self._async_client

            cls._async_sdk_client = async_client
            applied.append("aiohttp")
    return applied


def main() -> None:
    wanted = sys.argv[1]
    features = set(FEATURES) if wanted == "all" else set(wanted.split(","))
    unknown = features - set(FEATURES)
    if unknown:
        raise SystemExit(f"unknown features: {', '.join(sorted(unknown))}")
    applied = apply(features)
    print(f"what_if: applied {', '.join(applied) or 'nothing'}", file=sys.stderr, flush=True)
    from gateway.cli import main as gateway_main

    sys.argv = ["gateway", *sys.argv[2:]]
    gateway_main()


if __name__ == "__main__":
    main()
