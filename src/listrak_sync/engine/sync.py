"""One run as every adapter sees it: the plan turned into ordered work units, and back.

An adapter (the dlt source, the Singer tap) asks :class:`SyncEngine`, in this order:

1. :attr:`~SyncEngine.modes`: per activity stream, replaced whole or merged, and why.
2. :meth:`~SyncEngine.message_reaches`: how far back to ask each list's messages; after the
   read, :meth:`~SyncEngine.record_messages`.
3. :meth:`~SyncEngine.plan_activity`: the work units (stream, message, start, reason) this run
   fetches, from the messages just read and their counters.
   Units an interrupted run already fetched (its checkpoint, :attr:`WorkUnit.key`) are
   planned like any other and marked :attr:`~WorkUnit.stored`: the adapter serves them from
   where it kept them instead of fetching them.
4. :meth:`~SyncEngine.record` as units finish (the checkpoint: which (stream, message) pairs
   are done, with the counters they were fetched at), then :meth:`~SyncEngine.finish` per stream.

The adapters only translate: resources, hints and source state on one side, RECORD and STATE
on the other. The plan itself is :mod:`listrak_sync.engine.plan`'s; its two encodings are
:mod:`listrak_sync.engine.state`'s.

**Where a unit starts.** An adapter that replaces a message's rows (the dlt source) needs all
of them: every unit starts at the start date. An adapter that appends (the Singer tap) needs
only what its consumer has not had: a unit starts ``L`` (``lookback_hours``) before the
message's last fetch, or, for a message the plan does not know in a stream that an older state
bookmarked, ``L`` before that bookmark; never before the start date.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from listrak_sync.engine.plan import (
    PLAN_COLUMNS,
    Planner,
    RunMode,
    StreamMode,
    current_plan,
    run_mode,
    stream_modes,
)
from listrak_sync.engine.reach import message_reach, record_reach
from listrak_sync.errors import ConfigError
from listrak_sync.extract import MessageReach
from listrak_sync.settings import Settings
from listrak_sync.soap.parse import parse_service_instant
from listrak_sync.streams import Stream

log = logging.getLogger(__name__)


UnitKey = tuple[str, int, "int | None", str]
"""(stream, MsgID, counter, start) of a work unit: see :attr:`WorkUnit.key`."""

ResumeSince = Callable[[str, int, int, datetime], "datetime | None"]


@dataclass(frozen=True)
class Policy:
    """The settings that decide what a run fetches (see ``docs/incremental.md``).

    ``trust_counters`` chooses between the two policies: the counter plan (skip a message's
    stream while its counter stands still, with a periodic recheck of every message) and
    lookback-only (every message every run).
    """

    lookback_hours: float = 48.0
    send_settle_hours: float = 24.0
    full_recheck_days: float = 7.0
    trust_counters: bool = True
    interval_days: int = 365

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        """The policy fields of ``settings``."""
        return cls(
            lookback_hours=settings.lookback_hours,
            send_settle_hours=settings.send_settle_hours,
            full_recheck_days=settings.full_recheck_days,
            trust_counters=settings.trust_counters,
            interval_days=settings.interval_days,
        )


@dataclass(frozen=True)
class WorkUnit:
    """One (activity stream, message) pair to fetch this run.

    Attributes:
        stream: the activity stream.
        parent: the message (``MsgID``).
        list_id: the message's list.
        start: the instant its event range starts at; ``None`` for a stream without dates
            (``message_sends``).
        reason: why it is fetched (``new to the plan``, ``counter moved``, ...).
        counter: the message's counter for the stream when the unit was planned (deliveries
            for ``message_sends``, which has none); None when the messages read lacks it.
        stored: an interrupted run of the same plan fetched it already, at the same counter
            (see :meth:`SyncEngine.plan_activity`): it is served from there, not fetched.
    """

    stream: Stream
    parent: int
    list_id: int
    start: datetime | None
    reason: str
    counter: int | None = None
    stored: bool = False

    @property
    def key(self) -> UnitKey:
        """What identifies the unit's rows in a checkpoint: a unit planned with another counter
        or another start is other work, fetched again."""
        return (self.stream.name, self.parent, self.counter, self.start.isoformat() if self.start else "")


class SyncEngine:
    """Plans one run of the activity streams from the plan state.

    Args:
        plan: the plan state (:mod:`listrak_sync.engine.plan`), mutated in place as the run goes.
        policy: what decides which units are fetched.
        streams: the activity streams this run loads (may be empty).
        start: the start date, an aware instant.
        appends: the adapter appends records instead of replacing a message's rows (see the
            module docstring: where units start).
        full_refresh: fetch every message's every stream, from the start date.
        full_refresh_reason: why ``full_refresh`` is forced, if not the user's request.
        resume_since: ``(stream, msg_id, list_id, send_date)`` to where an older state left that
            message, if anywhere (appending adapters only; see :class:`~listrak_sync.engine.state.SingerState`).
        known_messages: message to list of the messages the destination holds (see
            :class:`~listrak_sync.engine.plan.Planner`).
        lists: the lists of a list shard (default: the run owns every list).
    """

    def __init__(
        self,
        plan: dict[str, Any],
        *,
        policy: Policy,
        streams: Sequence[Stream],
        start: datetime,
        appends: bool = False,
        full_refresh: bool = False,
        full_refresh_reason: str | None = None,
        resume_since: ResumeSince | None = None,
        known_messages: Mapping[int, int] | None = None,
        lists: Iterable[int] | None = None,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError(f"the start date must be an aware instant, not {start!r}")
        self.plan = current_plan(plan)
        self.policy = policy
        self.streams = list(streams)
        self.start = start
        self.appends = appends
        self.full_refresh = full_refresh
        self.full_refresh_reason = full_refresh_reason
        self.resume_since = resume_since
        self.known_messages = known_messages
        self.lists = lists
        self.modes: dict[str, StreamMode] = stream_modes(
            self.plan, self.streams, start=start, full_refresh=full_refresh, full_refresh_reason=full_refresh_reason
        )
        if appends:
            # Nothing is replaced downstream: a run killed half-way keeps what it recorded.
            for stream in self.streams:
                self.plan["streams"][stream.name] = {"start": start.isoformat()}
        self.planner: Planner | None = None
        self.units: list[WorkUnit] = []
        self.repairing = False

    @property
    def mode(self) -> RunMode:
        """The run's mode as a summary shows it (without activity streams, every table is replaced)."""
        return run_mode(self.modes) if self.modes else RunMode(True, self.full_refresh_reason or "replace")

    # -- messages ---------------------------------------------------------------------------------

    def message_reaches(self, list_ids: Iterable[int], now: datetime) -> dict[int, MessageReach]:
        """Per list, where its messages request begins and whether one window covers it."""
        return {
            list_id: message_reach(
                self.plan, list_id, start=self.start, now=now, interval_days=self.policy.interval_days,
                recheck_days=self.policy.full_recheck_days, full_refresh=self.full_refresh,
            )
            for list_id in list_ids
        }

    def record_messages(self, list_id: int, table: pa.Table, reach: MessageReach, read_at: datetime) -> None:
        """Remember what one list's messages read found (not for a refused list)."""
        record_reach(self.plan, list_id, table.column("SendDate").to_pylist(), reach=reach, start=self.start,
                     read_at=read_at, lookback_hours=self.policy.lookback_hours)

    # -- page sizes -------------------------------------------------------------------------------

    def page_sizes(self, now: datetime) -> dict[str, int]:
        """The largest page of each operation the last runs saw, while younger than a recheck.

        A lower bound of the operation's page size, so a shorter page is the last: a re-run
        asks no confirming empty page where the first run proved the size. Forgotten after
        ``full_recheck_days``, so a service that changed its page size is learnt again.
        """
        horizon = now.timestamp() - self.policy.full_recheck_days * 86400
        return {op: rows for op, (rows, seen_at) in self.plan.get("pages", {}).items() if seen_at > horizon}

    def remember_page_sizes(self, bounds: Mapping[str, int], now: datetime) -> None:
        """Keep what this run proved of page sizes (see :meth:`page_sizes`).

        Args:
            bounds: per operation, the largest page this run received itself.
            now: this run's clock: a bound is dated when a page of its size was last seen.
        """
        pages = self.plan.setdefault("pages", {})
        for operation, rows in bounds.items():
            previous = pages.get(operation)
            if previous is None or rows >= previous[0]:  # proven again (or larger) just now
                pages[operation] = [rows, int(now.timestamp())]

    # -- activity ---------------------------------------------------------------------------------

    def plan_activity(self, messages: pa.Table, now: datetime,
                      only: Callable[[pa.Table, Mapping[str, Any]], Collection[tuple[str, int]]] | None = None,
                      *, refused_lists: Iterable[int] = (),
                      stored: Container[UnitKey] = ()) -> list[WorkUnit]:
        """The work units of this run, by stream and then by send order.

        Args:
            messages: this run's messages (at least :data:`~listrak_sync.engine.plan.PLAN_COLUMNS`).
            now: when the counters were read (aware).
            only: a repair (``listrak-sync verify --repair``): given the messages and the plan, the exact
                ``(stream name, MsgID)`` pairs to fetch, with the reason ``repair``; nothing else
                is fetched and no list counts as rechecked.
            refused_lists: lists the service refused this run: refused is not gone, so their
                messages keep their rows and their plan.
            stored: keys of units an interrupted run of the same plan fetched completely; the
                units planned now with those keys are marked :attr:`WorkUnit.stored`.
        """
        chosen = None if only is None else set(only(messages, self.plan))
        self.repairing = chosen is not None
        replaced = [s.name for s in self.streams if self.modes[s.name].full]
        if chosen is not None and replaced:  # a replaced table would keep only the repaired messages' rows
            raise ConfigError(f"Cannot repair {', '.join(replaced)}: the next run replaces it whole "
                              f"({self.modes[replaced[0]].reason}). Run `listrak-sync run` instead.")
        rows = messages.select(list(PLAN_COLUMNS)).to_pylist() if messages.num_rows else []
        policy = self.policy
        planner = self.planner = Planner(
            self.plan, rows, modes=self.modes, now=now, start=self.start, lookback_hours=policy.lookback_hours,
            send_settle_hours=policy.send_settle_hours, full_recheck_days=policy.full_recheck_days,
            trust_counters=policy.trust_counters, known_messages=self.known_messages, lists=self.lists,
            refused_lists=refused_lists,
        )
        # Decided for every stream before any is recorded: recording one stream must not change
        # what another stream of this run fetches.
        units = []
        for stream in self.streams:
            reasons = planner.reasons(stream) if chosen is None else {
                m: "repair" for m in planner.rows if (stream.name, m) in chosen}
            for msg_id, reason in reasons.items():
                unit = self._unit(stream, msg_id, reason, planner)
                if unit is not None:
                    units.append(replace(unit, stored=True) if unit.key in stored else unit)
        self.units = units
        log.debug("Planned %d work units for %d messages (%d stored by an interrupted run).", len(units), len(rows),
                  sum(u.stored for u in units))
        return units

    def _unit(self, stream: Stream, msg_id: int, reason: str, planner: Planner) -> WorkUnit | None:
        list_id = planner.list_of[msg_id]
        value = planner.rows[msg_id].get(stream.counter or "DeliverCount")
        counter = None if value is None else int(value)
        lookback = timedelta(hours=self.policy.lookback_hours)
        since = legacy = None
        if self.appends and not self.full_refresh:
            since = planner.last_fetch(stream, msg_id)
            if since is None and self.resume_since is not None:
                sent = planner.rows[msg_id]["SendDate"]
                since = legacy = self.resume_since(stream.name, msg_id, list_id, sent)
        if stream.counter is None:  # message_sends: no date range in the API
            # An older state's bookmark: recipients of messages sent well before it went out then.
            if legacy is not None and planner.rows[msg_id]["SendDate"] < legacy - lookback:
                planner.record(stream, [msg_id], {})
                return None
            return WorkUnit(stream, msg_id, list_id, None, reason, counter)
        start = self.start if since is None else max(self.start, since - lookback)
        return WorkUnit(stream, msg_id, list_id, start, reason, counter)

    def units_of(self, stream: Stream) -> list[WorkUnit]:
        """This run's units of one stream."""
        return [u for u in self.units if u.stream is stream]

    def vanished(self) -> list[int]:
        """Messages known before that this run no longer lists (their rows go)."""
        return self._planner().vanished()

    def record(self, stream: Stream, msg_ids: Iterable[int], latest_event: Mapping[int, datetime],
               short: Mapping[int, int] | None = None) -> None:
        """The checkpoint: ``stream`` was fetched completely for ``msg_ids`` at this run's counters
        (``short``: messages whose rows fell short of it, and how many came; read again next run)."""
        self._planner().record(stream, msg_ids, latest_event, short)

    def finish(self, stream: Stream, refused_messages: set[int], refused_lists: set[int]) -> None:
        """Close ``stream``'s part of the plan once every unit of it is done."""
        self._planner().finish(stream, refused_messages, refused_lists, stamp_rechecks=not self.repairing)

    def _planner(self) -> Planner:
        if self.planner is None:
            raise RuntimeError("plan_activity() comes first")
        return self.planner


