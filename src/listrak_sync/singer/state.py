"""The tap's bookmarks: tap-listrak's state format, continued, with checkpoints and refused objects.

Shape (a strict superset of what ``singer-io/tap-listrak`` writes, which it reads unchanged)::

    {"bookmarks": {
        "message_clicks": {"ClickDate": "2026-06-01T00:00:00.000000Z",
                           "progress": {"until": "2026-06-08T00:00:00.000000Z",
                                        "SendDate": "2026-03-02T10:00:00.000000Z", "MsgID": 812},
                           "refused": {"lists": {"12": "2026-05-30T00:00:00.000000Z"},
                                       "messages": {"907": {"ListID": 14,
                                                            "since": "2026-05-31T00:00:00.000000Z"}}}},
        "message_sends": {"SendDate": "2026-05-30T09:00:00.000000Z"},
        "subscribed_contacts": {"AdditionDate": "...", "progress": {"until": "...", "ListID": 12}},
        ...},
     ...any other key of the input state, kept as it was}

Every time here is an instant (aware UTC; :mod:`listrak_sync.engine`'s one time type); the
extractor turns request edges into the service's wall time with the engine's ``ServiceClock``.
``L`` is ``lookback_hours`` (the engine's horizon, default 48): every range starts ``L`` before
the time it continues from, so that an event stamped before a bookmark but visible only later
(the service's reporting delay, REFERENCE.md §12.18), or a clock that differs from the
service's, is still fetched, as long as it becomes visible within ``L``.

What the entries mean:

- The five range activity streams (clicks, opens, reads, unsubs, bounces): ``<DateField>`` is
  the run time up to which every record of every message was emitted (records that became
  visible within ``L`` of it are fetched by the next run). A run asks each message for
  ``[since - L, now]``, ``since`` being the bookmark (``start_date`` when there is none), and
  moves the bookmark to the run's ``now`` once the whole stream is done.
- ``message_sends`` (no date range in the API): ``SendDate`` is the latest send date whose
  recipients were all emitted; a run fetches the recipients of messages sent at or after
  ``SendDate - L``, so a message's recipients are read until it is older than ``L``.
- ``subscribed_contacts`` is read in full every run (from ``start_date``): Listrak keeps a
  resubscribed contact's first AdditionDate (REFERENCE.md §4.6), so no date range finds a
  contact who comes back. Its bookmark is written, as tap-listrak's was, and not used.
- ``refused``: the lists and messages the service refused (access withdrawn), each with the
  ``since`` it still needs records from. A refused object never holds its stream's bookmark
  back; when access returns it is asked from its own ``since - L``. An entry goes when its
  object is read, or is gone (a deleted message, a list no longer in the collection). Only
  refused objects are kept, and more than :data:`MAX_REFUSED_MESSAGES_PER_LIST` refused
  messages of one list become one entry for the list, so STATE stays small.

Checkpoints. Parents are worked through in a fixed order (messages by ``(SendDate, MsgID)``,
lists by ``ListID``). While a stream runs, its STATE holds ``progress``: every parent up to
and including the named one was emitted through ``until`` (this run's ``now``). A run
continuing from such a state asks those parents from ``until - L``; the others as above. A
bookmark never moves past records that were not emitted.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from listrak_sync.errors import ConfigError
from listrak_sync.streams import STREAMS, get_stream

# The streams with a bookmark, and its field (the stream's cursor, as tap-listrak names them).
BOOKMARK_FIELDS: dict[str, str] = {
    s.name: s.cursor for s in STREAMS if s.cursor and s.name != "messages"
}
# How parents are ordered for checkpoints, by parent stream.
PARENT_ORDER: dict[str, tuple[str, ...]] = {"messages": ("SendDate", "MsgID"), "lists": ("ListID",)}
# Streams that keep refused lists and messages: those asked per message.
REFUSAL_STREAMS = frozenset(s.name for s in STREAMS if s.parent == "messages")
# Beyond this many refused messages of one list in one stream, the list gets one entry instead.
MAX_REFUSED_MESSAGES_PER_LIST = 8
LEGACY_PLAN_KEY = "listrak_sync_plan"
SENDS = "message_sends"
SUBSCRIBED_CONTACTS = "subscribed_contacts"

ParentKey = tuple[Any, ...]


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds and ``Z``; naive values are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: Any, *, where: str) -> datetime:
    """Parse an ISO time from a state file into an aware UTC datetime (naive means UTC).

    Raises:
        ConfigError: not an ISO 8601 date or time.
    """
    if isinstance(value, str):
        text = value.strip()
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
            return moment.astimezone(timezone.utc)
    raise ConfigError(
        f"The state file's {where} is {value!r}, not an ISO 8601 time such as 2024-01-31T00:00:00Z. "
        "Fix it, or remove that bookmark to start the stream from start_date."
    )


class TapState:
    """The bookmarks of one run: read from ``--state``, advanced as records go out.

    Args:
        state: the state the run continues from (``None`` or ``{}`` for a first run).
        run_time: this run's ``now``, aware UTC: where requests end and bookmarks move to.
        start: the start date as an instant (aware UTC): no request starts earlier.
        lookback_hours: ``L``: how far before the time it continues from a range starts.

    Raises:
        ConfigError: the state is not a JSON object, or a bookmark is not a time.
    """

    def __init__(self, state: Any, *, run_time: datetime, start: datetime, lookback_hours: float = 48.0) -> None:
        if state is None:
            state = {}
        if not isinstance(state, Mapping):
            raise ConfigError("The state file must hold a JSON object such as {\"bookmarks\": {}}.")
        bookmarks = state.get("bookmarks", {})
        if not isinstance(bookmarks, Mapping):
            raise ConfigError('The state file\'s "bookmarks" must be a JSON object.')
        self._value: dict[str, Any] = copy.deepcopy(dict(state))
        # Earlier versions kept a per-message plan here; it made STATE grow with the account.
        self._value.pop(LEGACY_PLAN_KEY, None)
        self._value["bookmarks"] = copy.deepcopy(dict(bookmarks))
        self.run_time = run_time.astimezone(timezone.utc)
        self.start = start.astimezone(timezone.utc)
        self.lookback = timedelta(hours=lookback_hours)
        # What the service refused in this run, per stream: lists, and messages.
        self._refused_lists: dict[str, set[int]] = {}
        self._refused_messages: dict[str, set[int]] = {}
        for name in BOOKMARK_FIELDS:  # validate now, not half-way through the run
            self.bookmark(name)
            self._resume(name)
            self._refused(name)

    @property
    def value(self) -> dict[str, Any]:
        """A copy of the state as a STATE message carries it."""
        return copy.deepcopy(self._value)

    def _entry(self, stream: str) -> dict[str, Any]:
        entry = self._value["bookmarks"].get(stream)
        return entry if isinstance(entry, dict) else {}

    def bookmark(self, stream: str) -> datetime | None:
        """The stream's bookmark, aware UTC, or ``None`` (then the run starts at ``start_date``)."""
        value = self._entry(stream).get(BOOKMARK_FIELDS[stream])
        if value is None:
            return None
        return parse_time(value, where=f"bookmark {stream}.{BOOKMARK_FIELDS[stream]}")

    def _resume(self, stream: str) -> tuple[datetime, ParentKey] | None:
        progress = self._entry(stream).get("progress")
        parent = _parent(stream)
        if not isinstance(progress, Mapping) or parent is None:
            return None
        where = f"{stream}.progress"
        until = parse_time(progress.get("until"), where=f"{where}.until")
        key: list[Any] = []
        for field in PARENT_ORDER[parent]:
            value = progress.get(field)
            key.append(parse_time(value, where=f"{where}.{field}") if field == "SendDate" else _id(value, where, field))
        return until, tuple(key)

    def _refused(self, stream: str) -> tuple[dict[int, datetime], dict[int, tuple[int, datetime]]]:
        """The stream's refused lists (ID -> since) and messages (ID -> (ListID, since))."""
        refused = self._entry(stream).get("refused")
        if refused is None:
            return {}, {}
        where = f"{stream}.refused"
        if not isinstance(refused, Mapping):
            raise ConfigError(f"The state file's {where} must be a JSON object.")
        lists, messages = refused.get("lists", {}), refused.get("messages", {})
        if not isinstance(lists, Mapping) or not isinstance(messages, Mapping):
            raise ConfigError(f"The state file's {where}.lists and .messages must be JSON objects.")
        list_since = {
            _id(key, where, "lists"): parse_time(since, where=f"{where}.lists.{key}") for key, since in lists.items()
        }
        message_since = {}
        for key, item in messages.items():
            if not isinstance(item, Mapping):
                raise ConfigError(f"The state file's {where}.messages.{key} must be a JSON object.")
            message_since[_id(key, where, "messages")] = (
                _id(item.get("ListID"), f"{where}.messages.{key}", "ListID"),
                parse_time(item.get("since"), where=f"{where}.messages.{key}.since"),
            )
        return list_since, message_since

    # -- where requests start -----------------------------------------------------------------------

    def since(self, stream: str, parent_key: ParentKey, list_id: int | None = None) -> datetime:
        """The time from which one parent still needs ``stream``'s records (before the lookback).

        The earliest of: the parent's refused entry, its list's, and (for a parent a checkpoint
        covers) the checkpoint's ``until`` or else the bookmark (``start_date`` without one).
        For ``subscribed_contacts`` the bookmark is not used: a list is read from ``start_date``.

        Args:
            stream: a stream with a bookmark.
            parent_key: the parent's order key (``(SendDate, MsgID)`` or ``(ListID,)``).
            list_id: the message's list (per-message streams).
        """
        resume = self._resume(stream)
        if resume is not None and parent_key <= resume[1]:
            since = resume[0]
        elif stream == SUBSCRIBED_CONTACTS:
            since = self.start
        else:
            since = self.bookmark(stream) or self.start
        lists, messages = self._refused(stream)
        if list_id in lists:
            since = min(since, lists[list_id])
        if stream in REFUSAL_STREAMS and parent_key[-1] in messages:
            since = min(since, messages[parent_key[-1]][1])
        return since

    def range_start(self, stream: str, parent_key: ParentKey, list_id: int | None = None) -> datetime:
        """Where a range stream's request for one parent starts: ``since - L``, not before the start.

        Args:
            stream: a range stream (five message activity streams, ``subscribed_contacts``).
            parent_key: the parent's order key (``(SendDate, MsgID)`` or ``(ListID,)``).
            list_id: the message's list (per-message streams).
        """
        return max(self.since(stream, parent_key, list_id) - self.lookback, self.start)

    def wants_sends(self, parent_key: ParentKey, list_id: int) -> bool:
        """Whether a message's recipients are fetched: sent at or after ``since - L``."""
        return bool(parent_key[0] >= self.since(SENDS, parent_key, list_id) - self.lookback)

    # -- what went out ------------------------------------------------------------------------------

    def checkpoint(self, stream: str, through: ParentKey) -> None:
        """Record that every parent up to ``through`` was emitted through this run's ``now``."""
        parent = _parent(stream)
        if parent is None:
            raise ValueError(f"{stream} has no parent to checkpoint")
        progress: dict[str, Any] = {"until": format_time(self.run_time)}
        for field, value in zip(PARENT_ORDER[parent], through, strict=True):
            progress[field] = format_time(value) if isinstance(value, datetime) else value
        self._writable_entry(stream)["progress"] = progress

    def refuse_list(self, stream: str, list_id: int) -> None:
        """The service refused a list: its messages need ``stream`` from the bookmark (or earlier)."""
        lists, messages = self._refused(stream)
        since = self.bookmark(stream) or self.start
        lists[list_id] = min(lists.get(list_id, since), since)
        self._refused_lists.setdefault(stream, set()).add(list_id)
        self._store_refused(stream, lists, messages)

    def refuse_message(self, stream: str, parent_key: ParentKey, list_id: int) -> None:
        """The service refused a message: it still needs ``stream`` from where it was asked."""
        since = self.since(stream, parent_key, list_id)
        lists, messages = self._refused(stream)
        msg_id = int(parent_key[-1])
        self._refused_messages.setdefault(stream, set()).add(msg_id)
        refused_lists = self._refused_lists.setdefault(stream, set())
        if list_id in refused_lists:  # the list has one entry for all its messages in this run
            lists[list_id] = min(lists[list_id], since)
        else:
            messages[msg_id] = (list_id, since)
            of_list = [m for m, (owner, _) in messages.items() if owner == list_id]
            if len(of_list) > MAX_REFUSED_MESSAGES_PER_LIST:
                lists[list_id] = min([lists.get(list_id, since)] + [messages.pop(m)[1] for m in of_list])
                refused_lists.add(list_id)
        self._store_refused(stream, lists, messages)

    def complete(self, stream: str) -> None:
        """A stream is done for every parent: its bookmark moves on, its refusals are this run's.

        Range streams' bookmarks move to this run's ``now`` (``message_sends`` moved with
        :meth:`advance_sends`). Refused entries are kept for what was refused in this run, and
        for the messages of lists refused in this run; every other object was read, or is gone.
        """
        entry = self._writable_entry(stream)
        entry.pop("progress", None)
        if stream != SENDS:
            entry[BOOKMARK_FIELDS[stream]] = format_time(self.run_time)
        if stream in REFUSAL_STREAMS:
            lists, messages = self._refused(stream)
            still_lists = self._refused_lists.get(stream, set())
            still_messages = self._refused_messages.get(stream, set())
            lists = {k: v for k, v in lists.items() if k in still_lists}
            messages = {k: v for k, v in messages.items() if k in still_messages or v[0] in still_lists}
            self._store_refused(stream, lists, messages)

    def advance_sends(self, send_date: datetime) -> None:
        """Every message sent up to ``send_date`` had its recipients emitted (never moves back)."""
        current = self.bookmark(SENDS)
        if current is None or send_date > current:
            self._writable_entry(SENDS)[BOOKMARK_FIELDS[SENDS]] = format_time(send_date)

    def _store_refused(
        self, stream: str, lists: dict[int, datetime], messages: dict[int, tuple[int, datetime]]
    ) -> None:
        entry = self._writable_entry(stream)
        if not lists and not messages:
            entry.pop("refused", None)
            return
        entry["refused"] = {
            "lists": {str(k): format_time(v) for k, v in sorted(lists.items())},
            "messages": {
                str(k): {"ListID": owner, "since": format_time(since)} for k, (owner, since) in sorted(messages.items())
            },
        }

    def _writable_entry(self, stream: str) -> dict[str, Any]:
        bookmarks = self._value["bookmarks"]
        if not isinstance(bookmarks.get(stream), dict):
            bookmarks[stream] = {}
        entry: dict[str, Any] = bookmarks[stream]
        return entry


def _id(value: Any, where: str, field: str) -> int:
    """A list or message ID from a state file (a number, or a key that is one)."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ConfigError(f"The state file's {where}.{field} holds {value!r}, not a whole number.")


def _parent(stream: str) -> str | None:
    """The parent a range stream's checkpoints walk through; ``None`` for ``message_sends``."""
    found = get_stream(stream)
    return found.parent if found.name in BOOKMARK_FIELDS and found.name != SENDS else None


__all__ = [
    "BOOKMARK_FIELDS",
    "MAX_REFUSED_MESSAGES_PER_LIST",
    "PARENT_ORDER",
    "REFUSAL_STREAMS",
    "TapState",
    "format_time",
    "parse_time",
]
