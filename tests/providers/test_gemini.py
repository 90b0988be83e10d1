"""The Gemini adapter against mocked HTTP (pytest-httpx2), sync and async.

Most tests run both ways through the ``mode`` fixture; the sync client is safe to call from the
event loop because the transport is mocked. Bodies come from ``gateway.testing.wire.gemini``.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpcore2
import httpx
import openai
import pydantic
import pytest
from google import genai

from gateway._yaml import MissingEnv
from gateway.config import ProviderConfig
from gateway.errors import (
    AuthenticationFailed,
    ConfigError,
    ContextTooLong,
    InvalidRequest,
    ProviderConnectionError,
    ProviderError,
    ProviderOverloaded,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    redact,
)
from gateway.providers import load_adapter_class
from gateway.providers._gemini_request import THINKING_BUDGETS
from gateway.providers.base import (
    AsyncChunkStream,
    ChatRequest,
    ChunkStream,
    ProviderAdapter,
    TokenUsage,
)
from gateway.providers.gemini import SKIP_SIGNATURE, GeminiAdapter, build_request, map_error
from gateway.testing.wire import gemini as wire
from tests.conftest import CANARY_KEY

MODEL = "gemini-2.5-flash"
URL = wire.generate_content_url(MODEL)
STREAM_URL = wire.generate_content_url(MODEL, stream=True)
HELLO = [{"role": "user", "content": "Hello"}]
SSE_HEADERS = {"content-type": "text/event-stream"}


# ---------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_adapter(**settings: Any) -> GeminiAdapter:
    settings.setdefault("api_key", CANARY_KEY)
    return GeminiAdapter("gemini", ProviderConfig(type="gemini", name="gemini", **settings))


@pytest.fixture
def adapter() -> Iterator[GeminiAdapter]:
    instance = make_adapter()
    yield instance
    instance.close()


def respond(mock: Any, body: dict[str, Any], url: str = URL) -> Any:
    return mock.post(url).mock(return_value=httpx.Response(200, json=body))


def respond_stream(mock: Any, body: bytes) -> Any:
    return mock.post(STREAM_URL).mock(
        return_value=httpx.Response(200, content=body, headers=SSE_HEADERS)
    )


def sent(route: Any) -> dict[str, Any]:
    """The JSON body of the last request the route received."""
    body: dict[str, Any] = json.loads(route.calls.last.request.content)
    return body


async def complete(adapter: GeminiAdapter, mode: str, request: ChatRequest) -> Any:
    if mode == "sync":
        return adapter.complete(MODEL, request)
    return await adapter.acomplete(MODEL, request)


async def open_stream(
    adapter: GeminiAdapter, mode: str, request: ChatRequest
) -> ChunkStream | AsyncChunkStream:
    if mode == "sync":
        return adapter.stream(MODEL, request)
    return await adapter.astream(MODEL, request)


async def drain(stream: ChunkStream | AsyncChunkStream) -> list[Any]:
    if isinstance(stream, ChunkStream):
        return list(stream)
    return [chunk async for chunk in stream]


async def stream_all(
    adapter: GeminiAdapter, mode: str, request: ChatRequest
) -> tuple[Any, list[Any]]:
    stream = await open_stream(adapter, mode, request)
    return stream, await drain(stream)


async def raised(coro: Any) -> ProviderError:
    """Await ``coro`` and return the ProviderError it raised (fail if none)."""
    with pytest.raises(ProviderError) as info:
        await coro
    error = info.value
    assert CANARY_KEY not in str(error)
    assert CANARY_KEY not in repr(error)
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    return error


def text_of(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


class TrackedStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body that records when it is closed and can fail part way."""

    def __init__(self, parts: list[bytes], fail_with: Exception | None = None) -> None:
        self.parts = parts
        self.fail_with = fail_with
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.parts
        if self.fail_with is not None:
            raise self.fail_with

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            yield part
        if self.fail_with is not None:
            raise self.fail_with

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


# ---------------------------------------------------------------------------------------------
# Non-streamed calls: request translation and response


def test_registered_and_satisfies_protocol(adapter: GeminiAdapter) -> None:
    assert load_adapter_class("gemini") is GeminiAdapter
    assert isinstance(adapter, ProviderAdapter)
    assert adapter.name == "gemini"
    assert CANARY_KEY not in repr(adapter)


async def test_plain_text(httpx2_mock: Any, adapter: GeminiAdapter, mode: str) -> None:
    body = wire.generate_content_response(
        "Hi there", usage=wire.usage_metadata(prompt_tokens=12, output_tokens=5)
    )
    route = respond(httpx2_mock, body)

    result = await complete(adapter, mode, ChatRequest(messages=HELLO))

    completion = result.completion
    assert isinstance(completion, openai.types.chat.ChatCompletion)
    assert completion.id == "resp-gemini-1"
    assert completion.model == "gemini-2.5-flash"
    assert completion.choices[0].message.content == "Hi there"
    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].finish_reason == "stop"
    assert result.usage == TokenUsage(input_tokens=12, output_tokens=5)
    assert completion.usage is not None and completion.usage.total_tokens == 17
    # the SDK always sends a (here empty) generationConfig
    assert sent(route) == {
        "contents": [{"role": "user", "parts": [{"text": "Hello"}]}],
        "generationConfig": {},
    }
    request = route.calls.last.request
    assert request.headers["x-goog-api-key"] == CANARY_KEY
    assert route.call_count == 1


async def test_response_without_id_or_model_version(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    respond(httpx2_mock, wire.generate_content_response("x", response_id=None, model_version=None))

    completion = (await complete(adapter, mode, ChatRequest(messages=HELLO))).completion

    assert completion.id.startswith("chatcmpl-")
    assert completion.model == MODEL


async def test_system_prompt_and_multi_turn(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    route = respond(httpx2_mock, wire.generate_content_response("Lyon"))
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris"},
        {"role": "developer", "content": [{"type": "text", "text": "Be terse."}]},
        {"role": "user", "content": [{"type": "text", "text": "And the second city?"}]},
        {"role": "user", "content": "Please."},
    ]

    result = await complete(adapter, mode, ChatRequest(messages=messages))

    assert result.completion.choices[0].message.content == "Lyon"
    body = sent(route)
    assert body["systemInstruction"]["parts"] == [{"text": "Answer in one word.\n\nBe terse."}]
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Capital of France?"}]},
        {"role": "model", "parts": [{"text": "Paris"}]},
        # consecutive user turns are merged into one
        {"role": "user", "parts": [{"text": "And the second city?"}, {"text": "Please."}]},
    ]


