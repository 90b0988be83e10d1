"""The root ``gateway`` command and the one place where errors become one line.

Exit codes: 0 success; 1 the operation failed (a gateway error: bad config, refused call,
unknown account, provider failure...); 2 the command line itself was wrong (click's usage
errors: unknown option, bad amount, bad --since); 130 interrupted. No traceback is shown
unless ``gateway --debug ...``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from gateway.cli import batches, chat, config, credits, demo, keys, serve, usage, webhooks
from gateway.cli._common import (
    CONFIG_ENV,
    CliState,
    OrderedGroup,
    cli_logging,
    set_debug,
    state,
)

__all__ = ["cli", "run"]


def one_line(message: str) -> str:
    """A multi-line message (e.g. every attempt of a failed call) joined into one line."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    if not lines:
        return "unknown error"
    head, rest = lines[0], lines[1:]
    if not rest:
        return head
    return head.rstrip(":") + ": " + "; ".join(rest)


class GatewayCLI(OrderedGroup):
    """A click group whose ``main`` turns every error into one line and an exit code."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        cli_state = CliState()
        extra.setdefault("obj", cli_state)
        with cli_logging():
            code = self._run(cli_state, args, prog_name, complete_var, windows_expand_args, extra)
        if standalone_mode:
            sys.exit(code)
        return code

    def _run(
        self,
        cli_state: CliState,
        args: Sequence[str] | None,
        prog_name: str | None,
        complete_var: str | None,
        windows_expand_args: bool,
        extra: dict[str, Any],
    ) -> int:
        from gateway.errors import GatewayError

        try:
            result = super().main(
                args,
                prog_name,
                complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else "")
            return 2
        except click.ClickException as exc:
            hint = ""
            ctx = getattr(exc, "ctx", None)
            if isinstance(exc, click.UsageError) and ctx is not None:
                hint = f" (see '{ctx.command_path} --help')"
            _error(cli_state, exc.format_message() + hint)
            return exc.exit_code
        except click.Abort:
            _error(cli_state, "interrupted")
            return 130
        except GatewayError as exc:
            if cli_state.debug:
                raise
            _error(cli_state, exc.message)
            return 1
        except Exception as exc:
            if cli_state.debug:
                raise
            _error(
                cli_state,
                f"unexpected {type(exc).__name__}: {exc} (run `gateway --debug ...` for the "
                "traceback)",
            )
            return 1
        return result if isinstance(result, int) else 0


def _error(cli_state: CliState, message: str) -> None:
    from gateway.errors import redact

    line = Text("error: ", style="bold red")
    line.append(one_line(redact(message)))
    cli_state.err.print(line, soft_wrap=True)


@click.group(
    cls=GatewayCLI,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option("--debug", is_flag=True, help="Show the gateway's log and full tracebacks.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help=f"The YAML config of the command (it may also come after the command) [default: "
    f"${CONFIG_ENV}, else ./gateway.yaml, else ~/.config/gateway/gateway.yaml].",
)
@click.version_option(package_name="llm-gateway-sdk", prog_name="gateway")
def cli(debug: bool, config_path: Path | None) -> None:
    """One client for OpenAI, Anthropic and Gemini: YAML routing, fallback, one credit account.

    Start with `gateway demo` (offline: no keys, no network). Commands that read a config use
    --config FILE (before or after the command), else the file named by the GATEWAY_CONFIG
    environment variable, else ./gateway.yaml, else ~/.config/gateway/gateway.yaml.
    """
    cli_state = state()
    cli_state.debug = debug
    cli_state.config_path = config_path
    set_debug(debug)


cli.add_command(demo.demo)
cli.add_command(chat.chat)
cli.add_command(credits.credits)
cli.add_command(usage.usage)
cli.add_command(batches.batches)
cli.add_command(config.config)
cli.add_command(keys.keys)
cli.add_command(serve.serve)
cli.add_command(webhooks.webhooks)


def run() -> None:
    """The console script."""
    cli.main(prog_name="gateway")
