"""The gateway as an OpenAI-compatible HTTP service (``pip install -e '.[server]'``).

    from gateway.server import create_app
    app = create_app("gateway.yaml")          # any ASGI server; `gateway serve` runs uvicorn

This package depends on the library, never the other way round: nothing under ``gateway/``
outside it imports it, so ``import gateway`` never imports Starlette.
"""

from __future__ import annotations

from gateway.server.app import create_app

__all__ = ["create_app"]
