"""Counters of one :class:`~listrak_sync.soap.client.ListrakClient`, safe to read from any thread."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ClientStats:
    """Thread-safe counters of one client: requests per operation, retries, faults, bytes."""

    requests: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    bytes_received: int = 0
    repeated: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count_request(self, operation: str, received: int) -> None:
        """Count one HTTP request for ``operation`` and the bytes of its response."""
        with self._lock:
            self.requests[operation] += 1
            self.bytes_received += received

    def count_fault(self, error_name: str) -> None:
        """Count one failed attempt by the name of its error class."""
        with self._lock:
            self.faults[error_name] += 1

    def count_retry(self) -> None:
        """Count one retry."""
        with self._lock:
            self.retries += 1

    def count_repeated(self, stream: str, rows: int) -> None:
        """Count rows of ``stream`` dropped because they repeated rows of the page before."""
        with self._lock:
            self.repeated[stream] += rows

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready snapshot."""
        with self._lock:
            return {
                "requests": dict(sorted(self.requests.items())),
                "requests_total": sum(self.requests.values()),
                "retries": self.retries,
                "faults": dict(sorted(self.faults.items())),
                "bytes_received": self.bytes_received,
                "repeated_rows": dict(sorted(self.repeated.items())),
            }


__all__ = ["ClientStats"]
