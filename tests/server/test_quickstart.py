"""The README's server quickstart, command by command, offline: the demo's config (fake
providers under the real providers' names, no API keys), a grant, a key from
`gateway keys create`, `gateway serve`, and the OpenAI SDK pointed at it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from openai import OpenAI

from tests.server._serve import ROOT, serve

pytestmark = pytest.mark.slow


def gateway(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)},  # no provider keys anywhere
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_offline_config_serves_the_openai_sdk_with_no_provider_keys(tmp_path: Path) -> None:
    shutil.copy(ROOT / "examples" / "offline.yaml", tmp_path / "gateway.yaml")
    gateway("credits", "grant", "5", cwd=tmp_path)
    key = gateway("keys", "create", "--name", "me", cwd=tmp_path).splitlines()[-1]
    assert key.startswith("gk_")

    server = serve(tmp_path / "gateway.yaml", tmp_path)
    try:
        client = OpenAI(base_url=server.base_url, api_key=key, max_retries=0)
        resp = client.chat.completions.create(
            model="smart", messages=[{"role": "user", "content": "Hello"}]
        )
        assert resp.choices[0].message.content == "[openai/gpt-4o] You said: Hello"
        assert resp.usage is not None and Decimal(resp.usage.model_extra["cost"]) > 0
        streamed = client.chat.completions.create(
            model="fast", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed)
        assert text == "[gemini/gemini-2.5-flash] You said: Hi"
    finally:
        code, err = server.stop()
    assert code == 0, err
    assert "Traceback" not in err


def test_a_port_already_taken_is_one_error_line_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / "gateway.yaml").write_text(
        "providers: {fake: {}}\nroutes: {r: {targets: [fake/m]}}\n"
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        f"error: the server could not start on 127.0.0.1:{port} (see the line above)"
    )
