"""tap-listrak never loses an event (issue #9): late-visible events, refused objects, kills.

Runs continued from STATE may emit a record again (the lookback overlap, a resumed
checkpoint), never not at all. Each test runs the tap as a subprocess whose clock is the
simulator's virtual now, parses its stdout as a target would, and compares the union of what
was emitted with the simulator's ground truth: every ground-truth row at least once, and no
record that was not in the ground truth at the time of some run (the events of a message
deleted later were true when they were emitted; so were the rows of a list withdrawn later).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from helpers import clean_env
from tap_helpers import (
    assert_records_cover,
    config_for,
    parse_messages,
    recorded,
    records_of,
    run_tap,
    states_of,
    tap_command,
    write_json,
)

from listrak_sync.engine.state import SingerState, format_time
from listrak_sync.simulator import Profile, Simulator, User
from listrak_sync.simulator.data import EPOCH
from listrak_sync.streams import STREAM_NAMES, STREAMS, STREAMS_BY_NAME

ACTIVITY = sorted(s.name for s in STREAMS if s.parent == "messages")
RANGE_STREAMS = [name for name in ACTIVITY if name != "message_sends"]
# Clock moves between runs (days), after a first run at the simulator's default now.
CLOCK_MOVES = (0.5, 1.0, 3.0)
KILLED_MOVE = 1.0  # the run after this move is SIGKILLed mid-run and resumed from its last STATE
STATE_BOUND = 4096  # bytes of one STATE message's value, at every checkpoint


class Emitted:
    """What a target received over several runs: records that a STATE after them confirmed."""

    def __init__(self) -> None:
        self.records: dict[str, list[dict[str, Any]]] = {name: [] for name in STREAM_NAMES}
        self.unconfirmed: dict[str, list[dict[str, Any]]] = {name: [] for name in STREAM_NAMES}
        self.state_sizes: list[int] = []

    def add(self, messages: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Take one run's messages; returns its last STATE (``None`` if it wrote none)."""
        last = max((i for i, m in enumerate(messages) if m["type"] == "STATE"), default=-1)
        for table, rows in records_of(messages[: last + 1]).items():
            self.records[table] += rows
        for table, rows in records_of(messages[last + 1 :]).items():
            self.unconfirmed[table] += rows
        states = states_of(messages)
        self.state_sizes += [len(json.dumps(state, separators=(",", ":"))) for state in states]
        return states[-1] if states else None


def tap_run(
    tmp_path: Path, sim: Simulator, config: dict[str, Any], state: dict[str, Any] | None
) -> list[dict[str, Any]]:
    args = ["--config", write_json(tmp_path / "config.json", config)]
    if state is not None:
        args += ["--state", write_json(tmp_path / "state.json", state)]
    result = run_tap(*args, now=sim.now)
    assert result.returncode == 0, result.stderr
    assert "CRITICAL" not in result.stderr
    return parse_messages(result.stdout)


def killed_tap_run(
    tmp_path: Path, sim: Simulator, config: dict[str, Any], state: dict[str, Any] | None, *, after_checkpoints: int
) -> list[dict[str, Any]]:
    """A run SIGKILLed once it has written ``after_checkpoints`` STATEs while activity went out.

    Returns:
        Every whole line it wrote (a line cut by the kill is dropped, as a target would).
    """
    args = ["--config", write_json(tmp_path / "config.json", config)]
    if state is not None:
        args += ["--state", write_json(tmp_path / "state.json", state)]
    tap = subprocess.Popen(tap_command(*args, now=sim.now), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           stdin=subprocess.DEVNULL, env=clean_env(), text=True)
    assert tap.stdout is not None
    lines, seen, activity = [], 0, False
    for line in tap.stdout:
        lines.append(line)
        message = json.loads(line)
        if message["type"] == "RECORD" and STREAMS_BY_NAME[message["stream"]].parent == "messages":
            activity = True
        if message["type"] == "STATE" and activity:
            seen += 1
            if seen == after_checkpoints:
                os.kill(tap.pid, signal.SIGKILL)
                break
    rest = tap.stdout.read()  # what was already in the pipe
    tap.wait(timeout=60)
    assert tap.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    whole = (rest.rpartition("\n")[0] + "\n") if "\n" in rest else ""
    return [json.loads(line) for line in [*lines, *whole.splitlines(keepends=True)]]


def truth_now(sim: Simulator) -> dict[str, list[dict[str, Any]]]:
    return sim.account.expected_tables(EPOCH)


