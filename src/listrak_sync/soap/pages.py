"""Paging that always ends: what tells a real next page from one that would never end.

Listrak pages until a page comes back empty (docs/listrak-api.md §7). A service (or a proxy) that
answers every page with the same rows, or pages on and on, would make a run loop forever and a
Singer tap write without end. One object's pages are watched here:

- a page identical to an earlier page of the same object is dropped: a shifted page can repeat
  one once (page N answered as N-1), and the rows are already in;
- a second repeat means the pages cycle: :class:`EndlessPagesError`;
- more pages than the object's counter allows, read generously, too: under either reading of
  the counters (events or unique contacts, §12.17) a message's rows are bounded by a small
  multiple of its counter, and this allows fifty times it, and twenty pages besides.

A full read of a message (from its first event) holds at least as many rows as its counter,
under either reading: a read that ends short of it asks once more (the empty page again, or the
page after a short one), and if it is still short raises :class:`ShortOfCounterError` after its
rows, so that the message is named and read again next run.

Rows repeated from the page before are dropped as well: when data shifts while it is paged, the
next page starts with rows the last one ended with. The check costs next to nothing on pages
that share no value of a cheap probe column (a date, or the key) with the page before, and
compares whole rows only where they do.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Callable, Iterator, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from listrak_sync.errors import EndlessPagesError, ShortOfCounterError
from listrak_sync.streams import ColumnType, Stream

log = logging.getLogger(__name__)
Scope = tuple[str, int]

REPEATS_TOLERATED = 1
COUNTER_MULTIPLE = 50
SPARE_PAGES = 20


def page_digest(table: pa.Table) -> bytes:
    """A digest of a page's rows (two pages with equal rows in equal order share it)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.blake2b(sink.getvalue(), digest_size=16).digest()


def page_ceiling(counted: int, page_rows: int) -> int:
    """The most pages an object whose counter reads ``counted`` can have, at ``page_rows`` a page."""
    return SPARE_PAGES + math.ceil(COUNTER_MULTIPLE * max(counted, 0) / max(page_rows, 1))


class PageGuard:
    """Watches the pages of one object (see the module docstring).

    Args:
        stream: the stream being paged.
        scope: the object, ``("message", id)`` or ``("list", id)``.
        counter: the service's counter for the object's rows, as (name, value), if known.
        at_least: the rows a full read must hold (the counter, for a read from the message's
            first event of a stream whose rows it counts), if known.
    """

    def __init__(self, stream: Stream, scope: Scope | None, counter: tuple[str, int] | None = None,
                 at_least: int | None = None) -> None:
        self.stream = stream
        self.scope = scope
        self.counter = counter
        self.at_least = at_least
        self.fetched = 0
        self._asked_again = False
        self._seen: set[bytes] = set()
        self._repeats = 0
        self._previous: pa.Table | None = None
        self._probe = probe_column(stream)
        self.repeated_rows = 0

    def admit(self, page: int, table: pa.Table) -> bool:
        """Whether page number ``page`` holds new rows (False: it repeats an earlier page; drop it).

        Raises:
            EndlessPagesError: the pages repeat more than once.
        """
        digest = page_digest(table)
        if digest not in self._seen:
            self._seen.add(digest)
            self.fetched += table.num_rows
            return True
        self._repeats += 1
        if self._repeats > REPEATS_TOLERATED:
            raise self._endless(f"page {page} repeats an earlier page again")
        return False

    def new_rows(self, table: pa.Table) -> pa.Table:
        """The rows of ``table`` that do not repeat a row of the page before (counted in
        :attr:`repeated_rows`), in their order."""
        previous, self._previous = self._previous, table
        if previous is None or self._probe not in table.column_names:
            return table
        probe, earlier = table.column(self._probe), previous.column(self._probe)
        candidates = pc.fill_null(pc.is_in(probe, value_set=earlier), False)
        if not pc.any(candidates).as_py():
            return table
        shared = previous.filter(pc.fill_null(pc.is_in(earlier, value_set=probe), False))
        before = set(zip(*(c.to_pylist() for c in shared.columns), strict=True))
        positions = pc.indices_nonzero(candidates)
        suspects = table.take(positions)
        rows = zip(*(c.to_pylist() for c in suspects.columns), strict=True)
        repeated = {p for p, row in zip(positions.to_pylist(), rows, strict=True) if row in before}
        if not repeated:
            return table
        self.repeated_rows += len(repeated)
        self.fetched -= len(repeated)
        return table.take(pa.array([i for i in range(table.num_rows) if i not in repeated], pa.int64()))

    def check_next(self, page: int, page_rows: int) -> None:
        """Raise if a page after ``page`` cannot be real, at pages of up to ``page_rows`` rows.

        Raises:
            EndlessPagesError: ``page`` pages already exceed what the counter allows.
        """
        if self.counter is not None and page >= page_ceiling(self.counter[1], page_rows):
            name, value = self.counter
            raise self._endless(f"{page:,} pages of up to {page_rows:,} rows are far more than its "
                                f"{name} of {value:,} allows")

    def ask_again(self) -> bool:
        """At what looks like the last page: whether to ask once more, the read being short of
        its counter and not asked again yet.

        Raises:
            ShortOfCounterError: still short after asking once more.
        """
        if self.at_least is None or self.fetched >= self.at_least:
            return False
        if not self._asked_again:
            self._asked_again = True
            return True
        kind, object_id = self.scope if self.scope is not None else ("", None)
        name = self.counter[0] if self.counter else "counter"
        raise ShortOfCounterError(
            f"{self.stream.name} of {describe(self.scope)}: {self.fetched:,} rows came, fewer than the "
            f"{self.at_least:,} its {name} counts, even when asked again. They are kept, and the next run "
            "reads it again.",
            kind=kind, object_id=object_id, stream=self.stream.name, fetched=self.fetched, counted=self.at_least,
        )

    def _endless(self, why: str) -> EndlessPagesError:
        kind, object_id = self.scope if self.scope is not None else ("", None)
        return EndlessPagesError(
            f"{self.stream.operation} of {describe(self.scope)}: {why}, so its pages would never end. "
            f"Its {self.stream.name} rows stop there; the rest of the run goes on, and the next run "
            "asks it again.",
            kind=kind, object_id=object_id,
        )


