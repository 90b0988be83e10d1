"""``gateway chat "prompt"``: stream one answer, then say who answered, how, and what it cost.

The answer goes to stdout as it arrives; the account of the call (provider, attempts, cost)
goes to stderr, so ``gateway chat "..." > answer.txt`` keeps only the answer.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.text import Text

from gateway.cli._common import CliError, account_option, config_option, open_gateway, usd
from gateway.cli._common import state as cli_state

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

    from gateway import Gateway
    from gateway._attempts import Attempt

__all__ = ["chat"]


@click.command()
@click.argument("prompt")
@click.option(
    "--route",
    metavar="NAME",
    help="A route of the config, or provider/model [default: the config's first route].",
)
@click.option("--system", metavar="TEXT", help="A system prompt.")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Most tokens the answer may have.")
@account_option
@config_option
def chat(
    prompt: str,
    route: str | None,
    system: str | None,
    max_tokens: int | None,
    account: str | None,
    config_path: Path | None,
) -> None:
    """Send PROMPT, stream the answer, then print who answered, the attempts and the cost."""
    err = cli_state().err
    messages: list[ChatCompletionMessageParam] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": prompt})
    with open_gateway(config_path) as gw:
        model = route or _first_route(gw)
        stream = gw.chat.completions.create(
            model=model,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
            max_tokens=max_tokens,
            account=account,
        )
        with stream:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    sys.stdout.write(chunk.choices[0].delta.content)
                    sys.stdout.flush()
        sys.stdout.write("\n")
        info = stream.gateway
        usage = stream.usage
        err.print(
            Text(
                f"answered by {info.provider}/{info.model} on route '{info.route}'",
                style="bold",
            )
        )
        for line in _attempt_lines(info.attempts):
            err.print(Text(f"  {line}"))
        tokens = f"{usage.prompt_tokens:,} in, {usage.completion_tokens:,} out" if usage else "–"
        cost = usd(usage.cost) if usage is not None and usage.cost is not None else "not priced"
        payer = (
            f" · account '{account or gw.config.credits.default_account}'"
            if (gw.config.credits is not None)
            else ""
        )
        err.print(Text(f"tokens {tokens} · cost {cost}{payer}"))


def _first_route(gw: Gateway) -> str:
    routes = list(gw.config.routes)
    if not routes:
        raise CliError(
            f"{gw.config.source} has no routes; pass --route provider/model (e.g. "
            "openai/gpt-4o) or add a routes: section"
        )
    return routes[0]


def _attempt_lines(attempts: tuple[Attempt, ...]) -> list[str]:
    """Every attempt on one line each, numbered."""
    return [f"attempt {n}: {a.describe()}" for n, a in enumerate(attempts, 1)]