async def test_text_parts_of_system_and_tool_messages_keep_apart(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    # Joined with "" the last word of one part ran into the first of the next.
    route = respond(httpx2_mock, wire.generate_content_response("ok"))
    parts = [{"type": "text", "text": "Be terse."}, {"type": "text", "text": "Answer in French."}]
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": parts},
        {"role": "user", "content": "Go"},
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": parts},
    ]

    await complete(adapter, mode, ChatRequest(messages=messages))

    body = sent(route)
    assert body["systemInstruction"]["parts"] == [{"text": "Be terse.\nAnswer in French."}]
    assert body["contents"][2]["parts"][0]["functionResponse"]["response"] == {
        "result": "Be terse.\nAnswer in French."
    }


WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


async def test_tools_round_trip(httpx2_mock: Any, adapter: GeminiAdapter, mode: str) -> None:
    calls = [
        wire.FunctionCall("get_weather", {"city": "Paris"}, thought_signature="c2lnLTE+/w=="),
        wire.FunctionCall("get_weather", {"city": "Lyon"}),
    ]
    route = respond(httpx2_mock, wire.generate_content_response(None, function_calls=calls))
    first = ChatRequest(
        messages=[{"role": "user", "content": "Weather in Paris and Lyon?"}],
        tools=[WEATHER_TOOL],
        tool_choice="auto",
    )

    result = await complete(adapter, mode, first)

    body = sent(route)
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather in a city",
                    "parameters_json_schema": WEATHER_TOOL["function"]["parameters"],
                }
            ]
        }
    ]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    message = result.completion.choices[0].message
    assert result.completion.choices[0].finish_reason == "tool_calls"  # Gemini said STOP
    assert message.content is None
    assert message.tool_calls is not None
    assert [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Lyon"}),
    ]
    paris_id, lyon_id = (c.id for c in message.tool_calls)
    assert message.tool_calls[0].model_dump()["extra_content"] == {
        "google": {"thought_signature": "c2lnLTE+/w=="}
    }

    # The caller runs the tools and sends the results back.
    route = respond(httpx2_mock, wire.generate_content_response("Sunny in both."))
    second = ChatRequest(
        messages=[
            *first.messages,
            message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": paris_id, "content": '{"temp_c": 21}'},
            {"role": "tool", "tool_call_id": lyon_id, "content": "sunny"},
        ],
        tools=[WEATHER_TOOL],
    )

    result = await complete(adapter, mode, second)

    assert result.completion.choices[0].message.content == "Sunny in both."
    contents = sent(route)["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [
            {
                "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                # the signature goes back (URL-safe base64, as the SDK encodes bytes)
                "thoughtSignature": "c2lnLTE-_w==",
            },
            {"functionCall": {"name": "get_weather", "args": {"city": "Lyon"}}},
        ],
    }
    assert contents[2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}},
            {"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}}},
        ],
    }
    assert "toolConfig" not in sent(route)


async def test_tool_history_without_signature_gets_the_placeholder(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    route = respond(httpx2_mock, wire.generate_content_response("ok"))
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "a", "arguments": "{}"}},
                {"id": "toolu_2", "type": "function", "function": {"name": "b", "arguments": ""}},
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_2", "content": "[1, 2]"},
        {"role": "tool", "tool_call_id": "toolu_1", "content": [{"type": "text", "text": "7"}]},
    ]

    await complete(adapter, mode, ChatRequest(messages=messages))

    contents = sent(route)["contents"]
    assert contents[1]["parts"] == [
        {"text": "Checking."},
        {"functionCall": {"name": "a", "args": {}}, "thoughtSignature": SKIP_SIGNATURE},
        {"functionCall": {"name": "b", "args": {}}},
    ]
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "b", "response": {"result": [1, 2]}}},
        {"functionResponse": {"name": "a", "response": {"result": 7}}},
    ]


async def test_gemini_function_call_ids_are_kept_and_sent_back(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    calls = [wire.FunctionCall("lookup", {"q": "x"}, id="fc-abc"), wire.FunctionCall("lookup")]
    respond(httpx2_mock, wire.generate_content_response("Looking.", function_calls=calls))

    result = await complete(adapter, mode, ChatRequest(messages=HELLO, tools=[WEATHER_TOOL]))

    message = result.completion.choices[0].message
    assert message.content == "Looking."
    assert message.tool_calls is not None
    own, generated = message.tool_calls
    assert own.id == "fc-abc"
    assert own.model_dump()["extra_content"] == {"google": {"function_call_id": "fc-abc"}}
    assert generated.id.startswith("call_") and "extra_content" not in generated.model_dump()

    route = respond(httpx2_mock, wire.generate_content_response("Found."))
    history = [
        *HELLO,
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": generated.id, "content": "2"},
        {"role": "tool", "tool_call_id": "fc-abc", "content": "1"},
    ]
    await complete(adapter, mode, ChatRequest(messages=history, tools=[WEATHER_TOOL]))

    contents = sent(route)["contents"]
    # Gemini's own id goes back on the call and its result; a generated one is ours alone.
    assert [p["functionCall"] for p in contents[1]["parts"][1:]] == [
        {"id": "fc-abc", "name": "lookup", "args": {"q": "x"}},
        {"name": "lookup", "args": {}},
    ]
    assert [p["functionResponse"] for p in contents[2]["parts"]] == [
        {"name": "lookup", "response": {"result": 2}},
        {"id": "fc-abc", "name": "lookup", "response": {"result": 1}},
    ]


async def test_tool_call_ids_are_unique_across_turns(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    # Gemini sends no ids: positional ids (call_0, call_1) repeated every turn, and a history
    # with repeated ids is refused by Anthropic (fallback) and breaks apps keyed on ids.
    calls = [wire.FunctionCall("get_weather", {"city": "Paris"}), wire.FunctionCall("lookup")]
    respond(httpx2_mock, wire.generate_content_response(None, function_calls=calls))
    ids: list[str] = []
    for _ in range(3):
        result = await complete(adapter, mode, ChatRequest(messages=HELLO, tools=[WEATHER_TOOL]))
        ids += [c.id for c in result.completion.choices[0].message.tool_calls or []]
    respond_stream(httpx2_mock, wire.stream_response([], function_calls=calls))
    _, chunks = await stream_all(adapter, mode, ChatRequest(messages=HELLO, tools=[WEATHER_TOOL]))
    ids += [
        call.id
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
        for call in c.choices[0].delta.tool_calls
    ]
    assert len(ids) == 8 and len(set(ids)) == 8
    assert all(i.startswith("call_") and len(i) > len("call_1") for i in ids)


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
    ],
)
async def test_tool_choice(
    httpx2_mock: Any, adapter: GeminiAdapter, tool_choice: Any, expected: dict[str, Any]
) -> None:
    route = respond(httpx2_mock, wire.generate_content_response("ok"))

    adapter.complete(
        MODEL, ChatRequest(messages=HELLO, tools=[WEATHER_TOOL], tool_choice=tool_choice)
    )

    assert sent(route)["toolConfig"] == {"functionCallingConfig": expected}


