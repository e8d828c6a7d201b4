"""listrak-sync: replicate a Listrak account (SOAP API v31) into DuckDB or any dlt destination."""

from listrak_sync.errors import (
    AccessError,
    ConfigError,
    ListrakSyncError,
    ObjectRefusedError,
    TerminalError,
    TransientError,
)
from listrak_sync.streams import STREAM_NAMES, STREAMS, Column, ColumnType, Stream, get_stream

__version__ = "0.1.0"

__all__ = [
    "STREAMS",
    "STREAM_NAMES",
    "AccessError",
    "Column",
    "ColumnType",
    "ConfigError",
    "ListrakSyncError",
    "ObjectRefusedError",
    "Stream",
    "TerminalError",
    "TransientError",
    "get_stream",
]
