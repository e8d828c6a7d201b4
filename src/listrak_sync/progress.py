"""Progress of one run: counters the extractor and the runner report into, and how to show them.

:class:`RunProgress` counts planned and finished work units, rows per table and the run's
phase; it is cheap to report into (a lock and a few integer adds per unit) and safe from any
thread. A work unit is one request sequence whose count is known once the message lists are
read: a (stream, message) pair, or a (``subscribed_contacts``, list) pair.

How the counters are shown while a run goes on is :mod:`listrak_sync.pipeline.display`'s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

log = logging.getLogger("listrak_sync.progress")

PHASES = ("connecting", "extract", "normalize", "load", "done")
ETA_MIN_UNITS = 5
"""Units that must be done before an ETA is given: the first few say little about the rest."""

Stats = Callable[[], Mapping[str, Any]]


@dataclass(frozen=True)
class ProgressSnapshot:
    """The counters of a run at one instant.

    Attributes:
        phase: ``connecting``, ``extract``, ``normalize``, ``load`` or ``done``.
        units_done: work units finished.
        units_total: work units known so far (grows while activity batches are planned).
        units_resumed: work units (among ``units_done``) served from the checkpoint of an
            interrupted run instead of fetched.
        rows: rows extracted, all tables.
        table_rows: rows extracted per table.
        requests: HTTP requests sent (from the client's counters).
        retries: requests retried (from the client's counters).
        elapsed: seconds since the run started.
        phase_elapsed: seconds since the current phase started.
        rate: rows per second of extraction (up to the end of the extract phase).
        eta: seconds until every known unit is done, or None when it cannot be told yet.
    """

    phase: str
    units_done: int
    units_total: int
    rows: int
    table_rows: Mapping[str, int] = field(default_factory=dict)
    requests: int = 0
    retries: int = 0
    elapsed: float = 0.0
    phase_elapsed: float = 0.0
    rate: float = 0.0
    eta: float | None = None
    units_resumed: int = 0

    @property
    def fraction(self) -> float | None:
        """Units done out of the total (0..1), or None while no unit is known."""
        return self.units_done / self.units_total if self.units_total else None


class RunProgress:
    """Thread-safe counters of one run; the extractor and the runner report into it.

    Args:
        stats: the client's counters (e.g. ``client.stats.as_dict``), read by :meth:`snapshot`
            for requests and retries when it is not handed a mapping.
        clock: seconds on a monotonic clock (a seam for tests).
    """

    def __init__(self, stats: Stats | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._stats = stats
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._phase = "connecting"
        self._phase_started = self._started
        self._extract_ended: float | None = None
        self._units_started: float | None = None
        self._units_total = 0
        self._units_done = 0
        self._units_resumed = 0
        self._rows: Counter[str] = Counter()
        self._listeners: list[Callable[[str], None]] = []

    def add_units(self, n: int) -> None:
        """More planned work units became known."""
        if n <= 0:
            return
        with self._lock:
            if self._units_started is None:
                self._units_started = self._clock()
            self._units_total += n

    def unit_done(self, table: str, rows: int) -> None:
        """One work unit of ``table`` finished, with ``rows`` rows not reported before."""
        with self._lock:
            self._units_done += 1
            self._rows[table] += rows

    def unit_resumed(self, table: str, rows: int) -> None:
        """One work unit of ``table`` was served from the checkpoint of an interrupted run."""
        with self._lock:
            self._units_done += 1
            self._units_resumed += 1
            self._rows[table] += rows

    @property
    def units_resumed(self) -> int:
        """Work units served from the checkpoint of an interrupted run so far."""
        with self._lock:
            return self._units_resumed

    def add_rows(self, table: str, rows: int) -> None:
        """Rows that belong to no unit (lists, messages) or to a unit still going on."""
        with self._lock:
            self._rows[table] += rows

    def phase(self, name: str) -> None:
        """The run entered phase ``name`` (one of :data:`PHASES`); watchers hear of a change.

        Raises:
            ValueError: an unknown phase.
        """
        if name not in PHASES:
            raise ValueError(f"unknown phase {name!r}; expected one of {', '.join(PHASES)}")
        with self._lock:
            if name == self._phase:
                return
            now = self._clock()
            if self._phase == "extract" and self._extract_ended is None:
                self._extract_ended = now
            self._phase, self._phase_started = name, now
            listeners = list(self._listeners)
        for listener in listeners:
            listener(name)

    def watch(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """Call ``listener(phase)`` on every phase change, in the thread that changes it.

        Returns:
            A function that stops the watching.
        """
        with self._lock:
            self._listeners.append(listener)

        def unwatch() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unwatch

    def snapshot(self, stats: Mapping[str, Any] | None = None) -> ProgressSnapshot:
        """The counters now, with rate and ETA.

        Args:
            stats: the client's counters (``ClientStats.as_dict()``); default: read the
                ``stats`` given to the constructor, or report no requests.
        """
        if stats is None:
            stats = self._stats() if self._stats is not None else {}
        with self._lock:
            now = self._clock()
            phase, done, total = self._phase, self._units_done, self._units_total
            resumed = self._units_resumed
            table_rows = dict(self._rows)
            extract_seconds = (self._extract_ended if self._extract_ended is not None else now) - self._started
            unit_seconds = now - self._units_started if self._units_started is not None else 0.0
            phase_elapsed = now - self._phase_started
        rows = sum(table_rows.values())
        eta = None
        fetched = done - resumed  # units served from a checkpoint take no time: not a measure of the rest
        if fetched >= ETA_MIN_UNITS and unit_seconds > 0:
            eta = (total - done) * unit_seconds / fetched
        return ProgressSnapshot(
            phase=phase,
            units_done=done,
            units_total=total,
            rows=rows,
            table_rows=MappingProxyType(table_rows),
            requests=int(stats.get("requests_total", 0)),
            retries=int(stats.get("retries", 0)),
            elapsed=now - self._started,
            phase_elapsed=phase_elapsed,
            rate=rows / extract_seconds if extract_seconds > 0 else 0.0,
            eta=eta,
            units_resumed=resumed,
        )


__all__ = ["PHASES", "ProgressSnapshot", "RunProgress", "Stats"]
