"""The two sides of every comparison: the official SDK called directly, and the gateway.

Both send the same request (one user message, a 64-token budget) to the fake server, with
the SDKs' own retries off. The raw side is written the way a user of each SDK would write
it; the gateway side goes through a route of three fallback targets whose first is healthy.

Everything that depends on the credit account is kept to :func:`gateway_config`'s
``credits`` section and :func:`credits_status`, so turning credits on is config, not code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = [
    "MAX_TOKENS",
    "MODELS",
    "PROMPT",
    "PROVIDERS",
    "AsyncSide",
    "SyncSide",
    "credits_status",
    "fund_credits",
    "gateway_async",
    "gateway_config",
    "gateway_sync",
    "raw_async",
    "raw_sync",
]

PROVIDERS = ("openai", "anthropic", "gemini")
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}
PROMPT_TEXT = "Say hello to the benchmark."
PROMPT: Any = [{"role": "user", "content": PROMPT_TEXT}]
MAX_TOKENS = 64
API_KEY = "sk-bench-0000000000000000"
#: Prices written into the config, so pricing never looks anything up (USD per 1M tokens).
PRICES = {
    "openai": {"input": "0.15", "output": "0.60", "cached_input": "0.075"},
    "anthropic": {"input": "1", "output": "5", "cached_input": "0.10", "cache_write": "1.25"},
    "gemini": {"input": "0.30", "output": "2.50", "cached_input": "0.03"},
}
#: What a benchmark account is given before it runs (enough for millions of bench calls).
FUNDING = Decimal("1000")


def base_url(provider: str, server: str, options: str = "") -> str:
    """The ``base_url`` of a provider on the fake server, with an optional fault prefix."""
    root = f"{server}/_bench/{options}" if options else server
    return f"{root}/v1" if provider == "openai" else root


# ---------------------------------------------------------------------------------------------
# What one side exposes to the scenarios


@dataclass(slots=True)
class SyncSide:
    #: One non-streamed call.
    call: Callable[[], Any]
    #: One streamed call: yields the text of each content chunk, then ends.
    stream: Callable[[], Iterator[str]]
    close: Callable[[], None]


@dataclass(slots=True)
class AsyncSide:
    call: Callable[[], Awaitable[Any]]
    stream: Callable[[], AsyncIterator[str]]
    close: Callable[[], Awaitable[None]]


# ---------------------------------------------------------------------------------------------
# The official SDKs, directly


def raw_sync(provider: str, server: str, options: str = "") -> SyncSide:
    url = base_url(provider, server, options)
    model = MODELS[provider]
    if provider == "openai":
        import openai

        oc: Any = openai.OpenAI(api_key=API_KEY, base_url=url, max_retries=0)

        def o_call() -> Any:
            return oc.chat.completions.create(
                model=model, messages=PROMPT, max_completion_tokens=MAX_TOKENS
            )

        def o_stream() -> Iterator[str]:
            for chunk in oc.chat.completions.create(
                model=model,
                messages=PROMPT,
                max_completion_tokens=MAX_TOKENS,
                stream=True,
                stream_options={"include_usage": True},
            ):
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content

        return SyncSide(o_call, o_stream, oc.close)
    if provider == "anthropic":
        import anthropic

        ac: Any = anthropic.Anthropic(api_key=API_KEY, base_url=url, max_retries=0)

        def a_call() -> Any:
            return ac.messages.create(model=model, max_tokens=MAX_TOKENS, messages=PROMPT)

        def a_stream() -> Iterator[str]:
            for event in ac.messages.create(
                model=model, max_tokens=MAX_TOKENS, messages=PROMPT, stream=True
            ):
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    yield event.delta.text

        return SyncSide(a_call, a_stream, ac.close)
    if provider == "gemini":
        from google import genai
        from google.genai import types

        gc: Any = genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=url))
        config = types.GenerateContentConfig(max_output_tokens=MAX_TOKENS)

        def g_call() -> Any:
            return gc.models.generate_content(model=model, contents=PROMPT_TEXT, config=config)

        def g_stream() -> Iterator[str]:
            for response in gc.models.generate_content_stream(
                model=model, contents=PROMPT_TEXT, config=config
            ):
                if response.text:
                    yield response.text

        return SyncSide(g_call, g_stream, gc.close)
    raise ValueError(provider)


def raw_async(provider: str, server: str, options: str = "") -> AsyncSide:
    url = base_url(provider, server, options)
    model = MODELS[provider]
    if provider == "openai":
        import openai

        oc: Any = openai.AsyncOpenAI(api_key=API_KEY, base_url=url, max_retries=0)

        async def o_call() -> Any:
            return await oc.chat.completions.create(
                model=model, messages=PROMPT, max_completion_tokens=MAX_TOKENS
            )

        async def o_stream() -> AsyncIterator[str]:
            async for chunk in await oc.chat.completions.create(
                model=model,
                messages=PROMPT,
                max_completion_tokens=MAX_TOKENS,
                stream=True,
                stream_options={"include_usage": True},
            ):
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content

        return AsyncSide(o_call, o_stream, oc.close)
    if provider == "anthropic":
        import anthropic

        ac: Any = anthropic.AsyncAnthropic(api_key=API_KEY, base_url=url, max_retries=0)

        async def a_call() -> Any:
            return await ac.messages.create(model=model, max_tokens=MAX_TOKENS, messages=PROMPT)

        async def a_stream() -> AsyncIterator[str]:
            async for event in await ac.messages.create(
                model=model, max_tokens=MAX_TOKENS, messages=PROMPT, stream=True
            ):
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    yield event.delta.text

        return AsyncSide(a_call, a_stream, ac.close)
    if provider == "gemini":
        from google import genai
        from google.genai import types

        gc: Any = genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=url))
        config = types.GenerateContentConfig(max_output_tokens=MAX_TOKENS)

        async def g_call() -> Any:
            return await gc.aio.models.generate_content(
                model=model, contents=PROMPT_TEXT, config=config
            )

        async def g_stream() -> AsyncIterator[str]:
            async for response in await gc.aio.models.generate_content_stream(
                model=model, contents=PROMPT_TEXT, config=config
            ):
                if response.text:
                    yield response.text

        async def g_close() -> None:
            await gc.aio.aclose()

        return AsyncSide(g_call, g_stream, g_close)
    raise ValueError(provider)


# ---------------------------------------------------------------------------------------------
# The gateway


def gateway_config(
    server: str,
    primary: str,
    *,
    credits_db: str | None = None,
    first_fails: str | None = None,
) -> dict[str, Any]:
    """A config with route ``bench``: ``primary`` first, the two other providers behind it.

    ``first_fails`` (fault options such as ``status=429,retry_after=0``) puts a failing
    account of ``primary`` in front instead, with no retry on it, so every call falls back
    (route ``bench`` then has the failing target, then the healthy one). ``credits_db`` adds
    a ``credits:`` section on that SQLite file.
    """
    providers: dict[str, Any] = {
        name: {"api_key": API_KEY, "base_url": base_url(name, server)} for name in PROVIDERS
    }
    others = [p for p in PROVIDERS if p != primary]
    targets = [f"{name}/{MODELS[name]}" for name in (primary, *others)]
    route: dict[str, Any] = {"targets": targets}
    if first_fails is not None:
        failing = f"{primary}_failing"
        providers[failing] = {
            "type": primary,
            "api_key": API_KEY,
            "base_url": base_url(primary, server, first_fails),
        }
        route = {
            "targets": [f"{failing}/{MODELS[primary]}", *targets[:2]],
            # Straight on to the next target after the 429, and keep the failing target in
            # play: with the default breaker it would be skipped after five failures.
            "retry": {"attempts": 1},
            "breaker": {"failures": 1_000_000_000},
        }
    config: dict[str, Any] = {
        "providers": providers,
        "routes": {"bench": route},
        "pricing": {f"{name}/{MODELS[name]}": dict(PRICES[name]) for name in PROVIDERS},
    }
    if first_fails is not None:
        config["pricing"][f"{primary}_failing/{MODELS[primary]}"] = dict(PRICES[primary])
    if credits_db is not None:
        config["credits"] = {"store": f"sqlite:///{credits_db}"}
    return config


def credits_status(gw: Any) -> str:
    """``on`` when the gateway charges a credit account, else why not."""
    if getattr(gw, "credits", None) is not None:
        return "on"
    return "pending: the client does not wire the credit account yet"


def fund_credits(gw: Any) -> None:
    """Give the default account enough credit for the whole benchmark (``agw.credits`` is
    awaitable: its synchronous account is used here, before any event loop runs)."""
    account = gw.credits
    account = getattr(account, "sync", account)
    account.grant(FUNDING, note="benchmark")


def _gateway_stream_text(chunks: Iterator[Any]) -> Iterator[str]:
    for chunk in chunks:
        if chunk.choices and chunk.choices[0].delta.content:
            yield chunk.choices[0].delta.content


def gateway_sync(config: dict[str, Any]) -> tuple[SyncSide, Any]:
    from gateway import Gateway

    gw = Gateway(config=config)

    def call() -> Any:
        return gw.chat.completions.create(model="bench", messages=PROMPT, max_tokens=MAX_TOKENS)

    def stream() -> Iterator[str]:
        return _gateway_stream_text(
            gw.chat.completions.create(
                model="bench", messages=PROMPT, max_tokens=MAX_TOKENS, stream=True
            )
        )

    return SyncSide(call, stream, gw.close), gw


def gateway_async(config: dict[str, Any]) -> tuple[AsyncSide, Any]:
    from gateway import AsyncGateway

    agw = AsyncGateway(config=config)

    async def call() -> Any:
        return await agw.chat.completions.create(
            model="bench", messages=PROMPT, max_tokens=MAX_TOKENS
        )

    async def stream() -> AsyncIterator[str]:
        async for chunk in await agw.chat.completions.create(
            model="bench", messages=PROMPT, max_tokens=MAX_TOKENS, stream=True
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content

    return AsyncSide(call, stream, agw.close), agw
