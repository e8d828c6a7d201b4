"""The ``listrak-sync`` command line: thin click commands over the pipeline and the engine.

The commands live in :mod:`listrak_sync.cli.main`; importing this package loads none of them,
so ``python -m listrak_sync.cli.docs`` runs without the whole command line.
"""

from __future__ import annotations

from typing import Any


def main() -> None:
    """Console-script entry point (``listrak-sync``)."""
    from listrak_sync.cli.main import main as run

    run()


def __getattr__(name: str) -> Any:
    if name == "cli":
        from listrak_sync.cli.main import cli

        return cli
    raise AttributeError(name)


__all__ = ["cli", "main"]
