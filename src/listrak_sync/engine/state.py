"""The plan in its two homes: dlt source state (the dict as it is) and Singer STATE (packed).

dlt keeps the plan (:mod:`listrak_sync.engine.plan`) in its source state as a plain dict. A
Singer STATE travels through every target and orchestrator, so there it is packed: the
per-message entries become one delta-coded integer column per list, the whole is JSON, zlib
and base64 (about 6 KB for the 600 messages of the simulator's ``medium`` account). The STATE
a tap writes::

    {"bookmarks": {"message_clicks": {"ClickDate": "2026-06-01T00:00:00.000000Z"}, ...},
     "listrak_sync": {"version": 3, "plan": "<packed plan>", "planned": ["message_clicks", ...]},
     ...any other key of the input state, kept as it was}

``bookmarks`` is tap-listrak 1.3.1's shape, and this module reads that tap's STATE (and this
tap's older ones, with ``progress`` and ``refused`` entries): a stream the plan does not know
yet continues from its bookmark, ``lookback_hours`` before it, once; from then on the plan
decides (``planned`` names the streams it has carried through a whole run). Every range
bookmark is the time its stream last completed; ``message_sends``' is the newest send date
whose recipients went out, as tap-listrak's was.
"""

from __future__ import annotations

import base64
import copy
import json
import zlib
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from listrak_sync.errors import ConfigError
from listrak_sync.streams import STREAMS

SINGER_KEY = "listrak_sync"
STATE_VERSION = 3
# Older versions of this tap kept an unpacked per-message plan here.
LEGACY_PLAN_KEY = "listrak_sync_plan"
# The streams with a bookmark, and its field (the stream's cursor, as tap-listrak names them).
BOOKMARK_FIELDS: dict[str, str] = {s.name: s.cursor for s in STREAMS if s.cursor and s.name != "messages"}
# The order of a message's streams in a packed entry.
PACKED_STREAMS = tuple(s.name for s in STREAMS if s.parent == "messages")


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds and ``Z`` (an aware instant)."""
    if moment.tzinfo is None:
        raise ValueError(f"an instant must be aware, not {moment!r}")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: Any, *, where: str) -> datetime:
    """An ISO time from a state file, aware UTC (a value without a zone is UTC, as tap-listrak wrote).

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


# -- packing ---------------------------------------------------------------------------------------


def pack_plan(plan: Mapping[str, Any]) -> str:
    """The plan as a short ASCII string (see the module docstring)."""
    epochs = [seen[i] for entry in plan.get("lists", {}).values() for m in entry.get("messages", {}).values()
              for seen in m.values() for i in (1, 2) if seen[i]]
    base = min(epochs, default=0)
    lists = {}
    for list_key, entry in plan.get("lists", {}).items():
        packed = {k: v for k, v in entry.items() if k != "messages"}
        column: list[int] = []
        previous = 0
        for msg_key in sorted(entry.get("messages", {}), key=int):
            seen = entry["messages"][msg_key]
            mask = sum(1 << i for i, name in enumerate(PACKED_STREAMS) if name in seen)
            column += [int(msg_key) - previous, mask]
            previous = int(msg_key)
            for name in PACKED_STREAMS:
                if name in seen:
                    counter, moved_at, fetched_at = seen[name]
                    column += [counter, moved_at - base + 1 if moved_at else 0, fetched_at - base]
        if column:
            packed["m"] = column
        lists[list_key] = packed
    document = {**{k: v for k, v in plan.items() if k != "lists"}, "lists": lists, "base": base}
    raw = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    return base64.b64encode(zlib.compress(raw, 9)).decode("ascii")


def unpack_plan(text: str) -> dict[str, Any]:
    """The plan :func:`pack_plan` packed.

    Raises:
        ConfigError: the text is not a packed plan.
    """
    try:
        document = json.loads(zlib.decompress(base64.b64decode(text, validate=True)))
        base = int(document.pop("base"))
        for entry in document["lists"].values():
            column = entry.pop("m", [])
            messages: dict[str, dict[str, list[int]]] = {}
            position, msg_id = 0, 0
            while position < len(column):
                msg_id += column[position]
                mask = column[position + 1]
                position += 2
                seen = messages[str(msg_id)] = {}
                for i, name in enumerate(PACKED_STREAMS):
                    if mask & (1 << i):
                        counter, moved, fetched = column[position : position + 3]
                        seen[name] = [counter, moved + base - 1 if moved else 0, fetched + base]
                        position += 3
            if messages:
                entry["messages"] = messages
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, zlib.error) as exc:
        raise ConfigError(
            f'The state file\'s "{SINGER_KEY}.plan" is not a plan this tap wrote ({exc.__class__.__name__}). '
            f'Remove the "{SINGER_KEY}" key to continue from the bookmarks alone.'
        ) from None
    return dict(document)


# -- Singer STATE ----------------------------------------------------------------------------------


