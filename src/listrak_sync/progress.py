"""Progress of one run: counters the extractor and the runner report into, and how to show them.

:class:`RunProgress` counts planned and finished work units, rows per table and the run's
phase; it is cheap to report into (a lock and a few integer adds per unit) and safe from any
thread. A work unit is one request sequence whose count is known once the message lists are
read: a (stream, message) pair, or a (``subscribed_contacts``, list) pair.

:func:`display` shows the counters while a run goes on: at a terminal a live line (rich) with
a bar of units done out of the total, rows, rows/s, requests, retries, ETA and the phase; off a
terminal (cron, orchestrator logs) an INFO line on the ``listrak_sync.progress`` logger every
``heartbeat_seconds`` and one on each phase change.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

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
            table_rows = dict(self._rows)
            extract_seconds = (self._extract_ended if self._extract_ended is not None else now) - self._started
            unit_seconds = now - self._units_started if self._units_started is not None else 0.0
            phase_elapsed = now - self._phase_started
        rows = sum(table_rows.values())
        eta = None
        if done >= ETA_MIN_UNITS and unit_seconds > 0:
            eta = (total - done) * unit_seconds / done
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
        )


def format_duration(seconds: float) -> str:
    """``45s``, ``6m12s``, ``2h05m``."""
    whole = max(0, int(round(seconds)))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def describe(snap: ProgressSnapshot) -> str:
    """The counters in one line, e.g. ``1,234/5,678 units (21.7%), 310,500 rows (12,345 rows/s), ...``."""
    units = f"{snap.units_done:,}/{snap.units_total:,} units"
    if snap.fraction is not None:
        units += f" ({snap.fraction:.1%})"
    parts = [
        units,
        f"{snap.rows:,} rows ({snap.rate:,.0f} rows/s)",
        f"{snap.requests:,} requests",
        f"{snap.retries:,} retries",
    ]
    if snap.phase == "extract" and snap.eta is not None:
        parts.append(f"ETA {format_duration(snap.eta)}")
    elif snap.phase in ("normalize", "load"):
        parts.append(f"{snap.phase} running for {format_duration(snap.phase_elapsed)}")
    parts.append(f"{format_duration(snap.elapsed)} elapsed")
    return ", ".join(parts)


@contextmanager
def display(
    progress: RunProgress,
    stats: Stats,
    *,
    interactive: bool | None = None,
    heartbeat_seconds: float = 30.0,
    stream: IO[str] | None = None,
) -> Iterator[None]:
    """Show ``progress`` while the body runs; clean up on exit, also on errors and Ctrl-C.

    Args:
        progress: the run's counters.
        stats: the client's counters (``client.stats.as_dict``): requests and retries.
        interactive: a live display (True) or heartbeat log lines (False); None: a live display
            exactly when ``stream`` is a terminal.
        heartbeat_seconds: seconds between log lines off a terminal.
        stream: where the live display draws (default: ``sys.stderr`` at call time); log lines
            go through logging, not here. The heartbeat is logged at INFO even when the root
            logger is at WARNING (the CLI's default); give the ``listrak_sync.progress`` logger
            a level of its own to decide otherwise.

    Raises:
        ValueError: ``heartbeat_seconds`` is not positive.
    """
    if heartbeat_seconds <= 0:
        raise ValueError("heartbeat_seconds must be positive")
    stream = stream if stream is not None else sys.stderr
    if interactive is None:
        interactive = _isatty(stream)
    manager = _live(progress, stats, stream) if interactive else _heartbeat(progress, stats, heartbeat_seconds)
    with manager:
        yield


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False


@contextmanager
def _heartbeat(progress: RunProgress, stats: Stats, seconds: float) -> Iterator[None]:
    stop = threading.Event()
    # A run shorter than one heartbeat prints nothing, so that its output (or its one-line
    # error) stands alone; once a run has beaten, each phase change is logged too.
    beaten = threading.Event()

    def on_phase(phase: str) -> None:
        if beaten.is_set():
            log.info("progress: phase %s started; %s", phase, describe(progress.snapshot(stats())))

    def beat() -> None:
        while not stop.wait(seconds):
            beaten.set()
            snap = progress.snapshot(stats())
            log.info("progress: %s %s", snap.phase, describe(snap))

    # Asked for a heartbeat, the caller gets one; a level set on this logger on purpose stays.
    inherits_level = log.level == logging.NOTSET
    if inherits_level:
        log.setLevel(logging.INFO)
    unwatch = progress.watch(on_phase)
    thread = threading.Thread(target=beat, name="listrak-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        unwatch()
        stop.set()
        thread.join()
        if inherits_level:
            log.setLevel(logging.NOTSET)


class _LiveLine:
    """A renderable that reads the counters afresh each time rich draws it."""

    def __init__(self, progress: RunProgress, stats: Stats) -> None:
        from rich.spinner import Spinner

        self.progress = progress
        self.stats = stats
        self.spinner = Spinner("dots", style="cyan")

    def __rich__(self) -> RenderableType:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        snap = self.progress.snapshot(self.stats())
        head = f"{snap.units_done:,}/{snap.units_total:,} units"
        if snap.fraction is not None:
            head += f" {snap.fraction:.0%}"
        if snap.phase == "extract":
            head += f" • ETA {format_duration(snap.eta)}" if snap.eta is not None else " • ETA ?"
        elif snap.phase in ("normalize", "load"):
            head += f" • {format_duration(snap.phase_elapsed)} in {snap.phase}"
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            self.spinner,
            Text(snap.phase, style="bold"),
            ProgressBar(total=snap.units_total or None, completed=snap.units_done, width=24),
            Text(head, no_wrap=True, overflow="ellipsis"),
        )
        counters = (f"  {snap.rows:,} rows • {snap.rate:,.0f} rows/s • {snap.requests:,} requests • "
                    f"{snap.retries:,} retries • {format_duration(snap.elapsed)} elapsed")
        return Group(bar, Text(counters, style="dim", no_wrap=True, overflow="ellipsis"))


@contextmanager
def _live(progress: RunProgress, stats: Stats, stream: IO[str]) -> Iterator[None]:
    from rich.console import Console
    from rich.live import Live

    console = Console(file=stream, force_terminal=True)
    live = Live(_LiveLine(progress, stats), console=console, refresh_per_second=4, transient=True,
                redirect_stdout=False, redirect_stderr=stream is sys.stderr)
    with live, _logs_above(console, stream):
        yield


@contextmanager
def _logs_above(console: Console, stream: IO[str]) -> Iterator[None]:
    """Log handlers writing to ``stream`` print above the live line instead of tearing it."""
    from rich.file_proxy import FileProxy

    proxy = FileProxy(console, stream)
    moved: list[logging.StreamHandler[Any]] = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is stream:
            handler.setStream(proxy)  # type: ignore[arg-type]
            moved.append(handler)
    try:
        yield
    finally:
        for handler in moved:
            handler.setStream(stream)
        proxy.flush()


__all__ = ["PHASES", "ProgressSnapshot", "RunProgress", "describe", "display", "format_duration"]