def newest_events(stream: Stream, table: pa.Table, into: dict[int, datetime], zone: str = "UTC") -> None:
    """Fold each message's newest event date in ``table`` into ``into`` (for :meth:`SyncEngine.record`).

    The cursor may be a timestamp column, or the text the service sent (the tap's event dates).
    ISO text sorts as it reads, so only each message's newest is parsed; other text (US-style
    ``M/D/YYYY h:mm AM``, which does not sort) is parsed row by row.
    """
    cursor = stream.cursor
    if cursor is None or cursor not in table.column_names or not table.num_rows:
        return
    column = table.column(cursor)
    is_text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
    if is_text and not pc.all(pc.match_substring_regex(column, r"^\d{4}-\d{2}-\d{2}")).as_py():
        pairs = zip(table.column("MsgID").to_pylist(), column.to_pylist(), strict=True)
    else:
        newest = table.group_by("MsgID").aggregate([(cursor, "max")])
        pairs = zip(newest.column("MsgID").to_pylist(), newest.column(f"{cursor}_max").to_pylist(), strict=True)
    for msg_id, value in pairs:
        if value is None:
            continue
        if is_text:
            try:
                value = parse_service_instant(value, zone)
            except ValueError:
                continue
        previous = into.get(msg_id)
        into[msg_id] = value if previous is None else max(previous, value)


__all__ = ["Policy", "SyncEngine", "UnitKey", "WorkUnit", "newest_events"]
