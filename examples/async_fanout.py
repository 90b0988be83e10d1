"""Fan out with AsyncGateway: the same question to every provider at once, then a batch of
prompts over one route with bounded concurrency.

Runs offline on ``offline.yaml`` (fake providers named after the real ones). With your keys
in the environment, ``python examples/async_fanout.py examples/production.yaml`` runs the
same code against OpenAI, Anthropic and Gemini.
"""

import asyncio
import sys
from decimal import Decimal
from pathlib import Path

from gateway import AsyncGateway
from gateway.types import GatewayChatCompletion

CONFIG = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("offline.yaml")
MODELS = ["openai/gpt-4o", "anthropic/claude-sonnet-4-6", "gemini/gemini-2.5-flash"]
PROMPTS = [f"Write a one-line product description for item #{n}." for n in range(12)]


async def ask(agw: AsyncGateway, model: str, prompt: str) -> GatewayChatCompletion:
    return await agw.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        max_tokens=100,
        tags={"example": "async_fanout"},
    )


async def main() -> None:
    async with AsyncGateway.from_config(CONFIG) as agw:
        if (await agw.credits.balance()).available < Decimal("1"):
            await agw.credits.grant(
                Decimal("1"), note="async_fanout example"
            )  # a demo's trial credit

        # 1. One question, every provider, concurrently: compare answers and prices.
        question = "In one sentence: why do distributed systems need timeouts?"
        answers = await asyncio.gather(*(ask(agw, model, question) for model in MODELS))
        for resp in answers:
            cost = resp.usage.cost if resp.usage else None
            print(f"{resp.gateway.provider:>9}: ${cost}  {resp.choices[0].message.content}")

        # 2. A batch over route "smart", at most 4 calls in flight; fallback works per call.
        limit = asyncio.Semaphore(4)

        async def bounded(prompt: str) -> GatewayChatCompletion:
            async with limit:
                return await ask(agw, "smart", prompt)

        batch = await asyncio.gather(*(bounded(p) for p in PROMPTS))
        total = sum((r.usage.cost or Decimal(0) for r in batch if r.usage), Decimal(0))
        print(f"batch: {len(batch)} answers on route 'smart', ${total} in all")


if __name__ == "__main__":
    asyncio.run(main())