class PageSizes:
    """The largest page of each operation seen: a lower bound of its page size (thread-safe).

    ``own`` are the pages this client received; ``learn`` adds bounds an earlier run proved.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._largest: dict[str, int] = {}
        self._own: dict[str, int] = {}

    def bound(self, operation: str) -> int | None:
        """The largest page of ``operation`` known, if any."""
        with self._lock:
            return self._largest.get(operation)

    def own(self) -> dict[str, int]:
        """Every operation's largest page received in this process."""
        with self._lock:
            return dict(self._own)

    def learn(self, bounds: Mapping[str, int]) -> None:
        """Take page-size lower bounds proven earlier."""
        with self._lock:
            for operation, rows in bounds.items():
                self._largest[operation] = max(int(rows), self._largest.get(operation, 0))

    def saw(self, operation: str, rows: int) -> int:
        """Record a page of ``rows`` items; return the largest page of ``operation`` known."""
        with self._lock:
            self._own[operation] = max(rows, self._own.get(operation, 0))
            largest = self._largest[operation] = max(rows, self._largest.get(operation, 0))
            return largest


def walk_pages(fetch: Callable[[int], pa.Table], guard: PageGuard, sizes: PageSizes, *, trust_short_pages: bool,
               on_repeated: Callable[[int], None]) -> Iterator[pa.Table]:
    """Pages 1, 2, ... from ``fetch(page)``, watched by ``guard`` (see the module docstring), one
    table of new rows per page that has any; ``on_repeated`` is told rows dropped as repeats.

    The end is the first empty page or, with ``trust_short_pages``, a page shorter than the
    largest of its operation known (``sizes``); a read short of its counter asks once more.

    Raises:
        EndlessPagesError, ShortOfCounterError: after the pages before.
    """
    operation, page, largest = guard.stream.operation, 1, 0
    while True:
        table = fetch(page)
        rows = table.num_rows
        if rows:
            largest = sizes.saw(operation, rows)
            if guard.admit(page, table):
                fresh = guard.new_rows(table)
                if fresh.num_rows < rows:
                    on_repeated(rows - fresh.num_rows)
                if fresh.num_rows:
                    yield fresh
            else:
                log.info("%s page %d of %s repeats an earlier page; dropped", operation, page, describe(guard.scope))
        if rows == 0 or (trust_short_pages and rows < largest):
            if not guard.ask_again():
                return
            log.info("%s of %s ended short of its counter at page %d; asking once more", operation,
                     describe(guard.scope), page)
            page += 1 if rows else 0
            continue
        guard.check_next(page, largest)
        page += 1


def probe_column(stream: Stream) -> str:
    """The column two copies of one row surely share and distinct rows mostly do not: the event
    date of an event stream, else the item's own key column (``EmailAddress``, ``ContactID``)."""
    dates = [c.name for c in stream.columns if c.type is ColumnType.TIMESTAMP or c.name.endswith("Date")]
    if stream.event and dates:
        return dates[0]
    parent = stream.parent_key.name if stream.parent_key else None
    own = {c.name for c in stream.columns}
    return next((k for k in stream.key if k in own and k != parent), stream.columns[0].name)


def describe(scope: Scope | None) -> str:
    """``message 123``, ``list 7``, or ``the account``."""
    return f"{scope[0]} {scope[1]}" if scope is not None else "the account"


__all__ = ["PageGuard", "PageSizes", "describe", "page_ceiling", "page_digest", "probe_column", "walk_pages"]
