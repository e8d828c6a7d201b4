"""The ``listrak-sync`` command line: thin click commands over the pipeline and the engine."""

from listrak_sync.cli.main import cli, main

__all__ = ["cli", "main"]
