"""The incremental plan of the REST streams: what a run reads, and how each table is written.

The REST API has no counters on its messages, so the plan rests on dates and a periodic
recheck (docs/rest.md, "How incremental works"), with ``L = lookback_hours``:

- The first run (or a changed start date, or ``--full-refresh``) reads everything and replaces
  every REST table (a run of some lists, ``--lists``, replaces those lists' rows only). So does
  a run in which every list's recheck is due (every ``full_recheck_days``): nothing can lag
  longer than that.
- What the API can filter by date (contacts, a list's messages, transactional message
  activity) is read every run. What it cannot (campaigns, conversations and their messages,
  transactional messages, profile-field groups and fields: small collections per list) is read
  at the list's recheck only and replaced per list; between rechecks their children are reached
  through the items the plan remembered from the last recheck (``remembered``).
- A message (list or conversation message) has its children read (activity, links, clickers,
  summary; a conversation message also its full record) when it is new to the plan (a message
  counts as known only once it has a send date), was sent less than ``L`` ago, or its list's
  recheck is due. The children's tables are
  merged per message: a delete marker per message read clears its old rows.
- Contacts are read per list and pass (Subscribed, Unsubscribed) from the pass's bookmark less
  ``L`` (the newest subscribe or unsubscribe date seen; the stream is unordered, so the bookmark
  moves only once the pass is read whole) and merged on (listId, emailAddress).
- An event stream under a non-message parent (transactional message activity) is read from its
  last read less ``L`` on its date filter and merged on its parent's ids and that date: the
  sends in the window are replaced.

The plan lives in the adapter's state beside the SOAP plan (dlt: source state ``rest_plan``)::

    {"version": 1, "start": "2020-01-01T00:00:00+00:00", "read_at": 1718000000,
     "lists": {"12": {"checked": 1718000000, "bookmarks": {"contacts:Subscribed": "..."},
                      "known": {"rest_messages": [812, ...], "conversation_messages": [...]},
                      "remembered": {"transactional_messages": [{"listId": 12, "transactionalMessageId": 3}],
                                     "conversation_messages": [{..., "sendDate": "2024-..."}]}}}}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from listrak_sync.streams import REST_STREAMS, Stream, get_stream
from listrak_sync.time import ServiceClock, utc

REST_PLAN_VERSION = 1
ROOT = "rest_lists"


def message_like(stream: Stream) -> bool:
    """A stream whose rows are sent messages (they carry ``sendDate`` and gate their children)."""
    return any(c.name == "sendDate" for c in stream.columns) and not stream.event and stream.key[-1] == "messageId"


def at_recheck(stream: Stream) -> bool:
    """A stream read only at its list's recheck: outside a message, with no date filter."""
    return stream.parent is not None and gating_message(stream) is None and stream.date_param is None


def gating_message(stream: Stream) -> Stream | None:
    """The nearest message-like ancestor of ``stream`` (whose rows decide its reads), if any."""
    parent = stream.parent
    while parent:
        ancestor = get_stream(parent)
        if message_like(ancestor):
            return ancestor
        parent = ancestor.parent
    return None


@dataclass(frozen=True)
class TableWrite:
    """How one REST table is written this run.

    Attributes:
        disposition: ``replace`` (the whole table) or ``merge`` (delete-insert).
        merge_key: the columns whose values are replaced (``merge``), or empty to merge on the key.
        markers: a delete marker per message read clears its rows (merge per message).
        reason: why, for the log and the summary.
    """

    disposition: str
    merge_key: tuple[str, ...]
    markers: bool
    reason: str