def check_covered(
    emitted: Emitted, truth: dict[str, list[dict[str, Any]]], allowed: dict[str, list[dict[str, Any]]], zone: str
) -> dict[str, int]:
    """Every row of ``truth`` emitted at least once, none outside ``allowed``; duplicates per table."""
    duplicates = {}
    for table in STREAM_NAMES:
        duplicates[table] = assert_records_cover(table, emitted.records[table], truth[table], allowed[table], zone=zone)
        assert_records_cover(table, emitted.unconfirmed[table], [], allowed[table], zone=zone)
    return duplicates


def run_sequence(
    tmp_path: Path, profile: Profile, *, kill: bool = True, zone: str | None = None, **settings: Any
) -> tuple[Emitted, dict[str, list[dict[str, Any]]], dict[str, int], dict[str, Any]]:
    """A first run, then a run after each clock move (one killed and resumed), all from STATE.

    Args:
        zone: the tap's ``source_timezone`` (default: the service's own).

    Returns:
        What was emitted, the final ground truth, the duplicates per table, the final state.
    """
    zone = zone or profile.service_timezone
    emitted = Emitted()
    allowed: dict[str, list[dict[str, Any]]] = {name: [] for name in STREAM_NAMES}
    state: dict[str, Any] | None = None
    with Simulator(scale="tiny", page_size=5, latency_ms=4, profile=profile) as sim:
        config = config_for(sim, source_timezone=zone, concurrency=2, **settings)
        for move in (0.0, *CLOCK_MOVES):
            sim.advance(move)
            truth = truth_now(sim)
            for table in STREAM_NAMES:
                allowed[table] += truth[table]
            if kill and move == KILLED_MOVE:
                killed = killed_tap_run(tmp_path, sim, config, state, after_checkpoints=1)
                state = emitted.add(killed)
                assert state is not None and any(recorded(state).values()), "killed after checkpoints"
            state = emitted.add(tap_run(tmp_path, sim, config, state))
            assert state is not None
            duplicates = check_covered(emitted, truth, allowed, zone)
    return emitted, truth, duplicates, state


@pytest.mark.parametrize(
    ("profile", "zone"),
    [(Profile.pessimistic(), None), (Profile.friendly(), None), (Profile.pessimistic(), "UTC")],
    ids=["pessimistic", "friendly", "pessimistic-source_timezone-left-UTC"],
)
def test_runs_with_clock_moves_and_a_kill_emit_every_event_at_least_once(
    tmp_path: Path, profile: Profile, zone: str | None
) -> None:
    # The last case: the service writes Eastern wall times, the tap reads them as UTC (hours
    # off); the lookback covers that too, and records carry the wall times stamped UTC.
    emitted, truth, duplicates, state = run_sequence(tmp_path, profile, zone=zone)
    assert max(emitted.state_sizes) < STATE_BOUND
    # Duplicates come only from the overlaps docs/singer.md names, so they stay a small share.
    for table in RANGE_STREAMS:
        assert duplicates[table] <= len(truth[table]), (table, duplicates[table], len(truth[table]))
    assert all("progress" not in entry and "refused" not in entry for entry in state["bookmarks"].values())


def test_without_the_lookback_late_visible_events_are_lost(tmp_path: Path) -> None:
    """The same sequence with lookback_hours 0 loses events: what the lookback is for."""
    with pytest.raises(AssertionError, match="rows never emitted"):
        run_sequence(tmp_path, Profile.pessimistic(), kill=False, lookback_hours=0)


def _withhold_when(sim: Simulator, username: str, user: User, operations: Iterable[str], stop: threading.Event) -> None:
    """Replace ``username``'s access by ``user``'s as soon as the simulator serves one of ``operations``."""
    while not stop.is_set():
        served = sim.stats()["requests"]
        if any(served.get(operation) for operation in operations):
            sim.access.users[username] = user
            return
        time.sleep(0.001)


