"""How a run's progress is shown while it goes on.

:func:`display` shows :class:`~listrak_sync.progress.RunProgress`: at a terminal a live line
(rich) with a bar of units done out of the total, rows, rows/s, requests, retries, ETA and the
phase; off a terminal (cron, orchestrator logs) an INFO line on the ``listrak_sync.progress``
logger every ``heartbeat_seconds`` and one on each phase change.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

from listrak_sync.progress import ProgressSnapshot, RunProgress, Stats

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

log = logging.getLogger("listrak_sync.progress")


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
        *([resumed(snap)] if snap.units_resumed else []),
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


def resumed(snap: ProgressSnapshot) -> str:
    """How much of the work an interrupted run's checkpoint gave, e.g.
    ``resumed: 812 of 1,020 units from the checkpoint``."""
    return f"resumed: {snap.units_resumed:,} of {snap.units_total:,} units from the checkpoint"


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
        lines = [Text(counters, style="dim", no_wrap=True, overflow="ellipsis")]
        if snap.units_resumed:
            lines.append(Text(f"  {resumed(snap)}", style="dim", no_wrap=True, overflow="ellipsis"))
        return Group(bar, *lines)


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


__all__ = ["describe", "display", "format_duration"]