async def test_image_inputs(httpx2_mock: Any, adapter: GeminiAdapter, mode: str) -> None:
    route = respond(httpx2_mock, wire.generate_content_response("A cat."))
    png = base64.b64encode(b"\x89PNG fake").decode()
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                {"type": "image_url", "image_url": {"url": "https://x.test/cat.webp?s=1"}},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://x.test/photo", "detail": "low"},
                },
            ],
        }
    ]

    await complete(adapter, mode, ChatRequest(messages=messages))

    parts = sent(route)["contents"][0]["parts"]
    assert parts[0] == {"text": "What is this?"}
    # google-genai writes the fields of inlineData / fileData in proto (snake_case) names,
    # which the API's JSON parser accepts like the camelCase ones.
    assert base64.urlsafe_b64decode(parts[1]["inlineData"]["data"]) == b"\x89PNG fake"
    assert parts[1]["inlineData"]["mime_type"] == "image/png"
    assert parts[2] == {
        "fileData": {"file_uri": "https://x.test/cat.webp?s=1", "mime_type": "image/webp"}
    }
    assert parts[3] == {"fileData": {"file_uri": "https://x.test/photo", "mime_type": "image/jpeg"}}


def test_contents_are_plain_dicts() -> None:
    # google-genai validates types.Content / types.Part instances field by field, several times
    # slower than the same contents in its dict form, so the adapter hands it plain dicts.
    png = base64.b64encode(b"\x89PNG fake").decode()
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be terse."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather here?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                {"type": "image_url", "image_url": {"url": "https://x.test/cat.webp"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "c0",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Lyon"}'},
                    "extra_content": {"google": {"thought_signature": "c2lnLTE+/w=="}},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "c0", "content": '{"temp_c": 21}'},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]

    contents, config = build_request(ChatRequest(messages=messages), provider="gemini")

    assert contents == [
        {
            "role": "user",
            "parts": [
                {"text": "Weather here?"},
                {"inline_data": {"mime_type": "image/png", "data": b"\x89PNG fake"}},
                {"file_data": {"file_uri": "https://x.test/cat.webp", "mime_type": "image/webp"}},
            ],
        },
        {
            "role": "model",
            "parts": [
                {"text": "Checking."},
                {
                    "function_call": {"name": "get_weather", "args": {"city": "Paris"}},
                    "thought_signature": base64.urlsafe_b64decode(SKIP_SIGNATURE),
                },
                {
                    "function_call": {"name": "get_weather", "args": {"city": "Lyon"}},
                    "thought_signature": base64.b64decode("c2lnLTE+/w=="),
                },
            ],
        },
        {
            "role": "user",
            "parts": [
                {"function_response": {"name": "get_weather", "response": {"temp_c": 21}}},
                {"function_response": {"name": "get_weather", "response": {"result": "sunny"}}},
            ],
        },
    ]

    def assert_plain(value: Any) -> None:
        assert not isinstance(value, pydantic.BaseModel), value
        if isinstance(value, dict):
            assert type(value) is dict
            for item in value.values():
                assert_plain(item)
        elif isinstance(value, list):
            for item in value:
                assert_plain(item)

    assert_plain(contents)
    # ... in the SDK's accepted dict form: it turns them into the same Content objects.
    assert [genai.types.Content.model_validate(c) for c in contents] == [
        genai.types.Content(
            role="user",
            parts=[
                genai.types.Part(text="Weather here?"),
                genai.types.Part(
                    inline_data=genai.types.Blob(mime_type="image/png", data=b"\x89PNG fake")
                ),
                genai.types.Part(
                    file_data=genai.types.FileData(
                        file_uri="https://x.test/cat.webp", mime_type="image/webp"
                    )
                ),
            ],
        ),
        genai.types.Content(
            role="model",
            parts=[
                genai.types.Part(text="Checking."),
                genai.types.Part(
                    function_call=genai.types.FunctionCall(
                        name="get_weather", args={"city": "Paris"}
                    ),
                    thought_signature=base64.urlsafe_b64decode(SKIP_SIGNATURE),
                ),
                genai.types.Part(
                    function_call=genai.types.FunctionCall(
                        name="get_weather", args={"city": "Lyon"}
                    ),
                    thought_signature=base64.b64decode("c2lnLTE+/w=="),
                ),
            ],
        ),
        genai.types.Content(
            role="user",
            parts=[
                genai.types.Part(
                    function_response=genai.types.FunctionResponse(
                        name="get_weather", response={"temp_c": 21}
                    )
                ),
                genai.types.Part(
                    function_response=genai.types.FunctionResponse(
                        name="get_weather", response={"result": "sunny"}
                    )
                ),
            ],
        ),
    ]
    assert config.system_instruction == "Be terse."


def test_one_turn_goes_alone_and_plain_configs_are_shared() -> None:
    # One turn is handed over as that Content dict (the SDK sends the same request as for a
    # one-item list, without trying the dict as a Part first); a request without tools,
    # output format, timeout or extra body reuses one validated config per set of values.
    request = ChatRequest(
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        max_tokens=64,
        temperature=0.5,
    )
    contents, config = build_request(request, provider="gemini")
    assert contents == {"role": "user", "parts": [{"text": "Hi"}]}
    assert config.system_instruction == "Be brief."
    assert (config.max_output_tokens, config.temperature) == (64, 0.5)
    assert config.automatic_function_calling is not None
    assert config.automatic_function_calling.disable is True
    assert build_request(request, provider="gemini")[1] is config
    warmer = ChatRequest(messages=request.messages, max_tokens=64, temperature=0.7)
    assert build_request(warmer, provider="gemini")[1].temperature == 0.7
    timed = ChatRequest(messages=request.messages, max_tokens=64, timeout=5.0)
    timed_config = build_request(timed, provider="gemini")[1]
    assert timed_config.http_options is not None
    assert timed_config.http_options.timeout == 5000