class RestPlanner:
    """Decides the REST reads of one run, and records what they found.

    Args:
        plan: the REST plan state (the module docstring), mutated in place.
        start: the start date (aware).
        now: the service's clock at the start of the run (aware).
        lookback_hours: ``L``.
        full_recheck_days: days between two rechecks of a list (0: every run).
        full_refresh: read everything and replace every table.
        full_refresh_reason: why, if not the user's request.
        zone: the service's time zone (date filters are sent as its wall time).
        shard: the run reads some lists only (``--lists``): no table is replaced, a full read
            of a list replaces that list's rows.
    """

    def __init__(self, plan: dict[str, Any], *, start: datetime, now: datetime, lookback_hours: float,
                 full_recheck_days: float, full_refresh: bool = False, full_refresh_reason: str | None = None,
                 zone: str = "UTC", shard: bool = False) -> None:
        if plan.get("version") != REST_PLAN_VERSION:
            plan.clear()
            plan.update(version=REST_PLAN_VERSION, lists={})
        self.plan = plan
        self.start = utc(start)
        self.now = utc(now)
        self.lookback = timedelta(hours=lookback_hours)
        self.recheck = full_recheck_days * 86400
        self.clock = ServiceClock(zone)
        self.shard = shard
        if full_refresh:
            self.full_reason: str | None = full_refresh_reason or "full refresh requested"
        elif plan.get("start") is None:
            self.full_reason = "first run"
        elif plan["start"] != self.start.isoformat():
            self.full_reason = "the start date changed"
        else:
            self.full_reason = None
        self.rechecked: set[int] = set()
        self.seen_lists: set[int] = set()
        self.known_now: dict[tuple[int, str], set[int]] = {}
        self.newest: dict[tuple[int, str], datetime] = {}
        self.remembered_now: dict[tuple[int, str], dict[tuple[int, ...], dict[str, Any]]] = {}
        self.read_at = self.now
        self._lists_decided = False

    # -- per run ------------------------------------------------------------------------------------

    def begin(self, list_ids: Iterable[int]) -> None:
        """The lists of this run: decide which are rechecked in full."""
        self.seen_lists = set(list_ids)
        for list_id in self.seen_lists:
            checked = self._list(list_id).get("checked")
            if self.full_reason or checked is None or self.recheck <= 0 or \
                    self.now.timestamp() - checked >= self.recheck:
                self.rechecked.add(list_id)
        self._lists_decided = True

    @property
    def full(self) -> bool:
        """Every REST table is read whole and replaced this run."""
        return self.full_reason is not None or (self._lists_decided and self.rechecked >= self.seen_lists)

    @property
    def mode_reason(self) -> str:
        if self.full_reason:
            return self.full_reason
        return "list recheck due" if self.full else "incremental"

    def write(self, stream: Stream) -> TableWrite:
        """How ``stream``'s table is written this run."""
        if self.full and self.shard:
            return TableWrite("merge", ("listId",), gating_message(stream) is not None,
                              f"{self.mode_reason}: the lists read are replaced")
        if self.full:
            return TableWrite("replace", (), False, self.mode_reason)
        if at_recheck(stream):
            return TableWrite("merge", ("listId",), False, "replaced per list at its recheck")
        gate = gating_message(stream)
        if gate is not None:
            return TableWrite("merge", tuple(gate.key), True, "merged per message read")
        if stream.event and stream.date_param and stream.cursor:
            keys = tuple(c.name for c in stream.path_keys)
            return TableWrite("merge", (*keys, stream.cursor), False, "merged per date read")
        return TableWrite("merge", (), False, "merged on its key")

    # -- the gate (listrak_sync.rest_extract.Gate) ----------------------------------------------------

    def reason(self, stream: Stream, list_id: int, parent: Stream, row: Mapping[str, Any]) -> str | None:
        """Why ``stream`` is read under the parent ``row`` this run (None: not read)."""
        if at_recheck(parent):
            self.remember(parent, list_id, row)
        if message_like(parent):
            return self.message_due(list_id, parent, row)
        if self.full_reason:
            return self.full_reason
        if list_id in self.rechecked:
            return "list recheck due"
        return None if at_recheck(stream) else "read every run"

    def remembered(self, stream: Stream, ids: Mapping[str, int]) -> list[dict[str, Any]]:
        """The items of ``stream`` under the object ``ids`` as its list's last recheck found them
        (the parents of its children between rechecks)."""
        items = self._list(int(ids["listId"])).get("remembered", {}).get(stream.name, [])
        found = [item for item in items if all(item.get(k) == v for k, v in ids.items())]
        for item in found:
            if isinstance(item.get("sendDate"), str):
                item = item | {"sendDate": datetime.fromisoformat(item["sendDate"])}
            self.remember(stream, int(ids["listId"]), item)
        return [self.remembered_now[(int(ids["listId"]), stream.name)][_ids_of(i)] for i in found]

    def remember(self, stream: Stream, list_id: int, row: Mapping[str, Any]) -> None:
        """Keep ``row``'s ids (and send date) for :meth:`remembered` until the list's next recheck."""
        kept = {k: v for k, v in row.items() if k.endswith("Id") and isinstance(v, int)}
        if "sendDate" in row:
            kept["sendDate"] = row["sendDate"]
        self.remembered_now.setdefault((list_id, stream.name), {})[_ids_of(kept)] = kept

    def wants_detail(self, stream: Stream, list_id: int, item: Mapping[str, Any]) -> bool:
        """A detail stream's item is read in full when it is due like a message."""
        return self.message_due(list_id, stream, item) is not None

    def message_due(self, list_id: int, stream: Stream, row: Mapping[str, Any]) -> str | None:
        """Why a message's children are read this run, if they are."""
        msg_id = int(row["messageId"])
        sent = self._instant(row.get("sendDate"))
        if sent is not None:  # an unsent message stays new to the plan until it is sent
            self.known_now.setdefault((list_id, stream.name), set()).add(msg_id)
        if self.full_reason:
            return self.full_reason
        if list_id in self.rechecked:
            return "list recheck due"
        if sent is None:
            return None  # nothing to read yet (a scheduled or draft message)
        if msg_id not in self._list(list_id).get("known", {}).get(stream.name, ()):
            return "new to the plan"
        if self.now - sent < self.lookback:
            return "sent within the lookback"
        return None

    def passes(self, stream: Stream, list_id: int) -> Sequence[tuple[str | None, dict[str, str]]]:
        """One request per pass value, each with its date filter (if the stream has one)."""
        values: Sequence[str | None] = stream.passes[1] if stream.passes else (None,)
        return [(value, self._date_query(stream, list_id, value)) for value in values]

    def _date_query(self, stream: Stream, list_id: int, value: str | None) -> dict[str, str]:
        if not stream.date_param or self.full_reason or list_id in self.rechecked:
            return {}
        if stream.passes:
            mark = self._list(list_id).get("bookmarks", {}).get(f"{stream.name}:{value}")
            since = None if mark is None else datetime.fromisoformat(mark)
        elif gating_message(stream) is None and stream.event:
            read_at = self.plan.get("read_at")
            since = None if read_at is None else datetime.fromtimestamp(read_at, timezone.utc)
        else:  # a message's children are read whole
            return {}
        if since is None:
            return {}
        since = max(self.start, since - self.lookback)
        return {stream.date_param: self.clock.wall(since).strftime("%Y-%m-%dT%H:%M:%S")}

    # -- records ------------------------------------------------------------------------------------

    def saw(self, stream: Stream, list_id: int, pass_value: str | None, newest: datetime | None) -> None:
        """Fold the newest cursor value a read of ``stream`` found (for the pass's bookmark)."""
        if newest is None or not stream.passes:
            return
        key = (list_id, f"{stream.name}:{pass_value}")
        previous = self.newest.get(key)
        self.newest[key] = newest if previous is None else max(previous, newest)

    def finish(self, failed_lists: Iterable[int] = ()) -> dict[str, Any]:
        """Close the run's plan (every read done): bookmarks, known messages, rechecks.

        A list in ``failed_lists`` (an object of it skipped) keeps its bookmarks, and its recheck
        is due at the next run, so that whatever was skipped is read again.
        """
        failed = set(failed_lists)
        lists = self.plan.setdefault("lists", {})
        if self.full_reason:
            lists.clear()
        for key in [k for k in lists if int(k) not in self.seen_lists]:
            del lists[key]
        for (list_id, name), newest in self.newest.items():
            if list_id in failed:
                continue
            marks = self._list(list_id, create=True).setdefault("bookmarks", {})
            old = marks.get(name)
            if old is None or datetime.fromisoformat(old) < newest:
                marks[name] = utc(newest).isoformat()
        for (list_id, name), ids in self.known_now.items():
            self._list(list_id, create=True).setdefault("known", {})[name] = sorted(ids)
        for list_id in failed & self.seen_lists:  # something was skipped: the next run reads the list whole
            self._list(list_id, create=True).pop("checked", None)
        for list_id in self.rechecked - failed:
            entry = self._list(list_id, create=True)
            entry["checked"] = int(self.now.timestamp())
            entry["remembered"] = {
                name: [{k: utc(v).isoformat() if isinstance(v, datetime) else v for k, v in item.items()}
                       for item in items.values()]
                for (lid, name), items in sorted(self.remembered_now.items()) if lid == list_id}
        self.plan["start"] = self.start.isoformat()
        self.plan["read_at"] = int(self.read_at.timestamp())
        return self.plan

    def _instant(self, value: Any) -> datetime | None:
        """A typed row's aware date, or a raw item's service wall time as an instant."""
        if isinstance(value, datetime):
            return utc(value) if value.tzinfo else self.clock.instant(value)
        if isinstance(value, str) and value:
            try:
                return self.clock.instant(datetime.fromisoformat(value[:19]))
            except ValueError:
                return None
        return None

    def _list(self, list_id: int, create: bool = False) -> dict[str, Any]:
        lists = self.plan.setdefault("lists", {})
        return lists.setdefault(str(list_id), {}) if create else lists.get(str(list_id), {})


def _ids_of(item: Mapping[str, Any]) -> tuple[int, ...]:
    return tuple(v for k, v in sorted(item.items()) if k.endswith("Id"))


def pass_cursor(stream: Stream, population: str | None) -> str | None:
    """The column a pass's date filter reads (contacts: unsubscribeDate for the Unsubscribed pass)."""
    if stream.passes and population == "Unsubscribed" and any(c.name == "unsubscribeDate" for c in stream.columns):
        return "unsubscribeDate"
    return stream.cursor


STORED_REST = tuple(s for s in REST_STREAMS if s.stored)

__all__ = ["REST_PLAN_VERSION", "STORED_REST", "RestPlanner", "TableWrite", "at_recheck", "gating_message",
           "message_like", "pass_cursor"]
