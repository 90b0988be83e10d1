"""instructor: ``instructor.from_openai(gw.openai_client())``, or ``instructor.patch(gw)``.

No release of instructor installs beside our ``openai>=3.57``: 1.13 to 1.16 require
``openai<3``, and 1.17 (which takes ``openai<4``) pins ``jiter<0.15`` and ``rich<15`` while
openai 3.57 needs ``jiter>=0.16``. So it is not in the ``frameworks`` extra: the first run of
these tests installs instructor 1.17.0 (and the two small packages it imports that we lack)
with ``--no-deps`` into the pytest cache, and puts that folder at the *end* of ``sys.path``,
so every package we have (openai, jiter, rich, pydantic) is ours. If it cannot be installed
(no package index), the tests skip and say why.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import BaseModel

from gateway import AsyncGateway, Gateway
from gateway.testing.mock import MockProviders
from tests.frameworks.conftest import CLAUDE, GPT, said

INSTRUCTOR = ("instructor==1.17.0", "jinja2>=3.1.4,<4", "markupsafe>=2", "docstring-parser<1")
HELLO = [{"role": "user", "content": "hello"}]
CAPITAL = [{"role": "user", "content": "Capital of France?"}]


class City(BaseModel):
    name: str
    country: str


def _install(folder: Path) -> str | None:
    """Install instructor into ``folder``; None when done, else why it could not be."""
    if (folder / "instructor" / "__init__.py").exists():
        return None
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    command += ["--target", str(folder), *INSTRUCTOR]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"pip did not run: {exc}"
    if done.returncode != 0:
        return "pip install failed: " + " ".join(done.stderr.split()[-30:])
    return None


@pytest.fixture(scope="module")
def instructor(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> ModuleType:
    try:
        import instructor
    except ImportError:
        cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
        name = "instructor-1.17.0"
        folder = cache.mkdir(name) if cache is not None else tmp_path_factory.mktemp(name)
        problem = _install(folder)
        if problem is not None:
            pytest.skip(f"instructor could not be installed for these tests ({problem})")
        sys.path.append(str(folder))
        import instructor
    return instructor


@pytest.fixture
def patched(instructor: ModuleType, flavour: str, gw: Gateway) -> Any:
    if flavour == "gateway":
        return instructor.patch(gw)
    return instructor.from_openai(gw.openai_client())


@pytest.fixture
def apatched(instructor: ModuleType, flavour: str, agw: AsyncGateway) -> Any:
    if flavour == "gateway":
        return instructor.patch(agw)
    return instructor.from_openai(agw.openai_client())


def test_from_openai_takes_the_in_process_client(instructor: ModuleType, gw: Gateway) -> None:
    with pytest.raises(Exception, match="OpenAI"):  # what the issue ran into
        instructor.from_openai(gw)
    assert isinstance(instructor.from_openai(gw.openai_client()), instructor.Instructor)


def test_a_plain_call(patched: Any, gateway_mock: MockProviders) -> None:
    completion = patched.chat.completions.create(model="smart", messages=HELLO, response_model=None)
    assert completion.choices[0].message.content == said(GPT, "hello")


async def test_a_plain_call_async(apatched: Any, gateway_mock: MockProviders) -> None:
    completion = await apatched.chat.completions.create(
        model="smart", messages=HELLO, response_model=None
    )
    assert completion.choices[0].message.content == said(GPT, "hello")


def test_a_tool_round_trip(patched: Any, gateway_mock: MockProviders) -> None:
    # An invalid tool call: instructor sends the validation error back as the tool's result.
    gateway_mock.openai.respond(tool_calls=[("City", {"name": "Paris"})])
    gateway_mock.openai.respond(tool_calls=[("City", {"name": "Paris", "country": "FR"})])
    city = patched.chat.completions.create(
        model="smart", messages=CAPITAL, response_model=City, max_retries=2
    )
    assert city.model_dump() == {"name": "Paris", "country": "FR"}
    retry = gateway_mock.openai.calls[1].body["messages"]
    assert [m["role"] for m in retry] == ["user", "assistant", "tool"]
    assert "country" in retry[-1]["content"]


async def test_a_tool_round_trip_async(apatched: Any, gateway_mock: MockProviders) -> None:
    gateway_mock.openai.respond(tool_calls=[("City", {"name": "Paris"})])
    gateway_mock.openai.respond(tool_calls=[("City", {"name": "Paris", "country": "FR"})])
    city = await apatched.chat.completions.create(
        model="smart", messages=CAPITAL, response_model=City, max_retries=2
    )
    assert city.model_dump() == {"name": "Paris", "country": "FR"}
    assert len(gateway_mock.openai.calls) == 2


def test_structured_output(patched: Any, gateway_mock: MockProviders) -> None:
    gateway_mock.openai.respond(tool_calls=[("City", {"name": "Paris", "country": "FR"})])
    city = patched.chat.completions.create(model="smart", messages=CAPITAL, response_model=City)
    assert city.model_dump() == {"name": "Paris", "country": "FR"}
    assert gateway_mock.openai.calls[0].body["tool_choice"]["function"]["name"] == "City"


async def test_structured_output_async_json_schema_on_claude(
    instructor: ModuleType, flavour: str, agw: AsyncGateway, gateway_mock: MockProviders
) -> None:
    mode = instructor.Mode.JSON_SCHEMA
    if flavour == "gateway":
        client = instructor.patch(agw, mode=mode)
    else:
        client = instructor.from_openai(agw.openai_client(), mode=mode)
    gateway_mock.anthropic.respond(text='{"name": "Rome", "country": "IT"}')
    city = await client.chat.completions.create(
        model="claude", messages=CAPITAL, response_model=City
    )
    assert city.model_dump() == {"name": "Rome", "country": "IT"}
    assert "output_config" in gateway_mock.anthropic.calls[0].body


def _stream(instructor: ModuleType, client: Any, flavour: str, route: str) -> Any:
    if flavour == "gateway":  # patch() patches create only
        return client.chat.completions.create(
            model=route, messages=CAPITAL, response_model=instructor.Partial[City], stream=True
        )
    return client.chat.completions.create_partial(
        model=route, messages=CAPITAL, response_model=City
    )


def test_streaming(
    instructor: ModuleType, patched: Any, flavour: str, gateway_mock: MockProviders
) -> None:
    gateway_mock.openai.respond(tool_calls=[("City", {"name": "Paris", "country": "FR"})])
    partials = list(_stream(instructor, patched, flavour, "smart"))
    assert partials[-1].model_dump() == {"name": "Paris", "country": "FR"}
    assert gateway_mock.openai.calls[0].stream


async def test_streaming_async(
    instructor: ModuleType, apatched: Any, flavour: str, gateway_mock: MockProviders
) -> None:
    gateway_mock.anthropic.respond(tool_calls=[("City", {"name": "Rome", "country": "IT"})])
    partials = [p async for p in await _astream(instructor, apatched, flavour)]
    assert partials[-1].model_dump() == {"name": "Rome", "country": "IT"}


async def _astream(instructor: ModuleType, client: Any, flavour: str) -> Any:
    stream = _stream(instructor, client, flavour, "claude")
    return await stream if flavour == "gateway" else stream


def test_the_route_falls_back_from_openai_to_claude(
    patched: Any, gateway_mock: MockProviders
) -> None:
    gateway_mock.openai.fail(503)
    gateway_mock.anthropic.respond(tool_calls=[("City", {"name": "Paris", "country": "FR"})])
    city = patched.chat.completions.create(model="smart", messages=CAPITAL, response_model=City)
    assert city.model_dump() == {"name": "Paris", "country": "FR"}
    assert gateway_mock.anthropic.calls[0].body["tool_choice"]["name"] == "City"


async def test_the_route_falls_back_from_openai_to_claude_async(
    apatched: Any, gateway_mock: MockProviders
) -> None:
    gateway_mock.openai.fail(429)
    completion = await apatched.chat.completions.create(
        model="smart", messages=HELLO, response_model=None
    )
    assert completion.choices[0].message.content == said(CLAUDE, "hello")