class SingerState:
    """A Singer STATE read into the engine's terms, and written back from them.

    Args:
        state: the state the run continues from (``None`` or ``{}`` for a first run).

    Raises:
        ConfigError: the state is not a JSON object, a bookmark is not a time, or the packed
            plan is damaged.
    """

    def __init__(self, state: Any) -> None:
        if state is None:
            state = {}
        if not isinstance(state, Mapping):
            raise ConfigError('The state file must hold a JSON object such as {"bookmarks": {}}.')
        bookmarks = state.get("bookmarks", {})
        if not isinstance(bookmarks, Mapping):
            raise ConfigError('The state file\'s "bookmarks" must be a JSON object.')
        self._value: dict[str, Any] = copy.deepcopy(dict(state))
        self._value.pop(LEGACY_PLAN_KEY, None)
        self._value["bookmarks"] = copy.deepcopy(dict(bookmarks))
        self.plan = self._read_plan(self._value.get(SINGER_KEY))
        # The streams the plan has carried through a whole run: older bookmarks no longer count.
        self.planned = set(self._value.get(SINGER_KEY, {}).get("planned", [])) if self.plan else set()
        self.bookmarks: dict[str, datetime | None] = {}
        self._progress: dict[str, tuple[datetime, tuple[datetime, int]]] = {}
        self._refused: dict[str, tuple[dict[int, datetime], dict[int, datetime]]] = {}
        for name in BOOKMARK_FIELDS:  # validated now, not half-way through the run
            self._read_legacy(name)

    def resume_since(self, stream: str, msg_id: int, list_id: int, send_date: datetime) -> datetime | None:
        """Where an older state (tap-listrak's, or this tap's before the plan) left one message.

        ``None`` when the plan knows the stream (then it decides) or nothing was left: the
        message starts at the start date. Otherwise the bookmark; for a message an old
        checkpoint covered, its ``until``; made earlier by the message's or its list's refusal.
        """
        if stream in self.planned:
            return None
        since = self.bookmarks.get(stream)
        progress = self._progress.get(stream)
        if progress is not None and (send_date, msg_id) <= progress[1]:
            since = progress[0]
        lists, messages = self._refused.get(stream, ({}, {}))
        for refused in (lists.get(list_id), messages.get(msg_id)):
            if refused is not None:
                since = refused if since is None else min(since, refused)
        return since

    def _read_legacy(self, stream: str) -> None:
        entry = self._entry(stream)
        field = BOOKMARK_FIELDS[stream]
        value = entry.get(field)
        self.bookmarks[stream] = None if value is None else parse_time(value, where=f"bookmark {stream}.{field}")
        progress = entry.get("progress")
        if isinstance(progress, Mapping):
            where = f"{stream}.progress"
            until = parse_time(progress.get("until"), where=f"{where}.until")
            if stream != "subscribed_contacts":  # read in full every run: its checkpoint is moot
                sent = parse_time(progress.get("SendDate"), where=f"{where}.SendDate")
                self._progress[stream] = (until, (sent, _id(progress.get("MsgID"), f"{where}.MsgID")))
        refused = entry.get("refused")
        if refused is None:
            return
        where = f"{stream}.refused"
        if not isinstance(refused, Mapping):
            raise ConfigError(f"The state file's {where} must be a JSON object.")
        lists, messages = refused.get("lists", {}), refused.get("messages", {})
        if not isinstance(lists, Mapping) or not isinstance(messages, Mapping):
            raise ConfigError(f"The state file's {where}.lists and .messages must be JSON objects.")
        list_since = {_id(k, where): parse_time(v, where=f"{where}.lists.{k}") for k, v in lists.items()}
        message_since = {}
        for key, item in messages.items():
            if not isinstance(item, Mapping):
                raise ConfigError(f"The state file's {where}.messages.{key} must be a JSON object.")
            message_since[_id(key, where)] = parse_time(item.get("since"), where=f"{where}.messages.{key}.since")
        self._refused[stream] = (list_since, message_since)

    @staticmethod
    def _read_plan(entry: Any) -> dict[str, Any]:
        if entry is None:
            return {}
        if not isinstance(entry, Mapping) or not isinstance(entry.get("plan"), str):
            raise ConfigError(f'The state file\'s "{SINGER_KEY}" must be a JSON object with a "plan" string. '
                              f'Remove the "{SINGER_KEY}" key to continue from the bookmarks alone.')
        if entry.get("version") != STATE_VERSION:
            return {}
        return unpack_plan(entry["plan"])

    def _entry(self, stream: str) -> Mapping[str, Any]:
        entry = self._value["bookmarks"].get(stream)
        return entry if isinstance(entry, Mapping) else {}

    def complete(self, stream: str, at: datetime) -> None:
        """``stream`` is done for every parent: its bookmark moves to ``at``."""
        entry = self._value["bookmarks"].get(stream)
        if not isinstance(entry, dict):
            entry = self._value["bookmarks"][stream] = {}
        entry.pop("progress", None)
        entry.pop("refused", None)
        self.planned.add(stream)
        current = self.bookmarks.get(stream)
        if current is None or at > current:  # a bookmark never moves back
            entry[BOOKMARK_FIELDS[stream]] = format_time(at)
            self.bookmarks[stream] = at

    def value(self, plan: Mapping[str, Any]) -> dict[str, Any]:
        """The STATE to write now: the bookmarks, and ``plan`` packed."""
        value = copy.deepcopy(self._value)
        value[SINGER_KEY] = {"version": STATE_VERSION, "plan": pack_plan(plan), "planned": sorted(self.planned)}
        return value


def _id(value: Any, where: str) -> int:
    """A list or message ID from a state file (a number, or a key that is one)."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ConfigError(f"The state file's {where} holds {value!r}, not a whole number.")


__all__ = [
    "BOOKMARK_FIELDS",
    "LEGACY_PLAN_KEY",
    "SINGER_KEY",
    "STATE_VERSION",
    "SingerState",
    "format_time",
    "pack_plan",
    "parse_time",
    "unpack_plan",
]
