"""Thread-safe counters of what the simulator served, for ``GET /_simulator/stats`` and tests."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from listrak_sync.simulator.faults import FAULT_KINDS


class Stats:
    """Counts requests per operation (and per list or message), rows served, injected faults, refusals and overloads.

    ``requests`` counts every SOAP POST admitted under the concurrency ceiling, by operation,
    whatever its outcome (served, faulted, injected fault), so a benchmark sees each call a
    client made, retries included; requests that could not be routed count under
    ``"(unrouted)"``, and those turned away by the ceiling only under ``over_capacity``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self._requests: Counter[str] = Counter()
            self._objects: Counter[tuple[str, int]] = Counter()
            self._rows: Counter[str] = Counter()
            self._faults: Counter[str] = Counter()
            self._auth: Counter[str] = Counter()
            self._over_capacity = 0
            self._access_denied = 0
            self._malformed = 0
            self._wsdl = 0

    def request(self, operation: str) -> None:
        """Count one SOAP request for ``operation``."""
        with self._lock:
            self._requests[operation] += 1

    def object_request(self, operation: str, object_id: int) -> None:
        """Count one request of ``operation`` for one list or message (``ListID``/``MsgID``)."""
        with self._lock:
            self._objects[(operation, object_id)] += 1

    def rows(self, operation: str, count: int) -> None:
        """Count ``count`` items served by ``operation``."""
        with self._lock:
            self._rows[operation] += count

    def fault_injected(self, kind: str) -> None:
        """Count one injected fault of ``kind``."""
        with self._lock:
            self._faults[kind] += 1

    def auth_failure(self, token: str) -> None:
        """Count one refused login, by its Listrak token."""
        with self._lock:
            self._auth[token] += 1

    def over_capacity(self) -> None:
        """Count one 503 from the concurrency ceiling."""
        with self._lock:
            self._over_capacity += 1

    def access_denied(self) -> None:
        """Count one ``[AccessDenied]`` fault (list or message refused)."""
        with self._lock:
            self._access_denied += 1

    def malformed(self) -> None:
        """Count one request refused as malformed."""
        with self._lock:
            self._malformed += 1

    def wsdl(self) -> None:
        """Count one WSDL download."""
        with self._lock:
            self._wsdl += 1

    def snapshot(self) -> dict[str, Any]:
        """All counters as a JSON-ready dict."""
        with self._lock:
            faults = {kind: self._faults.get(kind, 0) for kind in FAULT_KINDS}
            by_object: dict[str, dict[str, int]] = {}  # IDs as text, as JSON has them
            for (operation, object_id), count in sorted(self._objects.items()):
                by_object.setdefault(operation, {})[str(object_id)] = count
            return {
                "requests": dict(sorted(self._requests.items())),
                "requests_total": sum(self._requests.values()),
                "requests_by_object": by_object,
                "rows": dict(sorted(self._rows.items())),
                "rows_total": sum(self._rows.values()),
                "faults": faults,
                "faults_total": sum(faults.values()),
                "over_capacity": self._over_capacity,
                "auth_failures": dict(sorted(self._auth.items())),
                "access_denied": self._access_denied,
                "malformed": self._malformed,
                "wsdl_requests": self._wsdl,
            }