async def test_json_schema_output(httpx2_mock: Any, adapter: GeminiAdapter, mode: str) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    route = respond(httpx2_mock, wire.generate_content_response('{"city": "Paris"}'))
    request = ChatRequest(
        messages=HELLO,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "place", "schema": schema, "strict": True},
        },
    )

    result = await complete(adapter, mode, request)

    assert json.loads(result.completion.choices[0].message.content) == {"city": "Paris"}
    assert sent(route)["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
    }


async def test_json_mode(httpx2_mock: Any, adapter: GeminiAdapter, mode: str) -> None:
    route = respond(httpx2_mock, wire.generate_content_response("{}"))

    await complete(
        adapter, mode, ChatRequest(messages=HELLO, response_format={"type": "json_object"})
    )

    assert sent(route)["generationConfig"] == {"responseMimeType": "application/json"}


async def test_text_response_format_sends_nothing(httpx2_mock: Any, adapter: GeminiAdapter) -> None:
    route = respond(httpx2_mock, wire.generate_content_response("hi"))

    adapter.complete(MODEL, ChatRequest(messages=HELLO, response_format={"type": "text"}))

    assert sent(route)["generationConfig"] == {}


async def test_generation_params_extra_body_and_dropped_fields(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    route = respond(httpx2_mock, wire.generate_content_response("ok"))
    request = ChatRequest(
        messages=HELLO,
        max_tokens=64,
        temperature=0.3,
        top_p=0.9,
        stop=["END", "STOP"],
        user="end-user-1",
        metadata={"feature": "search"},
        extra_body={"generationConfig": {"topK": 5}, "safetySettings": []},
    )

    await complete(adapter, mode, request)

    body = sent(route)
    assert body["generationConfig"] == {
        "maxOutputTokens": 64,
        "temperature": 0.3,
        "topP": 0.9,
        "stopSequences": ["END", "STOP"],
        "topK": 5,
    }
    assert body["safetySettings"] == []
    assert "end-user-1" not in json.dumps(body)
    assert "labels" not in body


@pytest.mark.parametrize(
    ("gemini", "openai_reason"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
        ("OTHER", "stop"),
        (None, "stop"),
    ],
)
async def test_finish_reasons(
    httpx2_mock: Any, adapter: GeminiAdapter, gemini: str | None, openai_reason: str
) -> None:
    respond(httpx2_mock, wire.generate_content_response("x", finish_reason=gemini))

    result = adapter.complete(MODEL, ChatRequest(messages=HELLO))

    assert result.completion.choices[0].finish_reason == openai_reason


async def test_openai_sampling_reasoning_and_logprobs_map_to_the_generation_config(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    route = respond(httpx2_mock, wire.generate_content_response("ok"))
    request = ChatRequest(
        messages=HELLO,
        seed=7,
        frequency_penalty=0.5,
        presence_penalty=-0.5,
        logprobs=True,
        top_logprobs=3,
        reasoning_effort="low",
        extra_headers={"x-trace": "t-1"},
        openai_only={"store": True, "prompt_cache_key": "k", "safety_identifier": "u"},
    )

    await complete(adapter, mode, request)

    body = sent(route)
    assert body["generationConfig"] == {
        "seed": 7,
        "frequencyPenalty": 0.5,
        "presencePenalty": -0.5,
        "responseLogprobs": True,
        "logprobs": 3,
        # google-genai writes thinkingConfig's field in its proto name, which the API accepts.
        "thinkingConfig": {"thinking_budget": THINKING_BUDGETS["low"]},
    }
    assert set(body) == {"contents", "generationConfig"}  # OpenAI's labels are dropped
    assert route.calls.last.request.headers["x-trace"] == "t-1"
    await complete(adapter, mode, ChatRequest(messages=HELLO, reasoning_effort="none"))
    assert sent(route)["generationConfig"] == {"thinkingConfig": {"thinking_budget": 0}}


async def test_openai_arguments_without_an_equivalent_are_refused_before_any_call(
    adapter: GeminiAdapter, mode: str
) -> None:
    # No route is mocked: a request that reached HTTP would fail the test with another error.
    request = ChatRequest(
        messages=HELLO,
        tools=[WEATHER_TOOL],
        parallel_tool_calls=False,
        extra_query={"a": "1"},
        openai_only={"logit_bias": {"1": 5}, "store": True},
    )
    error = await raised(complete(adapter, mode, request))
    assert isinstance(error, InvalidRequest)
    assert str(error).startswith(f"gemini/{MODEL}: extra_query, parallel_tool_calls, logit_bias ")
    assert "have no equivalent on Gemini" in str(error)


async def test_logprobs_come_back_in_openais_shape(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    result = wire.logprobs_result(
        [("Hi", -0.25), ("!", -1.5)], top=[[("Hi", -0.25), ("Hello", -1.75)], [("!", -1.5)]]
    )
    respond(httpx2_mock, wire.generate_content_response("Hi!", logprobs=result))
    request = ChatRequest(messages=HELLO, logprobs=True, top_logprobs=2)

    choice = (await complete(adapter, mode, request)).completion.choices[0]

    assert choice.logprobs is not None and choice.logprobs.content is not None
    first, second = choice.logprobs.content
    assert (first.token, first.logprob, first.bytes) == ("Hi", -0.25, [72, 105])
    assert [(t.token, t.logprob) for t in first.top_logprobs] == [("Hi", -0.25), ("Hello", -1.75)]
    assert (second.token, second.logprob) == ("!", -1.5)

    events = [
        wire.generate_content_response("Hi", logprobs=wire.logprobs_result([("Hi", -0.25)])),
        wire.generate_content_response("!", logprobs=wire.logprobs_result([("!", -1.5)])),
    ]
    respond_stream(httpx2_mock, wire.sse_body(events))
    _, chunks = await stream_all(adapter, mode, ChatRequest(messages=HELLO, logprobs=True))
    tokens = [
        (t.token, t.logprob)
        for c in chunks
        if c.choices and c.choices[0].logprobs and c.choices[0].logprobs.content
        for t in c.choices[0].logprobs.content
    ]
    assert tokens == [("Hi", -0.25), ("!", -1.5)]


async def test_blocked_prompt_is_content_filter(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    body = wire.generate_content_response(
        prompt_block_reason="SAFETY", blocked_categories=["HARM_CATEGORY_DANGEROUS_CONTENT"]
    )
    respond(httpx2_mock, body)

    result = await complete(adapter, mode, ChatRequest(messages=HELLO))

    message = result.completion.choices[0].message
    assert result.completion.choices[0].finish_reason == "content_filter"
    assert message.content == ""
    # The reason is surfaced, not just an empty answer.
    assert message.refusal == (
        "Gemini blocked the prompt: SAFETY (HARM_CATEGORY_DANGEROUS_CONTENT)"
    )
    respond(httpx2_mock, wire.generate_content_response("ok"))
    assert (await complete(adapter, mode, ChatRequest(messages=HELLO))).completion.choices[
        0
    ].message.refusal is None


async def test_thought_parts_are_not_content(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    parts = [wire.text_part("Let me think...", thought=True), wire.text_part("42")]
    respond(httpx2_mock, wire.generate_content_response(parts=parts))

    result = await complete(adapter, mode, ChatRequest(messages=HELLO))

    assert result.completion.choices[0].message.content == "42"


async def test_usage_with_cache_tool_prompt_and_reasoning(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    usage = wire.usage_metadata(
        prompt_tokens=300,
        output_tokens=20,
        cached_tokens=200,
        thoughts_tokens=50,
        tool_use_prompt_tokens=7,
    )
    respond(httpx2_mock, wire.generate_content_response("ok", usage=usage))

    result = await complete(adapter, mode, ChatRequest(messages=HELLO))

    assert result.usage == TokenUsage(
        input_tokens=307,  # prompt (cached included) + tool-use prompt
        output_tokens=70,  # candidates + thoughts
        cached_input_tokens=200,
        cache_write_tokens=0,  # Gemini reports no cache writes
        reasoning_tokens=50,
    )
    reported = result.completion.usage
    assert reported is not None
    assert (reported.prompt_tokens, reported.completion_tokens, reported.total_tokens) == (
        307,
        70,
        377,
    )
    assert reported.prompt_tokens_details is not None
    assert reported.prompt_tokens_details.cached_tokens == 200
    assert reported.completion_tokens_details is not None
    assert reported.completion_tokens_details.reasoning_tokens == 50


# ---------------------------------------------------------------------------------------------
# Requests that cannot be translated: InvalidRequest before any HTTP call


@pytest.mark.parametrize(
    ("request_kwargs", "where"),
    [
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}
                ]
            },
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "hi"},
                            {"type": "image_url", "image_url": {"url": "data:image/png,abc"}},
                        ],
                    }
                ]
            },
            "messages[0].content[1]",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}],
                    }
                ]
            },
            "messages[0].content[0]",
        ),
        ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "at least one"),
        ({"messages": [{"role": "function", "content": "x", "name": "f"}]}, "messages[0]"),
        (
            {"messages": [*HELLO, {"role": "tool", "tool_call_id": "nope", "content": "x"}]},
            "messages[1]",
        ),
        (
            {
                "messages": [
                    *HELLO,
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "c",
                                "type": "function",
                                "function": {"name": "f", "arguments": "[1]"},
                            }
                        ],
                    },
                ]
            },
            "messages[1].tool_calls[0]",
        ),
        ({"messages": HELLO, "tools": [{"type": "code_interpreter"}]}, "tools[0]"),
        ({"messages": HELLO, "tools": [WEATHER_TOOL], "tool_choice": "sometimes"}, "tool_choice"),
        ({"messages": HELLO, "response_format": {"type": "xml"}}, "response_format"),
        ({"messages": HELLO, "temperature": "hot"}, "temperature"),
    ],
)
async def test_untranslatable_requests_raise_invalid_request(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str, request_kwargs: dict[str, Any], where: str
) -> None:
    # No route is registered: any HTTP call would fail the test (respx asserts all mocked).
    error = await raised(complete(adapter, mode, ChatRequest(**request_kwargs)))

    assert isinstance(error, InvalidRequest)
    assert where in str(error)


