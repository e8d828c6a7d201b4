"""Logging helpers shared by the CLI and the Singer tap (kept light: no dlt import)."""

from __future__ import annotations

import logging


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
