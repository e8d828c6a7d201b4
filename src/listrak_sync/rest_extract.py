"""REST extraction: the REST stream table walked generically, parents before children.

Nothing here is written per stream. From the stream table alone the walk knows:

- the tree (``parent``): ``rest_lists`` is the root; each row of a parent is one object whose
  children are requested with the route ids (``path_keys``) taken from that row;
- the request: ``route``, fixed ``query``, one request per value of ``passes``, paged or not
  (``rest_paged``: the client follows ``nextPageCursor`` wherever one comes);
- ``detail_route``: each item of the collection is read again in full, by its own id;
- ``from_parent``: columns copied from the parent's item (:func:`listrak_sync.rest.parse.to_table`);
- ``values_from``: ids a request names (contacts' profile fields): a list's requests of such a
  stream wait until that list's source rows are read (or come from the plan's memory), and
  send the ids in batches, merged on the key.

A stream not read this run whose children are still reaches them through the items the gate
remembered from an earlier run (``Gate.remembered``).

What is read is the gate's to decide (:class:`Gate`, implemented by
:class:`listrak_sync.engine.rest_plan.RestPlanner`): per parent row, whether a child stream is
read, with which date filter, and which items get their detail read. Pages of every object are
fetched concurrently under ``settings.concurrency`` (:func:`listrak_sync.walk.walk_concurrently`),
children queued as their parents' pages arrive.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import pyarrow as pa

from listrak_sync.errors import ConfigError, ObjectRefusedError, ObjectSkippedError
from listrak_sync.progress import RunProgress
from listrak_sync.rest.values import merge_values, own_key, value_batches, values_column
from listrak_sync.streams import REST_STREAMS, Stream, children_of, get_stream
from listrak_sync.walk import Skips, Walk, walk_concurrently

log = logging.getLogger(__name__)

REST_ROOT = get_stream("rest_lists")
_WAITERS = tuple(s for s in REST_STREAMS if s.values_from)
DONE = "__done__"


class Gate(Protocol):
    """What decides the reads of one run (the engine's REST plan)."""

    def reason(self, stream: Stream, list_id: int, parent: Stream, row: Mapping[str, Any]) -> str | None:
        """Why ``stream`` is read under the parent ``row`` (None: not this run)."""

    def passes(self, stream: Stream, list_id: int) -> Sequence[tuple[str | None, dict[str, str]]]:
        """The requests of ``stream`` for one object: (pass value, extra query) each."""

    def wants_detail(self, stream: Stream, list_id: int, item: Mapping[str, Any]) -> bool:
        """Whether the full record of ``item`` (a collection item of a detail stream) is read."""

    def remembered(self, stream: Stream, ids: Mapping[str, int]) -> list[dict[str, Any]]:
        """Items of ``stream`` under the object ``ids`` from an earlier run, for a stream not read
        this run whose children are (their ids, and ``sendDate`` where the item has one)."""

    def remember(self, stream: Stream, list_id: int, row: Mapping[str, Any]) -> None:
        """Keep ``row``'s ids for :meth:`remembered` in runs that do not read ``stream``."""


@dataclass(frozen=True)
class RestUnit:
    """One object's read of one stream: the route ids, the parent's item and why."""

    stream: Stream
    ids: dict[str, int]
    parent: Mapping[str, Any] | None
    reason: str
    pass_value: str | None = None
    query: dict[str, str] = field(default_factory=dict)
    values: tuple[int, ...] = ()

    @property
    def list_id(self) -> int:
        return int(self.ids.get("listId", 0))


@dataclass
class _RestWalk(Walk):
    """A :class:`Walk` that also keeps each page's raw items (for children's ``from_parent``)."""

    unit: RestUnit | None = None
    raw: deque[list[dict[str, Any]]] = field(default_factory=deque)


def rest_ancestors(stream: Stream) -> list[Stream]:
    """``stream``'s parents, nearest first, up to the root."""
    chain = []
    while stream.parent:
        stream = get_stream(stream.parent)
        chain.append(stream)
    return chain


def needed_streams(selected: Collection[str]) -> list[Stream]:
    """The REST streams a selection needs: the selected ones and every ancestor."""
    names = set()
    for name in selected:
        stream = get_stream(name)
        if stream.api != "rest":
            continue
        for needed in (stream, *([get_stream(stream.values_from[0])] if stream.values_from else [])):
            names.add(needed.name)
            names.update(s.name for s in rest_ancestors(needed))
    return [s for s in REST_STREAMS if s.name in names]


def _source_chain(stream: Stream) -> set[str]:
    """The streams whose walks must end before ``stream``'s requests of a list: its ``values_from``
    source and the source's ancestors below the root."""
    if not stream.values_from:
        return set()
    source = get_stream(stream.values_from[0])
    return {source.name, *(s.name for s in rest_ancestors(source) if s.parent)}


def _item_id_name(route: str) -> str:
    """The last ``{id}`` of a route: a detail route's own id (``messageId``)."""
    return route.rsplit("{", 1)[1].split("}", 1)[0]


class RestExtractor:
    """Reads the REST streams of one account through a REST client.

    Args:
        client: the REST client (``get``, ``pages``; see docs/rest.md).
        to_table: items to an Arrow table per the stream table (``listrak_sync.rest.parse.to_table``).
        concurrency: most requests in flight at once.
        list_ids: only these lists (default: every list the credentials see).
        progress: the run's counters.
        skipped: where the objects skipped are told (default: a list of its own, ``skipped``).

    ``refused`` holds the units the service refused before they gave any row: their rows in the
    destination are still theirs (a run that would delete them loads them again).
    """

    def __init__(self, client: Any, to_table: Callable[..., pa.Table], *, concurrency: int,
                 list_ids: Sequence[int] | None = None, progress: RunProgress | None = None,
                 skipped: list[ObjectSkippedError] | None = None) -> None:
        self.client = client
        self.to_table = to_table
        self.concurrency = concurrency
        self.list_ids = list_ids
        self.progress = progress if progress is not None else RunProgress()
        self._skips = Skips(skipped)
        self.skipped: list[ObjectSkippedError] = self._skips.errors
        self.units: dict[str, list[RestUnit]] = {}
        self.refused: list[RestUnit] = []
        self._failed: set[int] = set()
        self._lock = threading.Lock()
        self._open: dict[tuple[int, str], int] = {}  # walks of a list's source chain not yet over
        self._values: dict[tuple[int, str], set[int]] = {}  # a list's source ids read this run
        self._waiting: dict[tuple[int, str], list[Callable[[], None]]] = {}
        self._read: set[tuple[int, str]] = set()  # sources read this run, per list
    def lists(self) -> list[dict[str, Any]]:
        """The lists the credentials see, filtered to ``list_ids``.

        Raises:
            ConfigError: a requested list is not visible to the REST credentials.
        """
        items = self.client.get(REST_ROOT.route, {}) or []
        if self.list_ids is None:
            return list(items)
        visible = {int(item["listId"]) for item in items}
        unknown = [i for i in self.list_ids if i not in visible]
        if unknown:
            raise ConfigError(f"List ID(s) {', '.join(map(str, unknown))} are not visible to the REST client ID. "
                              f"Visible lists: {', '.join(map(str, sorted(visible))) or 'none'}. Fix list_ids, "
                              "or grant the integration access to the list in Listrak.")
        return [item for item in items if int(item["listId"]) in self.list_ids]

    def read(self, streams: Sequence[Stream], gate: Gate, lists: list[dict[str, Any]] | None = None, *,
             parents: bool = False) -> Iterator[tuple[Stream, pa.Table]]:
        """Every page of ``streams`` (ancestors included), as the gate decides.

        Args:
            streams: the streams to read, with their ancestors (:func:`needed_streams`).
            gate: what decides each read.
            lists: the lists' items, if :meth:`lists` was asked already.
            parents: also yield the pages of the parent-only streams (``stored`` False), the
                lists first as one page (the Singer tap's 2.x mode emits them).

        Yields:
            ``(stream, table)`` per non-empty page of a stored stream; parent-only streams
            are read for their children, and yielded only with ``parents``.
        """
        wanted = {s.name for s in streams}
        lists = self.lists() if lists is None else lists
        self.progress.add_rows("rest_lists", len(lists))
        if parents and lists:
            yield REST_ROOT, self.to_table(REST_ROOT, lists, {})
        queue: _Queue = _Queue()
        for item in lists:
            self._children(queue, wanted, REST_ROOT, [item], {}, gate)
        for walk, page in walk_concurrently(queue, workers=self.concurrency, progress=self.progress,
                                            on_skipped=self._skips.add, report_done=True):
            assert isinstance(walk, _RestWalk) and walk.unit is not None
            if page is None:
                self._count(walk.unit, -1)
                continue
            raw = walk.raw.popleft()
            self._collect(walk.unit, page, gate)
            if walk.stream.stored or parents:
                yield walk.stream, page
            self._children(queue, wanted, walk.stream, raw, walk.unit.ids, gate, page)

    def _collect(self, unit: RestUnit, page: pa.Table, gate: Gate) -> None:
        """Keep the ids a ``values_from`` stream of the list will name (and have the plan remember
        them for runs that do not read the source)."""
        for waiter in _WAITERS:
            assert waiter.values_from is not None
            if waiter.values_from[0] == unit.stream.name:
                column = waiter.values_from[1]
                self._values.setdefault((unit.list_id, unit.stream.name), set()).update(
                    page.column(column).to_pylist())
                for row in page.select([c for c in page.column_names if c.endswith("Id")]).to_pylist():
                    gate.remember(unit.stream, unit.list_id, row)

    def _count(self, unit: RestUnit, step: int) -> None:
        """Count a walk of a list's source chain in (1) or out (-1); release the waiters at 0."""
        released = []
        with self._lock:
            for waiter in _WAITERS:
                assert waiter.values_from is not None
                if unit.stream.name not in _source_chain(waiter):
                    continue
                key = (unit.list_id, waiter.values_from[0])
                self._read.add(key)
                self._open[key] = self._open.get(key, 0) + step
                if self._open[key] == 0:
                    released += self._waiting.pop(key, [])
        for release in released:
            release()

    def _children(self, queue: _Queue, wanted: set[str], parent: Stream, items: list[dict[str, Any]],
                  ids: Mapping[str, int], gate: Gate, page: pa.Table | None = None) -> None:
        # Streams that name their source's ids come last, once their sources are queued.
        kids = sorted((s for s in children_of(parent.name) if s.name in wanted), key=lambda s: bool(s.values_from))
        if not kids:
            return
        rows = page.to_pylist() if page is not None else items
        for item, row in zip(items, rows, strict=True):
            # The route ids of an object: its parents' (stamped on its row) and its own.
            own = {**ids, **{k: int(v) for k, v in row.items() if k.endswith("Id") and isinstance(v, int)}}
            list_id = int(own["listId"])
            for child in kids:
                reason = gate.reason(child, list_id, parent, row)
                child_ids = {c.name: own[c.name] for c in child.path_keys}
                if reason is None:
                    if any(k.name in wanted for k in children_of(child.name)):
                        self._children(queue, wanted, child, gate.remembered(child, child_ids), child_ids, gate)
                    continue
                units = [RestUnit(child, child_ids, item, reason, pass_value, query)
                         for pass_value, query in gate.passes(child, list_id)]
                if child.values_from:
                    self._when_sources_read(queue, units, gate)
                else:
                    self._queue(queue, units, gate)

    def _queue(self, queue: _Queue, units: list[RestUnit], gate: Gate) -> None:
        for unit in units:
            with self._lock:
                self.units.setdefault(unit.stream.name, []).append(unit)
            self._count(unit, 1)
            self.progress.add_units(1)
            queue.put(self._walk(unit, gate))

    def _when_sources_read(self, queue: _Queue, units: list[RestUnit], gate: Gate) -> None:
        """Queue ``units`` once their list's source rows are read, with the ids found (or, where
        the source is not read this run, the ids the plan remembered)."""
        stream, list_id = units[0].stream, units[0].list_id
        assert stream.values_from is not None
        source, column = get_stream(stream.values_from[0]), stream.values_from[1]

        def release() -> None:
            found = self._values.get((list_id, source.name), set())
            if (list_id, source.name) not in self._read:
                found = {int(i[column]) for i in gate.remembered(source, {"listId": list_id}) if column in i}
            values = tuple(sorted(found))
            self._queue(queue, [RestUnit(u.stream, u.ids, u.parent, u.reason, u.pass_value, u.query, values)
                                for u in units], gate)

        key = (list_id, source.name)
        if self._open.get(key):
            self._waiting.setdefault(key, []).append(release)
        else:
            release()

    def _walk(self, unit: RestUnit, gate: Gate) -> _RestWalk:
        walk = _RestWalk(unit.stream, unit.list_id, iter(()), unit=unit)
        walk.pages = self._refusals(unit, self._pages(unit, gate, walk.raw))
        return walk

    def _refusals(self, unit: RestUnit, pages: Iterator[pa.Table]) -> Iterator[pa.Table]:
        """``pages``, noting ``unit`` as refused when the service refuses it before its first row
        (refused later, it keeps the rows it gave, and they stand for its rows this run)."""
        gave = False
        try:
            for page in pages:
                gave = True
                yield page
        except ObjectSkippedError as exc:
            with self._lock:
                self._failed.add(unit.list_id)
                if isinstance(exc, ObjectRefusedError) and not gave:
                    self.refused.append(unit)
            raise

    def failed_lists(self) -> set[int]:
        """The lists with an object skipped this run (refused, or its pages would never end)."""
        with self._lock:
            return set(self._failed)

    def _pages(self, unit: RestUnit, gate: Gate, raw: deque[list[dict[str, Any]]]) -> Iterator[pa.Table]:
        stream = unit.stream
        params = {**dict(stream.query), **unit.query}
        if stream.passes and unit.pass_value is not None:
            params[stream.passes[0]] = unit.pass_value
        assert stream.route is not None
        pages: Iterator[list[dict[str, Any]]]
        batches = value_batches(stream, unit.values)
        extra = self._extra_values(stream, unit, params, batches[1:])
        if batches:
            params[batches[0][0]] = batches[0][1]
        if stream.rest_paged:
            pages = self.client.pages(stream.route, unit.ids, params or None)
        else:
            data = self.client.get(stream.route, unit.ids, params or None)
            pages = iter([data if isinstance(data, list) else [] if data is None else [data]])
        for items in pages:
            if stream.detail_route:
                own = _item_id_name(stream.detail_route)
                items = [self.client.get(stream.detail_route, {**unit.ids, own: int(item[own])})
                         for item in items if gate.wants_detail(stream, unit.list_id, item)]
            if not items:
                continue
            if extra:
                items = merge_values(stream, items, extra)
            raw.append(items)
            yield self.to_table(stream, items, unit.ids, unit.parent if stream.from_parent else None)

    def _extra_values(self, stream: Stream, unit: RestUnit, params: dict[str, str],
                      batches: list[tuple[str, str]]) -> dict[tuple[Any, ...], list[Any]]:
        """The values of every batch after the first, by the item's own key (read before the
        first batch's pages, which they are merged into)."""
        extra: dict[tuple[Any, ...], list[Any]] = {}
        if not batches:
            return extra
        assert stream.route is not None
        target = values_column(stream)
        for param, ids in batches:
            for items in self.client.pages(stream.route, unit.ids, {**params, param: ids}):
                for item in items:
                    extra.setdefault(own_key(stream, item), []).extend(item.get(target) or [])
        return extra


class _Queue:
    """Walks to start, taken by :func:`walk_concurrently` as its window has room; refilled as
    parents' pages arrive (an iterator that may stop and go on again)."""

    def __init__(self) -> None:
        self._walks: deque[Walk] = deque()

    def put(self, walk: Walk) -> None:
        self._walks.append(walk)

    def __iter__(self) -> _Queue:
        return self

    def __next__(self) -> Walk:
        if not self._walks:
            raise StopIteration
        return self._walks.popleft()


def service_now(client: Any, fallback: Callable[[], datetime]) -> datetime:
    """The REST service's clock when the client reads one, else ``fallback``."""
    reader = getattr(client, "service_now", None)
    return reader() if callable(reader) else fallback()


__all__ = ["DONE", "REST_ROOT", "Gate", "RestExtractor", "RestUnit", "needed_streams", "rest_ancestors", "service_now"]
