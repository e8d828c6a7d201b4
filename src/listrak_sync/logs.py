"""Logging helpers shared by the CLI and the Singer tap (kept light: no dlt import)."""

from __future__ import annotations

import logging
import sys


class RedactingFilter(logging.Filter):
    """Replaces every known secret in a log record's final text with ``********``."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            text = record.getMessage()
            for secret in self.secrets:
                text = text.replace(secret, "********")
            record.msg, record.args = text, None
        return True


def log_to_stderr(level: int, redact: RedactingFilter, fmt: str, *, debug: bool) -> None:
    """Send every log record to stderr through ``redact``; below DEBUG, keep urllib3 and dlt quiet."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(redact)
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if not debug:
        for noisy in ("urllib3", "dlt"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
