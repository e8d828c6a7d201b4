"""The tap's bookmarks: tap-listrak's state format, continued, with resumable checkpoints.

Shape (a strict superset of what ``singer-io/tap-listrak`` writes, which it reads unchanged)::

    {"bookmarks": {
        "message_clicks": {"ClickDate": "2026-06-01T00:00:00.000000Z",
                           "progress": {"until": "2026-06-08T00:00:00.000000Z",
                                        "SendDate": "2026-03-02T10:00:00.000000Z", "MsgID": 812}},
        "message_sends": {"SendDate": "2026-05-30T09:00:00.000000Z"},
        "subscribed_contacts": {"AdditionDate": "...", "progress": {"until": "...", "ListID": 12}},
        ...},
     ...any other key of the input state, kept as it was}

What a bookmark means (the original tap's semantics):

- ``lists`` and ``messages`` have none: when selected they are emitted in full, messages
  windowed from ``start_date``.
- The five range activity streams (clicks, opens, reads, unsubs, bounces) and
  ``subscribed_contacts``: ``<DateField>`` is the time up to which every record of every parent
  (message, list) was emitted. A run asks each parent for ``[bookmark, now]`` (``start_date``
  when there is none) and, once the whole stream is done, moves the bookmark to the run's
  ``now``. Both ends are inclusive, so a record on the boundary may come twice, never not at all.
- ``message_sends`` (no date range in the API): ``SendDate`` is the latest send date whose
  recipients were all emitted; a run fetches the recipients of messages sent at or after it.

Checkpoints. Parents are worked through in a fixed order (messages by ``(SendDate, MsgID)``,
lists by ``ListID``). While a stream runs, its STATE holds ``progress``: every parent up to
and including the named one was emitted through ``until`` (this run's ``now``). A run
continuing from such a state asks those parents only from ``until``; the others from the
bookmark. A bookmark never moves past records that were not emitted; a run that stops
part-way loses no record and repeats at most the parents after the last checkpoint.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from listrak_sync.errors import ConfigError
from listrak_sync.streams import STREAMS, get_stream

# The streams with a bookmark, and its field (the stream's cursor, as tap-listrak names them).
BOOKMARK_FIELDS: dict[str, str] = {
    s.name: s.cursor for s in STREAMS if s.cursor and s.name != "messages"
}
# How parents are ordered for checkpoints, by parent stream.
PARENT_ORDER: dict[str, tuple[str, ...]] = {"messages": ("SendDate", "MsgID"), "lists": ("ListID",)}

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


LEGACY_PLAN_KEY = "listrak_sync_plan"


class TapState:
    """The bookmarks of one run: read from ``--state``, advanced as records go out.

    Args:
        state: the state the run continues from (``None`` or ``{}`` for a first run).
        run_time: this run's ``now``, aware UTC: where requests end and bookmarks move to.

    Raises:
        ConfigError: the state is not a JSON object, or a bookmark is not a time.
    """

    def __init__(self, state: Any, *, run_time: datetime) -> None:
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
        for name in BOOKMARK_FIELDS:  # validate now, not half-way through the run
            self.bookmark(name)
            self._resume(name)

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
            if field == "SendDate":
                key.append(parse_time(value, where=f"{where}.{field}"))
            elif isinstance(value, int) and not isinstance(value, bool):
                key.append(value)
            else:
                raise ConfigError(f"The state file's {where}.{field} is {value!r}, not a whole number.")
        return until, tuple(key)

    def range_start(self, stream: str, parent_key: ParentKey) -> datetime | None:
        """Where a range stream's request for one parent starts (``None``: the start date).

        Args:
            stream: a range stream (five message activity streams, ``subscribed_contacts``).
            parent_key: the parent's order key (``(SendDate, MsgID)`` or ``(ListID,)``).
        """
        resume = self._resume(stream)
        if resume is not None and parent_key <= resume[1]:
            return resume[0]
        return self.bookmark(stream)

    def checkpoint(self, stream: str, through: ParentKey) -> None:
        """Record that every parent up to ``through`` was emitted through this run's ``now``."""
        parent = _parent(stream)
        if parent is None:
            raise ValueError(f"{stream} has no parent to checkpoint")
        progress: dict[str, Any] = {"until": format_time(self.run_time)}
        for field, value in zip(PARENT_ORDER[parent], through, strict=True):
            progress[field] = format_time(value) if isinstance(value, datetime) else value
        self._writable_entry(stream)["progress"] = progress

    def complete(self, stream: str) -> None:
        """A range stream is done for every parent: its bookmark moves to this run's ``now``."""
        entry = self._writable_entry(stream)
        entry.pop("progress", None)
        entry[BOOKMARK_FIELDS[stream]] = format_time(self.run_time)

    def advance_sends(self, send_date: datetime) -> None:
        """Every message sent up to ``send_date`` had its recipients emitted (never moves back)."""
        current = self.bookmark("message_sends")
        if current is None or send_date > current:
            self._writable_entry("message_sends")[BOOKMARK_FIELDS["message_sends"]] = format_time(send_date)

    def _writable_entry(self, stream: str) -> dict[str, Any]:
        bookmarks = self._value["bookmarks"]
        if not isinstance(bookmarks.get(stream), dict):
            bookmarks[stream] = {}
        entry: dict[str, Any] = bookmarks[stream]
        return entry


def _parent(stream: str) -> str | None:
    """The parent a range stream's checkpoints walk through; ``None`` for ``message_sends``."""
    found = get_stream(stream)
    return found.parent if found.name in BOOKMARK_FIELDS and found.name != "message_sends" else None


__all__ = ["BOOKMARK_FIELDS", "PARENT_ORDER", "TapState", "format_time", "parse_time"]
