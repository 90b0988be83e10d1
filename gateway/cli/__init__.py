"""The ``gateway`` command line (``pyproject.toml``: ``gateway = "gateway.cli:main"``).

Only the console script imports this package; ``import gateway`` never does, so the library
does not pay for click and rich. One module per command group:

* :mod:`.demo`: ``gateway demo``, the offline scripted day (its story in :mod:`._story`);
* :mod:`.chat`: ``gateway chat "prompt"``;
* :mod:`.credits`: ``gateway credits balance | buy | grant | history | limits |
  auto-recharge | expire``;
* :mod:`.usage`: ``gateway usage``, with a bar chart of spend per day;
* :mod:`.batches`: ``gateway batches submit | status | results | cancel | list`` (the
  input file read by :mod:`._batch_file`);
* :mod:`.config`: ``gateway config check [FILE]``;
* :mod:`.serve`: ``gateway serve``, the HTTP server (gateway/server);
* :mod:`._app`: the root command and the one place errors become one line;
* :mod:`._common`: options, argument types, consoles, opening a gateway.
"""

from __future__ import annotations

__all__ = ["main"]


def main() -> None:
    """Run the command line (the ``gateway`` console script)."""
    from gateway.cli._app import run

    run()
