"""Embeddings and images, paid from the same credit account as chat. Runs offline.

``offline.yaml``'s providers are the built-in fake provider under OpenAI's, Claude's and
Gemini's names: the fake makes deterministic vectors and small PNGs, and is charged what the
real models cost (genai-prices: text-embedding-3-small $0.02 per 1M input tokens; gpt-image-1
$5 per 1M prompt tokens and $40 per 1M image tokens). Each call is held before it is sent and
settled at its usage, like a chat call; usage reports group them by operation.
"""

import base64
from decimal import Decimal
from pathlib import Path

from gateway import Gateway

gw = Gateway.from_config(Path(__file__).with_name("offline.yaml"))
gw.credits.grant(Decimal("1"), note="media trial")

vectors = gw.embeddings.create(
    model="openai/text-embedding-3-small",
    input=["a red bicycle", "a blue car"],
    tags={"feature": "search"},
)
print(
    f"embeddings: {len(vectors.data)} vectors of {len(vectors.data[0].embedding)} numbers, "
    f"{vectors.usage.prompt_tokens} tokens, cost ${vectors.usage.cost:f}"
)

image = gw.images.generate(
    model="openai/gpt-image-1", prompt="a red bicycle", size="1024x1024", quality="low"
)
assert image.data is not None and image.data[0].b64_json is not None and image.usage is not None
png = base64.b64decode(image.data[0].b64_json)
print(
    f"image: a {len(png)}-byte PNG, {image.usage.output_tokens} image tokens, "
    f"cost ${image.usage.cost:f}"
)

for row in gw.credits.usage(group_by="operation"):
    print(f"{row['operation']:>10}: {row.requests} call(s), ${row.cost:f}")
gw.close()
