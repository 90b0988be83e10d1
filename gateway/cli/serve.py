"""``gateway serve``: the OpenAI-compatible HTTP server (uvicorn, uvloop, httptools).

One ``AsyncGateway`` per worker process; the workers share the credit account through its
store. SIGTERM (or Ctrl+C) drains: the listening socket closes, calls and streams in flight
finish (for at most ``server.drain_timeout_s``; past it they are cut and billed for what
they produced), every settled call is written, and the command exits 0.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import FrameType

import click

from gateway.cli._common import CliError, config_option, find_config
from gateway.cli._common import state as cli_state

__all__ = ["serve"]


def _drained(signum: int, frame: FrameType | None) -> None:
    """What a signal uvicorn already drained for does afterwards: nothing (exit 0)."""


@click.command()
@config_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port."
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes (they share the credit account through its store).",
)
@click.option("--access-log", is_flag=True, help="Log every request (off: it costs CPU).")
def serve(config_path: Path | None, host: str, port: int, workers: int, access_log: bool) -> None:
    """Serve the OpenAI API over HTTP: POST /v1/chat/completions and the rest (README, "Server").

    Any OpenAI client works: OpenAI(base_url="http://HOST:PORT/v1", api_key=KEY), with a
    key from `gateway keys create`, or the config's server.admin_key.
    """
    try:
        import uvicorn
    except ImportError:
        raise CliError(
            "the server needs its extra: pip install 'llm-gateway-sdk[server]' "
            "(or pip install -e '.[server]' in a checkout)"
        ) from None
    from gateway.config import ServerConfig, load_config
    from gateway.server.app import CONFIG_ENV, create_app

    path = find_config(config_path).resolve()
    config = load_config(path)  # a bad config stops here, with its file, line and key
    settings = config.server or ServerConfig()
    out = cli_state().err
    admin = "on" if settings.admin_key is not None else "off (no server.admin_key)"
    out.print(
        f"gateway serving {path.name} on http://{host}:{port}/v1 with {workers} worker(s); "
        f"admin endpoints {admin}",
        highlight=False,
        soft_wrap=True,
    )
    options = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        "access_log": access_log,
        "log_level": "info" if access_log or cli_state().debug else "warning",
        "timeout_graceful_shutdown": max(1, round(settings.drain_timeout_s)),
        "server_header": False,
    }
    if workers == 1:
        server = uvicorn.Server(uvicorn.Config(create_app(config), **options))  # type: ignore[arg-type]
        # uvicorn re-raises the signal it drained for once it is done; it has been handled.
        signal.signal(signal.SIGTERM, _drained)
        signal.signal(signal.SIGINT, _drained)
        try:
            server.run()
        except SystemExit:  # uvicorn exits when it cannot bind, after logging why
            server.started = False
        if not server.started:
            raise CliError(f"the server could not start on {host}:{port} (see the line above)")
        return
    from uvicorn.supervisors import Multiprocess

    os.environ[CONFIG_ENV] = str(path)
    uv_config = uvicorn.Config(
        "gateway.server.app:app_from_environment",
        factory=True,
        workers=workers,
        **options,  # type: ignore[arg-type]
    )
    try:
        sock = uv_config.bind_socket()
    except SystemExit:
        raise CliError(f"cannot listen on {host}:{port} (see above)") from None
    Multiprocess(uv_config, sockets=[sock]).run()
