"""The fake provider's embeddings and images: deterministic, offline, scriptable; and the
offline gateway billing them (``gateway usage --by operation`` shows them)."""

from __future__ import annotations

import base64
import json
import math
import struct
import zlib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway import Gateway
from gateway.config import ProviderConfig
from gateway.errors import RateLimited
from gateway.providers._fake_media import fake_png
from gateway.providers.base import TokenUsage
from gateway.providers.fake import FakeAdapter
from gateway.providers.media import EmbeddingRequest, ImageRequest, image_tokens
from gateway.testing.clock import ManualClock

D = Decimal


def adapter() -> FakeAdapter:
    return FakeAdapter("fake", ProviderConfig(type="fake", name="fake"))


def png_size(data: bytes) -> tuple[int, int]:
    """Check a PNG's chunks (CRCs, decompressible data) and return its size."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    pos, size, idat = 8, (0, 0), b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body)
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height = size
    assert len(zlib.decompress(idat)) == height * (1 + 3 * width)
    return size


def test_vectors_are_deterministic_unit_vectors_per_model() -> None:
    fake = adapter()
    one = fake.embed("text-embedding-3-small", EmbeddingRequest(["hello", "world"]))
    again = fake.embed("text-embedding-3-small", EmbeddingRequest(["hello"]))
    other = fake.embed("other-model", EmbeddingRequest(["hello"], dimensions=8))
    assert len(one.vectors[0]) == 1536 and len(other.vectors[0]) == 8
    assert one.vectors[0] == again.vectors[0]
    assert one.vectors[0] != one.vectors[1]
    assert math.isclose(sum(v * v for v in one.vectors[0]), 1.0)
    assert one.usage == TokenUsage(input_tokens=4)  # 2 + 2: one token per four characters
    assert fake.calls[0].request == EmbeddingRequest(["hello", "world"])


def test_images_are_small_valid_pngs() -> None:
    fake = adapter()
    result = fake.generate_images("gpt-image-1", ImageRequest("a fox", n=2, size="1536x1024"))
    images = [base64.b64decode(item["b64_json"]) for item in result.data["data"]]
    assert [png_size(image) for image in images] == [(24, 16), (24, 16)]
    assert images[0] != images[1]
    per_image = image_tokens("1536x1024", "medium")
    assert result.usage == TokenUsage(
        input_tokens=2, output_tokens=2 * per_image, output_image_tokens=2 * per_image
    )
    url = fake.generate_images("m", ImageRequest("a fox", response_format="url"))
    assert url.data["data"][0]["url"].startswith("data:image/png;base64,iVBOR")
    assert png_size(fake_png("x")) == (16, 16)


async def test_scripted_failures_and_usage_apply_to_media_calls() -> None:
    fake = adapter()
    fake.script.fail(429, retry_after=2).respond(usage=TokenUsage(input_tokens=99))
    with pytest.raises(RateLimited):
        await fake.aembed("m", EmbeddingRequest(["x"]))
    result = await fake.aembed("m", EmbeddingRequest(["x"]))
    assert result.usage == TokenUsage(input_tokens=99)


OFFLINE = """
providers:
  openai: {type: fake}
routes:
  smart: {targets: [openai/gpt-4o-mini]}
  embed: {targets: [openai/text-embedding-3-small]}
  draw: {targets: [openai/gpt-image-1]}
credits:
  store: sqlite:///STORE
  flush_interval_ms: 0
pricing:
  openai/gpt-4o-mini: {input: "0.15", output: "0.60"}
"""


def test_offline_embeddings_and_images_are_billed_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from gateway.cli._app import cli

    config = tmp_path / "gateway.yaml"
    config.write_text(OFFLINE.replace("STORE", str(tmp_path / "credits.db")))
    with Gateway.from_config(config, clock=ManualClock()) as gw:
        gw.credits.grant(D("1"))
        gw.chat.completions.create(
            model="smart", messages=[{"role": "user", "content": "Hi"}], max_tokens=10
        )
        vectors = gw.embeddings.create(model="embed", input=["a" * 40, "b" * 40])
        image = gw.images.generate(model="draw", prompt="a red bicycle", quality="low")
        # The fake stands in for OpenAI, so OpenAI's genai-prices prices apply: 20 tokens at
        # $0.02 per 1M; 4 prompt tokens at $5 and 272 low-quality image tokens at $40.
        assert vectors.usage.cost == 20 * D("0.02") / 10**6
        assert image.usage is not None
        assert image.usage.cost == (4 * 5 + 272 * 40) / D(10**6)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli, ["usage", "--by", "operation", "--format", "json"], env={"COLUMNS": "120"}
    )
    assert result.exit_code == 0, result.output
    by_operation = {row["operation"]: row for row in json.loads(result.stdout)}
    assert set(by_operation) == {"chat", "embeddings", "images"}
    assert D(by_operation["embeddings"]["cost"]) == D("0.0000004")
    assert D(by_operation["images"]["cost"]) == D("0.01090")
    assert by_operation["images"]["output_tokens"] == 272
    table = CliRunner().invoke(cli, ["usage", "--by", "operation"], env={"COLUMNS": "120"})
    assert table.exit_code == 0, table.output
    assert "embeddings" in table.stdout and "images" in table.stdout


def test_unknown_usage_key_lists_operation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from gateway.cli._app import cli

    config = tmp_path / "gateway.yaml"
    config.write_text(OFFLINE.replace("STORE", str(tmp_path / "credits.db")))
    monkeypatch.chdir(tmp_path)
    result: Any = CliRunner().invoke(cli, ["usage", "--by", "operations"])
    assert result.exit_code == 2
    assert "operation" in result.output
