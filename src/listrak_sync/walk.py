"""The pages of many objects, fetched by a bounded pool of workers and handed back one by one.

A walk is the pages of one object (a message's activity, a list's subscribed contacts). A task
is one page: only a small window of tasks is queued at a time, so at most twice the number of
workers pages are held however many objects there are and however large each one is.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from listrak_sync.errors import EndlessPagesError, ObjectRefusedError, ObjectSkippedError, ShortOfCounterError
from listrak_sync.progress import RunProgress
from listrak_sync.soap.parse import arrow_schema
from listrak_sync.streams import Stream

log = logging.getLogger(__name__)


@dataclass
class Walk:
    """The pages of one object, asked for one at a time by whichever worker is free; each page
    keeps only rows whose ``since`` column is on or after its instant, and gets the object's key
    stamped."""

    stream: Stream
    object_id: int
    pages: Iterator[pa.Table]
    since: tuple[str, datetime] | None = None


class Skips:
    """The objects a run skipped (refused, pages that never end, short of their counters), each
    told once and logged as it is told; safe from any thread.

    Args:
        into: the list to append them to (default: a list of its own), :attr:`errors`.
    """

    def __init__(self, into: list[ObjectSkippedError] | None = None) -> None:
        self.errors: list[ObjectSkippedError] = into if into is not None else []
        self._lock = threading.Lock()
        self._keys: set[tuple[str, int | None, str]] = set()

    def add(self, error: ObjectSkippedError) -> None:
        """Note ``error`` and log it, unless the same object was skipped for the same cause."""
        # A refusal is the object's, whatever stream met it; a short or endless read is one stream's.
        stream = "" if isinstance(error, ObjectRefusedError) else getattr(error, "stream", "") or str(error)
        with self._lock:
            key = (error.kind, error.object_id, stream)
            if key in self._keys:
                return
            self._keys.add(key)
            self.errors.append(error)
        if isinstance(error, ObjectRefusedError):
            log.warning("Skipped %s %s: %s", error.kind, error.object_id, error)
        else:
            log.warning("%s", error)

    def ids(self, kind: str, of: type[ObjectSkippedError] | tuple[type[ObjectSkippedError], ...]) -> set[int]:
        """The ids of the objects of ``kind`` ("list", "message") skipped for a cause in ``of``."""
        with self._lock:
            return {e.object_id for e in self.errors
                    if isinstance(e, of) and e.kind == kind and e.object_id is not None}

    @property
    def short(self) -> list[ShortOfCounterError]:
        """The objects whose rows fell short of their counters (read again next run)."""
        with self._lock:
            return [e for e in self.errors if isinstance(e, ShortOfCounterError)]

    @property
    def incomplete(self) -> list[EndlessPagesError]:
        """The objects whose pages never ended: the run is incomplete."""
        with self._lock:
            return [e for e in self.errors if isinstance(e, EndlessPagesError)]


def walk_concurrently(
    walks: Iterable[Walk], *, workers: int, progress: RunProgress, on_skipped: Callable[[ObjectSkippedError], None],
    report_done: bool = False,
) -> Iterator[tuple[Walk, pa.Table | None]]:
    """The pages of every walk, fetched by at most ``workers`` threads, in the caller's thread.

    Rows are counted per page into ``progress``, and a work unit as done when its walk has no
    more pages. An error other than a skip stops the other tasks and is raised here; a
    skipped object (refused, or its pages would never end) is handed to ``on_skipped`` and its
    walk ends.

    Args:
        walks: the objects' walks (a lazy iterable is taken as the window needs more).
        workers: most pages in flight at once.
        progress: the run's counters.
        on_skipped: told of each object skipped.
        report_done: also yield ``(walk, None)`` once a walk is over (all its pages yielded).

    Yields:
        ``(walk, page)`` per non-empty page, the key stamped; pages of different walks interleave.
    """
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="listrak-pages")
    pending: dict[Future[pa.Table | None], Walk] = {}
    queue = iter(walks)
    try:
        while True:
            for walk in queue:
                pending[pool.submit(_next_page, walk, stop, on_skipped)] = walk
                if len(pending) >= 2 * workers:
                    break
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                walk = pending.pop(future)
                page = future.result()
                if page is None:
                    progress.unit_done(walk.stream.name, 0)
                    if report_done:
                        yield walk, None
                    continue
                # The next page is asked for while this one is handed on.
                pending[pool.submit(_next_page, walk, stop, on_skipped)] = walk
                progress.add_rows(walk.stream.name, page.num_rows)
                yield walk, page
    finally:
        stop.set()
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _next_page(walk: Walk, stop: threading.Event, on_skipped: Callable[[ObjectSkippedError], None]) -> pa.Table | None:
    """The next page of one walk, or None when it has no more (or is skipped)."""
    if stop.is_set():
        return None
    try:
        page = next(walk.pages, None)
    except ObjectSkippedError as exc:
        on_skipped(exc)
        return None
    if page is None:
        return None
    if walk.since is not None:
        page = rows_since(page, *walk.since)
    return stamp(walk.stream, page, walk.object_id)


def stamp(stream: Stream, table: pa.Table, object_id: int) -> pa.Table:
    """Add the parent key column (``MsgID``/``ListID``) first, unless the items carry it."""
    key = stream.parent_key
    if key is None or key.name in table.column_names:
        return table
    field = arrow_schema(stream).field(key.name)
    return table.add_column(0, field, pa.repeat(pa.scalar(object_id, field.type), table.num_rows))


def rows_since(table: pa.Table, column: str, start: datetime) -> pa.Table:
    """Rows at or after ``start``: requests start a little early (exclusive bounds)."""
    mask = pc.greater_equal(table.column(column), pa.scalar(start, table.schema.field(column).type))
    return table if pc.all(mask).as_py() is not False else table.filter(mask)


__all__ = ["Skips", "Walk", "rows_since", "stamp", "walk_concurrently"]