def test_refused_objects_are_asked_from_where_they_were_refused_when_access_returns(tmp_path: Path) -> None:
    """A list refused for a while, then its messages refused mid-run: nothing of either is lost.

    Run 1: list X refused from the start (a list entry per activity stream). Run 2: X readable
    again, but taken away again once activity requests start, so its messages are refused
    one by one. Run 3: access is back; X is asked from where it was first refused. The other
    lists' bookmarks moved on every run.
    """
    profile = Profile.pessimistic().replace(list_withdrawal_days=None, message_deletion_rate=0.0)
    zone = profile.service_timezone
    with Simulator(scale="tiny", profile=profile) as probe:
        refused = probe.account.list_ids()[1]
    free, blocked = User("partial", "partial-pw"), User("partial", "partial-pw", refused_list_ids=frozenset({refused}))
    emitted = Emitted()
    allowed: dict[str, list[dict[str, Any]]] = {name: [] for name in STREAM_NAMES}
    with Simulator(scale="tiny", page_size=5, latency_ms=10, profile=profile, users=[blocked]) as sim:
        config = config_for(sim, username="partial", password="partial-pw", source_timezone=zone, concurrency=1)
        first_now = sim.now

        state = emitted.add(tap_run(tmp_path, sim, config, None))
        assert state is not None
        refused_messages = {row["MsgID"] for row in sim.account.ground_truth("messages", EPOCH)
                            if row["ListID"] == refused}
        for name in ACTIVITY:  # nothing of the refused list is recorded as fetched: it waits
            assert recorded(state).get(name) and not refused_messages & set(recorded(state)[name])
        # The others moved on.
        assert state["bookmarks"]["message_opens"]["OpenDate"] == format_time(first_now.replace(tzinfo=timezone.utc))

        sim.advance(1)
        sim.access.users["partial"] = free
        sim.reset_stats()  # the watcher waits for this run's first activity request
        stop = threading.Event()
        watcher = threading.Thread(target=_withhold_when, args=(sim, "partial", blocked, _activity_operations(), stop))
        watcher.start()
        try:
            state = emitted.add(tap_run(tmp_path, sim, config, state))
        finally:
            stop.set()
            watcher.join()
        assert state is not None
        # X's messages were listed, then refused one by one: none is recorded, so each is asked
        # again in full (from the start date) once access returns.
        assert not refused_messages & set(recorded(state).get("message_opens", {}))

        sim.advance(1)
        sim.access.users["partial"] = free
        truth = truth_now(sim)
        for table in STREAM_NAMES:
            allowed[table] += truth[table]
        state = emitted.add(tap_run(tmp_path, sim, config, state))
        assert state is not None
    for table in STREAM_NAMES:
        assert_records_cover(table, emitted.records[table], truth[table], allowed[table], zone=zone)
    assert all("refused" not in entry for entry in state["bookmarks"].values()), "access is back: nothing waits"
    assert max(emitted.state_sizes) < STATE_BOUND


def _offset(zone: str) -> timedelta:
    """How far the start date (a wall time in ``zone``) is from the same digits in UTC."""
    from zoneinfo import ZoneInfo

    return -(EPOCH.replace(tzinfo=ZoneInfo(zone)).utcoffset() or timedelta(0))


def _activity_operations() -> list[str]:
    return [STREAMS_BY_NAME[name].operation for name in ACTIVITY]


# -- an older state, read ------------------------------------------------------------------------------

START = datetime(2024, 1, 1, tzinfo=timezone.utc)
BOOKMARK = datetime(2026, 6, 8, tzinfo=timezone.utc)


def _state(**entries: Any) -> SingerState:
    bookmarks = {"message_opens": {"OpenDate": format_time(BOOKMARK), **entries},
                 "message_sends": {"SendDate": format_time(BOOKMARK)}}
    return SingerState({"bookmarks": bookmarks})


def test_an_older_state_continues_from_its_bookmark_and_refused_objects_from_their_own_since() -> None:
    sent = datetime(2026, 5, 1, tzinfo=timezone.utc)
    since = datetime(2026, 5, 20, tzinfo=timezone.utc)
    state = _state(refused={"lists": {"12": format_time(since)},
                            "messages": {"907": {"ListID": 14, "since": format_time(since - timedelta(days=1))}}})
    assert state.resume_since("message_opens", 812, 11, sent) == BOOKMARK
    assert state.resume_since("message_opens", 812, 12, sent) == since
    assert state.resume_since("message_opens", 907, 14, sent) == since - timedelta(days=1)
    assert state.resume_since("message_clicks", 812, 11, sent) is None  # no bookmark: from the start date


def test_an_older_checkpoint_continues_its_messages_from_its_until() -> None:
    until = datetime(2026, 6, 9, tzinfo=timezone.utc)
    through = datetime(2026, 5, 1, tzinfo=timezone.utc)
    state = _state(progress={"until": format_time(until), "SendDate": format_time(through), "MsgID": 812})
    assert state.resume_since("message_opens", 812, 11, through) == until
    assert state.resume_since("message_opens", 813, 11, through) == BOOKMARK
    assert state.resume_since("message_opens", 1, 11, through - timedelta(days=1)) == until
