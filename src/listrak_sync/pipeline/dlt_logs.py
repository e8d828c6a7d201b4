"""dlt's log records, routed through our own logging: one format, redacted, only what matters."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class quiet_dlt:
    """Route dlt's log records through our own logging: one format, redacted, only what matters.

    dlt logs through its own handler (not ours, so not redacted) and warns about things we
    handle on purpose. Its records are re-emitted under ``listrak_sync.dlt``: errors always,
    warnings with ``-v``, everything with ``--debug``.
    """

    def __enter__(self) -> None:
        self._logger = logging.getLogger("dlt")
        self._level = self._logger.level
        debug = log.isEnabledFor(logging.DEBUG)
        self._filter = _DltRecords(logging.DEBUG if debug else logging.WARNING if log.isEnabledFor(logging.INFO)
                                   else logging.ERROR)
        if debug:
            self._logger.setLevel(logging.DEBUG)
        self._logger.addFilter(self._filter)

    def __exit__(self, *exc: object) -> None:
        self._logger.setLevel(self._level)
        self._logger.removeFilter(self._filter)


class _DltRecords(logging.Filter):
    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level
        self.target = logging.getLogger("listrak_sync.dlt")

    def filter(self, record: logging.LogRecord) -> bool:
        if self.level > logging.DEBUG:
            # The run ends in one line of its own that names the cause; dlt's tracebacks, and
            # its notices of a job it will retry, are for --debug.
            record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
            if record.getMessage().startswith("Transient exception in job"):
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        if record.levelno >= self.level and not _expected_notice(record):
            self.target.handle(record)
        return False  # dlt's own handler never prints


def _expected_notice(record: logging.LogRecord) -> bool:
    text = record.getMessage()
    # We hand dlt JSON text for json columns on purpose (every destination loads it), and our
    # DuckDB client qualifies names with the catalog, so a dataset may share the file's name.
    return "when merging arrow schema with dlt schema" in text or "identical to the dataset name" in text