# ---------------------------------------------------------------------------------------------
# Streaming


async def test_stream_text(httpx2_mock: Any, adapter: GeminiAdapter, mode: str) -> None:
    usage = wire.usage_metadata(
        prompt_tokens=9, output_tokens=3, cached_tokens=4, thoughts_tokens=2
    )
    route = respond_stream(httpx2_mock, wire.stream_response(["Hel", "lo", "!"], usage=usage))

    stream, chunks = await stream_all(adapter, mode, ChatRequest(messages=HELLO, stream=True))

    assert all(isinstance(c, openai.types.chat.ChatCompletionChunk) for c in chunks)
    assert {c.id for c in chunks} == {"resp-gemini-1"}
    assert len({c.created for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].delta.content for c in chunks[1:4]] == ["Hel", "lo", "!"]
    assert chunks[4].choices[0].finish_reason == "stop"
    assert chunks[4].choices[0].delta.content is None
    assert chunks[-1].choices == []
    expected = TokenUsage(
        input_tokens=9, output_tokens=5, cached_input_tokens=4, reasoning_tokens=2
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 14
    assert chunks[-1].usage.prompt_tokens_details is not None
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens == 4
    assert stream.usage == expected  # billed from the last event, not summed
    assert stream.content_chunks == 3
    assert len(chunks) == 6
    # the SDK always sends a (here empty) generationConfig
    assert sent(route) == {
        "contents": [{"role": "user", "parts": [{"text": "Hello"}]}],
        "generationConfig": {},
    }


async def test_stream_tool_calls(httpx2_mock: Any, adapter: GeminiAdapter, mode: str) -> None:
    calls = [
        wire.FunctionCall("get_weather", {"city": "Paris"}, thought_signature="c2ln"),
        wire.FunctionCall("get_weather", {"city": "Lyon"}),
    ]
    body = wire.stream_response(["Checking."], function_calls=calls)
    route = respond_stream(httpx2_mock, body)
    request = ChatRequest(messages=HELLO, tools=[WEATHER_TOOL], tool_choice="required", stream=True)

    stream, chunks = await stream_all(adapter, mode, request)

    assert sent(route)["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert text_of(chunks) == "Checking."
    deltas = [
        c.choices[0].delta.tool_calls for c in chunks if c.choices and c.choices[0].delta.tool_calls
    ]
    assert len(deltas) == 2
    first, second = deltas[0][0], deltas[1][0]
    assert (first.index, first.type) == (0, "function")
    assert first.id is not None and first.id.startswith("call_")
    assert first.function is not None
    assert (first.function.name, json.loads(first.function.arguments or "")) == (
        "get_weather",
        {"city": "Paris"},
    )
    assert first.model_dump()["extra_content"] == {"google": {"thought_signature": "c2ln"}}
    assert second.index == 1 and second.id is not None and second.id != first.id
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].choices == []
    assert stream.content_chunks == 3


async def test_stream_blocked_prompt(httpx2_mock: Any, adapter: GeminiAdapter, mode: str) -> None:
    body = wire.sse_body([wire.generate_content_response(prompt_block_reason="PROHIBITED_CONTENT")])
    respond_stream(httpx2_mock, body)

    stream, chunks = await stream_all(adapter, mode, ChatRequest(messages=HELLO))

    assert chunks[-2].choices[0].finish_reason == "content_filter"
    assert chunks[-2].choices[0].delta.refusal == "Gemini blocked the prompt: PROHIBITED_CONTENT"
    assert chunks[-1].choices == []
    assert stream.content_chunks == 0


async def test_stream_max_tokens(httpx2_mock: Any, adapter: GeminiAdapter, mode: str) -> None:
    respond_stream(httpx2_mock, wire.stream_response(["a", "b"], finish_reason="MAX_TOKENS"))

    _, chunks = await stream_all(adapter, mode, ChatRequest(messages=HELLO, max_tokens=2))

    assert chunks[-2].choices[0].finish_reason == "length"


async def test_stream_close_releases_the_http_response(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    body = TrackedStream([wire.stream_response(["a", "b", "c"])])
    httpx2_mock.post(STREAM_URL).mock(
        return_value=httpx.Response(200, stream=body, headers=SSE_HEADERS)
    )

    stream = await open_stream(adapter, mode, ChatRequest(messages=HELLO))
    if isinstance(stream, ChunkStream):
        next(stream)
        stream.close()
    else:
        await stream.__anext__()
        await stream.aclose()

    assert body.closed


async def test_error_status_raises_from_stream_itself(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    httpx2_mock.post(STREAM_URL).mock(
        return_value=httpx.Response(429, json=wire.rate_limit_error(retry_delay_s=3))
    )

    error = await raised(open_stream(adapter, mode, ChatRequest(messages=HELLO)))

    assert isinstance(error, RateLimited)
    assert error.retry_after == 3


async def test_error_event_inside_200_stream(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    body = wire.stream_response(["Hel", "lo"], finish_reason="STOP")
    events = body.split(b"\r\n\r\n")[:1]  # the first event only, then the error
    error_event = wire.stream_error_event(503, "The model is overloaded. Please try again later.")
    respond_stream(httpx2_mock, b"\r\n\r\n".join(events) + b"\r\n\r\n" + error_event)

    stream = await open_stream(adapter, mode, ChatRequest(messages=HELLO))
    received: list[Any] = []

    async def read_all() -> None:
        if isinstance(stream, ChunkStream):
            received.extend(stream)
        else:
            async for chunk in stream:
                received.append(chunk)

    error = await raised(read_all())

    assert type(error) is ProviderUnavailable
    assert error.status_code == 503
    assert error.code == "UNAVAILABLE"
    assert "overloaded" in error.message
    assert text_of(received) == "Hel"
    assert error.chunks_received == 1
    assert stream.usage is None


async def test_error_event_first_raises_from_stream_itself(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    respond_stream(httpx2_mock, wire.stream_error_event(500, "Internal error encountered."))

    error = await raised(open_stream(adapter, mode, ChatRequest(messages=HELLO)))

    assert type(error) is ProviderUnavailable
    assert error.status_code == 500


async def test_stream_event_that_is_not_a_json_object_is_a_provider_failure(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    first_event = wire.sse_body(wire.stream_events(["Hel", "lo"])[:1])
    respond_stream(httpx2_mock, first_event + b"data: [1, 2]\r\n\r\n")

    stream = await open_stream(adapter, mode, ChatRequest(messages=HELLO))
    received: list[Any] = []

    async def read_all() -> None:
        if isinstance(stream, ChunkStream):
            received.extend(stream)
        else:
            async for chunk in stream:
                received.append(chunk)

    error = await raised(read_all())

    assert type(error) is ProviderUnavailable
    assert "not a JSON object" in error.message
    assert text_of(received) == "Hel"
    assert error.chunks_received == 1


async def test_stream_event_of_the_wrong_shape_is_a_provider_failure(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    first_event = wire.sse_body(wire.stream_events(["Hel", "lo"])[:1])
    respond_stream(httpx2_mock, first_event + b'data: {"candidates": "oops"}\r\n\r\n')

    stream = await open_stream(adapter, mode, ChatRequest(messages=HELLO))
    received: list[Any] = []

    async def read_all() -> None:
        if isinstance(stream, ChunkStream):
            received.extend(stream)
        else:
            async for chunk in stream:
                received.append(chunk)

    error = await raised(read_all())

    assert type(error) is ProviderUnavailable
    assert "unreadable stream event" in error.message
    assert error.chunks_received == 1


async def test_connection_lost_mid_stream(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    first_event = wire.sse_body(wire.stream_events(["Hel", "lo"])[:1])
    body = TrackedStream([first_event], fail_with=httpcore2.ReadError("connection reset"))
    httpx2_mock.post(STREAM_URL).mock(
        return_value=httpx.Response(200, stream=body, headers=SSE_HEADERS)
    )

    stream = await open_stream(adapter, mode, ChatRequest(messages=HELLO))
    received: list[Any] = []

    async def read_all() -> None:
        if isinstance(stream, ChunkStream):
            received.extend(stream)
        else:
            async for chunk in stream:
                received.append(chunk)

    error = await raised(read_all())

    assert isinstance(error, ProviderConnectionError)
    assert text_of(received) == "Hel"
    assert error.chunks_received == 1


# ---------------------------------------------------------------------------------------------
# Errors


def err(code: int, message: str, status: str | None = None) -> dict[str, Any]:
    return wire.error_body(code, message, status=status)


ERROR_TABLE = [
    (401, err(401, "Invalid authentication credentials."), AuthenticationFailed, "UNAUTHENTICATED"),
    (403, err(403, "Permission denied."), AuthenticationFailed, "PERMISSION_DENIED"),
    (400, wire.invalid_api_key_error(), AuthenticationFailed, "API_KEY_INVALID"),
    (400, wire.context_too_long_error(), ContextTooLong, "INVALID_ARGUMENT"),
    (400, err(400, "Invalid JSON payload received."), InvalidRequest, "INVALID_ARGUMENT"),
    (404, err(404, "models/nope is not found."), InvalidRequest, "NOT_FOUND"),
    (409, err(409, "Aborted."), InvalidRequest, "ABORTED"),
    (413, err(413, "Request payload too large."), InvalidRequest, "INVALID_ARGUMENT"),
    (422, err(422, "Unprocessable.", "INVALID_ARGUMENT"), InvalidRequest, "INVALID_ARGUMENT"),
    (429, wire.rate_limit_error(), RateLimited, "RESOURCE_EXHAUSTED"),
    (500, err(500, "Internal error encountered."), ProviderUnavailable, "INTERNAL"),
    (502, err(502, "Bad gateway.", "UNAVAILABLE"), ProviderUnavailable, "UNAVAILABLE"),
    (503, err(503, "The model is overloaded."), ProviderUnavailable, "UNAVAILABLE"),
    (504, err(504, "Deadline exceeded."), ProviderUnavailable, "DEADLINE_EXCEEDED"),
    (529, err(529, "Overloaded.", "UNAVAILABLE"), ProviderOverloaded, "UNAVAILABLE"),
]


@pytest.mark.parametrize(("status", "body", "expected", "code"), ERROR_TABLE)
@pytest.mark.parametrize("streamed", [False, True])
async def test_error_table(
    httpx2_mock: Any,
    adapter: GeminiAdapter,
    mode: str,
    streamed: bool,
    status: int,
    body: dict[str, Any],
    expected: type[ProviderError],
    code: str,
) -> None:
    url = STREAM_URL if streamed else URL
    route = httpx2_mock.post(url).mock(
        return_value=httpx.Response(status, json=body, headers=wire.error_headers())
    )
    request = ChatRequest(messages=HELLO)
    call = open_stream(adapter, mode, request) if streamed else complete(adapter, mode, request)

    error = await raised(call)

    assert type(error) is expected
    assert error.status_code == status
    assert error.code == code
    assert error.provider == "gemini" and error.model == MODEL
    assert body["error"]["message"] in error.message
    assert route.call_count == 1  # no SDK retries, even for 429 / 5xx


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        (wire.error_headers(retry_after="7"), wire.rate_limit_error(), 7.0),
        (wire.error_headers(retry_after_ms="1500"), wire.rate_limit_error(), 1.5),
        (wire.error_headers(), wire.rate_limit_error(retry_delay_s=17), 17.0),
        (wire.error_headers(), wire.rate_limit_error(retry_delay_s=0.25), 0.25),
        (wire.error_headers(retry_after="2"), wire.rate_limit_error(retry_delay_s=17), 2.0),
        (wire.error_headers(), wire.rate_limit_error(), None),
    ],
)
async def test_retry_after(
    httpx2_mock: Any,
    adapter: GeminiAdapter,
    mode: str,
    headers: dict[str, str],
    body: dict[str, Any],
    expected: float | None,
) -> None:
    httpx2_mock.post(URL).mock(return_value=httpx.Response(429, json=body, headers=headers))

    error = await raised(complete(adapter, mode, ChatRequest(messages=HELLO)))

    assert isinstance(error, RateLimited)
    assert error.retry_after == expected


async def test_request_id_from_error_details(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    details = [{"@type": "type.googleapis.com/google.rpc.RequestInfo", "requestId": "req-77"}]
    body = wire.error_body(500, "Internal error encountered.", details=details)
    httpx2_mock.post(URL).mock(return_value=httpx.Response(500, json=body))

    error = await raised(complete(adapter, mode, ChatRequest(messages=HELLO)))

    assert error.request_id == "req-77"


@pytest.mark.parametrize(
    ("transport_error", "expected"),
    [
        (httpcore2.ReadTimeout("read timed out"), ProviderTimeout),
        (httpcore2.ConnectTimeout("connect timed out"), ProviderTimeout),
        (httpcore2.PoolTimeout(""), ProviderTimeout),
        (httpcore2.ConnectError("connection refused"), ProviderConnectionError),
        (httpcore2.RemoteProtocolError("peer closed connection"), ProviderConnectionError),
        (httpcore2.ReadError("connection reset"), ProviderConnectionError),
    ],
)
@pytest.mark.parametrize("streamed", [False, True])
async def test_timeouts_and_connection_errors(
    httpx2_mock: Any,
    adapter: GeminiAdapter,
    mode: str,
    streamed: bool,
    transport_error: Exception,
    expected: type[ProviderError],
) -> None:
    url = STREAM_URL if streamed else URL
    route = httpx2_mock.post(url).mock(side_effect=transport_error)
    request = ChatRequest(messages=HELLO)
    call = open_stream(adapter, mode, request) if streamed else complete(adapter, mode, request)

    error = await raised(call)

    assert type(error) is expected
    assert error.retryable
    assert error.status_code is None
    assert type(transport_error).__name__ in error.message
    assert route.call_count == 1


async def test_garbled_200_response_is_provider_unavailable(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    httpx2_mock.post(URL).mock(return_value=httpx.Response(200, content=b"<html>oops</html>"))

    error = await raised(complete(adapter, mode, ChatRequest(messages=HELLO)))

    assert type(error) is ProviderUnavailable


async def test_canary_key_never_leaks_from_errors(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str
) -> None:
    echo = wire.error_body(400, f"API key not valid: {CANARY_KEY}")
    httpx2_mock.post(URL).mock(return_value=httpx.Response(400, json=echo))

    error = await raised(complete(adapter, mode, ChatRequest(messages=HELLO)))

    assert "[REDACTED]" in str(error)


def test_map_error_ignores_unrelated_exceptions() -> None:
    assert map_error(KeyError("x"), provider="gemini", model=MODEL) is None
    assert map_error(RuntimeError("x"), provider="gemini", model=MODEL) is None


def test_map_error_in_stream_error_without_response() -> None:
    from google.genai import errors

    exc = errors.ServerError(
        503, {"error": {"code": 503, "message": "busy", "status": "UNAVAILABLE"}}
    )
    mapped = map_error(exc, provider="gemini", model=MODEL)

    assert type(mapped) is ProviderUnavailable
    assert mapped.retry_after is None


# ---------------------------------------------------------------------------------------------
# Clients, configuration, timeouts


async def test_sdk_client_created_once_and_reused(
    httpx2_mock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[genai.Client] = []
    original = genai.Client

    def counting(*args: Any, **kwargs: Any) -> genai.Client:
        client = original(*args, **kwargs)
        made.append(client)
        return client

    monkeypatch.setattr(genai, "Client", counting)
    respond(httpx2_mock, wire.generate_content_response("hi"))
    respond_stream(httpx2_mock, wire.stream_response())
    adapter = make_adapter()
    request = ChatRequest(messages=HELLO)

    for _ in range(3):
        adapter.complete(MODEL, request)
        list(adapter.stream(MODEL, request))
    assert len(made) == 1  # the sync client
    for _ in range(3):
        await adapter.acomplete(MODEL, request)
        await drain(await adapter.astream(MODEL, request))
    assert len(made) == 2  # plus the async client

    adapter.close()
    await adapter.aclose()
    adapter.complete(MODEL, request)  # a closed adapter makes a new client on next use
    assert len(made) == 3


async def test_base_url_api_version_and_headers(httpx2_mock: Any, mode: str) -> None:
    adapter = make_adapter(
        base_url="https://proxy.example.test/gemini",
        api_version="v1beta",
        headers={"x-team": "search"},
    )
    url = wire.generate_content_url(
        MODEL, base_url="https://proxy.example.test/gemini", api_version="v1beta"
    )
    route = respond(httpx2_mock, wire.generate_content_response("hi"), url=url)

    await complete(adapter, mode, ChatRequest(messages=HELLO))

    request = route.calls.last.request
    assert request.headers["x-team"] == "search"
    assert request.headers["x-goog-api-key"] == CANARY_KEY


async def test_timeouts_from_config_and_per_call(httpx2_mock: Any, mode: str) -> None:
    adapter = make_adapter(timeout=30, connect_timeout=2)
    route = respond(httpx2_mock, wire.generate_content_response("hi"))

    await complete(adapter, mode, ChatRequest(messages=HELLO))
    timeout = route.calls.last.request.extensions["timeout"]
    assert (timeout["connect"], timeout["read"], timeout["write"]) == (2, 30, 30)

    await complete(adapter, mode, ChatRequest(messages=HELLO, timeout=1.5))
    timeout = route.calls.last.request.extensions["timeout"]
    assert (timeout["connect"], timeout["read"]) == (1.5, 1.5)
    assert route.calls.last.request.headers["x-server-timeout"] == "2"


async def test_default_timeout_is_not_infinite(httpx2_mock: Any, adapter: GeminiAdapter) -> None:
    route = respond(httpx2_mock, wire.generate_content_response("hi"))

    adapter.complete(MODEL, ChatRequest(messages=HELLO))

    timeout = route.calls.last.request.extensions["timeout"]
    assert (timeout["connect"], timeout["read"]) == (5.0, 600.0)


async def test_per_call_timeout_applies_to_streams(httpx2_mock: Any, mode: str) -> None:
    adapter = make_adapter()
    route = respond_stream(httpx2_mock, wire.stream_response())

    await stream_all(adapter, mode, ChatRequest(messages=HELLO, timeout=0.25))

    timeout = route.calls.last.request.extensions["timeout"]
    assert (timeout["connect"], timeout["read"]) == (0.25, 0.25)


def test_unset_api_key_env_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    config = ProviderConfig(
        type="gemini",
        name="gemini",
        api_key=MissingEnv("GEMINI_API_KEY", "<test>", 3, "providers.gemini.api_key"),
    )
    adapter = GeminiAdapter("gemini", config)

    with pytest.raises(ConfigError, match="GEMINI_API_KEY"):
        adapter.complete(MODEL, ChatRequest(messages=HELLO))


def test_no_api_key_at_all_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    adapter = GeminiAdapter("gemini", ProviderConfig(type="gemini", name="gemini"))

    with pytest.raises(ConfigError, match="api_key"):
        adapter.complete(MODEL, ChatRequest(messages=HELLO))


def test_api_key_from_the_sdk_environment_variables(
    monkeypatch: pytest.MonkeyPatch, httpx2_mock: Any
) -> None:
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", "AIzaEnvironmentKey0123456789abcdef")
    route = respond(httpx2_mock, wire.generate_content_response("hi"))
    adapter = GeminiAdapter("gemini", ProviderConfig(type="gemini", name="gemini"))

    adapter.complete(MODEL, ChatRequest(messages=HELLO))

    assert (
        route.calls.last.request.headers["x-goog-api-key"] == "AIzaEnvironmentKey0123456789abcdef"
    )
    assert redact("key=AIzaEnvironmentKey0123456789abcdef") == "key=[REDACTED]"


def test_async_client_is_usable_from_successive_event_loops(httpx2_mock: Any) -> None:
    respond(httpx2_mock, wire.generate_content_response("hi"))
    adapter = make_adapter()
    request = ChatRequest(messages=HELLO)

    for _ in range(2):  # e.g. two asyncio.run() calls in one process
        result = asyncio.run(adapter.acomplete(MODEL, request))
        assert result.completion.choices[0].message.content == "hi"


def test_async_transport_is_httpx2_when_configured() -> None:
    # google-genai switches its async path to aiohttp whenever aiohttp is importable (it is a
    # dependency now); transport: httpx must still mean httpx2, which respx intercepts.
    assert importlib.util.find_spec("aiohttp") is not None
    adapter = make_adapter(transport="httpx")
    assert adapter._async_client()._api_client._use_aiohttp() is False


def test_vertex_env_does_not_reroute(monkeypatch: pytest.MonkeyPatch, httpx2_mock: Any) -> None:
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    route = respond(httpx2_mock, wire.generate_content_response("hi"))

    make_adapter().complete(MODEL, ChatRequest(messages=HELLO))

    assert route.call_count == 1


@pytest.mark.parametrize(
    "content",
    [b"<html>502 from a proxy</html>", b'["not", "a", "response"]'],
    ids=["not-json", "not-an-object"],
)
async def test_a_200_whose_body_is_not_a_response_is_a_provider_failure(
    httpx2_mock: Any, adapter: GeminiAdapter, mode: str, content: bytes
) -> None:
    """The adapter reads the body itself (``should_return_http_response``), so a broken one
    must still be a gateway error that falls back, not a crash."""
    httpx2_mock.post(URL).mock(
        return_value=httpx.Response(
            200, content=content, headers={"content-type": "application/json"}
        )
    )
    with pytest.raises(ProviderUnavailable) as info:
        await complete(adapter, mode, ChatRequest(messages=[{"role": "user", "content": "hi"}]))
    assert info.value.provider == "gemini"
