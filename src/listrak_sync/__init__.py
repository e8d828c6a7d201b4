"""listrak-sync: replicate a Listrak account (SOAP API v31) into DuckDB or any dlt destination."""

import os

# dlt reports anonymous usage to its makers unless told not to, and it reads this once, at its
# first use. Nothing of ours phones home: off unless the user turns it on. The one process-wide
# change an import makes, on purpose: dlt's telemetry is one switch per process, thrown by
# whichever pipeline starts first, so a per-run setting could not keep our runs from reporting.
# A value the user set is kept.
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

from listrak_sync.errors import (
    AccessError,
    ConfigError,
    EndlessPagesError,
    ListrakSyncError,
    ObjectRefusedError,
    ObjectSkippedError,
    TerminalError,
    TransientError,
)
from listrak_sync.streams import STREAM_NAMES, STREAMS, Column, ColumnType, Stream, get_stream

__version__ = "0.2.0"

__all__ = [
    "STREAMS",
    "STREAM_NAMES",
    "AccessError",
    "Column",
    "ColumnType",
    "ConfigError",
    "EndlessPagesError",
    "ListrakSyncError",
    "ObjectRefusedError",
    "ObjectSkippedError",
    "Stream",
    "TerminalError",
    "TransientError",
    "get_stream",
]
