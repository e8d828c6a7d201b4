"""One engine plans both adapters: ``tap-listrak`` and ``listrak-sync run`` ask the same (issue #17).

Against one simulator, at its virtual clock, each adapter makes a first run and then runs from
its own state (a no-change re-run, then one after the clock moves a day); the simulator counts
the requests per operation. One worker each, so that the order of pages (and with it where the
short-page shortcut applies) is the same for both.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from helpers import START
from tap_helpers import config_for, parse_messages, run_tap, states_of, write_json

from listrak_sync.engine.plan import PLAN_VERSION
from listrak_sync.engine.state import SingerState, pack_plan, unpack_plan
from listrak_sync.engine.sync import Policy, SyncEngine
from listrak_sync.pipeline.runner import replicate
from listrak_sync.settings import Settings
from listrak_sync.simulator import DEFAULT_PASSWORD, DEFAULT_USERNAME, Profile, Simulator
from listrak_sync.streams import get_stream

OPTIONS = {"concurrency": 1, "max_retries": 2, "backoff_base": 0.01, "backoff_max": 0.05}


def _tap_runs(sim: Simulator, tmp_path: Path, moves: tuple[float, ...]) -> list[dict[str, int]]:
    tmp_path.mkdir()
    config = write_json(tmp_path / "config.json", config_for(sim, start_date=START, **OPTIONS))
    state: dict[str, Any] | None = None
    served = []
    for move in moves:
        sim.advance(move)
        sim.reset_stats()
        args = ["--config", config]
        if state is not None:
            args += ["--state", write_json(tmp_path / "state.json", state)]
        result = run_tap(*args, now=sim.now)
        assert result.returncode == 0, result.stderr
        state = states_of(parse_messages(result.stdout))[-1]
        served.append(dict(sim.stats()["requests"]))
    return served


def _cli_runs(sim: Simulator, tmp_path: Path, moves: tuple[float, ...]) -> list[dict[str, int]]:
    settings = Settings.from_mapping({"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD,
                                      "start_date": START, "endpoint": sim.url, **OPTIONS})
    tmp_path.mkdir()
    served = []
    for move in moves:
        sim.advance(move)
        sim.reset_stats()
        replicate(settings, duckdb_path=str(tmp_path / "one.duckdb"), pipelines_dir=str(tmp_path / "work"),
                  clock=lambda: sim.now.replace(tzinfo=timezone.utc))
        served.append(dict(sim.stats()["requests"]))
    return served


@pytest.mark.parametrize("profile", [Profile.friendly(), Profile.pessimistic()], ids=["friendly", "pessimistic"])
def test_tap_and_run_make_the_same_requests_per_operation(tmp_path: Path, profile: Profile) -> None:
    moves = (0.0, 0.0, 1.0)  # a first run, a no-change re-run, a run a day later
    with Simulator(scale="tiny", page_size=7, profile=profile) as sim:
        tap = _tap_runs(sim, tmp_path / "tap", moves)
    with Simulator(scale="tiny", page_size=7, profile=profile) as sim:
        cli = _cli_runs(sim, tmp_path / "cli", moves)
    assert tap[0] == cli[0], "a first run"
    # Later runs ask the same (operation, message) units; the tap asks each from a lookback
    # before its last fetch, `run` re-reads it whole to replace its rows: as many pages or fewer.
    for later_tap, later_cli in zip(tap[1:], cli[1:], strict=True):
        assert set(later_tap) == set(later_cli)
        assert all(later_tap[op] <= later_cli[op] for op in later_tap), (later_tap, later_cli)
        assert later_tap["ReportListMessageActivity"] == later_cli["ReportListMessageActivity"]
    assert sum(tap[1].values()) < sum(tap[0].values()) / 5, "a no-change re-run asks little"


# -- the engine and its state codec, directly ---------------------------------------------------------

RUN = datetime(2026, 6, 10, tzinfo=timezone.utc)
START_AT = datetime(2024, 1, 1, tzinfo=timezone.utc)
OPENS, SENDS = get_stream("message_opens"), get_stream("message_sends")


def _messages(*rows: tuple[int, int, datetime, int]) -> Any:
    import pyarrow as pa

    ids, lists, sent, opens = zip(*rows, strict=True)
    zero = [0] * len(rows)
    return pa.table({"ListID": list(lists), "MsgID": list(ids), "SendDate": list(sent), "ClickCount": zero,
                     "DeliverCount": zero, "OpenCount": list(opens), "ReadCount": zero, "RemoveCount": zero})


def test_an_appending_adapter_asks_a_lookback_before_the_last_fetch_and_a_replacing_one_from_the_start() -> None:
    old, recent = RUN - timedelta(days=30), RUN - timedelta(hours=3)
    table = _messages((1, 10, old, 5), (2, 10, recent, 1))
    plan: dict[str, Any] = {}
    first = SyncEngine(plan, policy=Policy(), streams=[OPENS, SENDS], start=START_AT, appends=True)
    units = first.plan_activity(table, RUN - timedelta(days=1))
    assert {(u.stream.name, u.parent, u.start) for u in units} == {
        ("message_opens", 1, START_AT), ("message_opens", 2, START_AT),
        ("message_sends", 1, None), ("message_sends", 2, None)}
    first.record(OPENS, [1, 2], {})
    first.record(SENDS, [1, 2], {})
    for stream in (OPENS, SENDS):
        first.finish(stream, set(), set())
    # A day later, message 1's counter moved: it is asked from a lookback before its last fetch.
    later = SyncEngine(plan, policy=Policy(), streams=[OPENS, SENDS], start=START_AT, appends=True)
    units = later.plan_activity(_messages((1, 10, old, 6), (2, 10, recent, 1)), RUN)
    reasons = {(u.stream.name, u.parent): (u.start, u.reason) for u in units}
    last_fetch = RUN - timedelta(days=1)
    assert reasons[("message_opens", 1)] == (last_fetch - timedelta(hours=48), "counter moved")
    assert reasons[("message_opens", 2)][1] == "sent within the lookback"
    assert ("message_sends", 1) not in reasons  # its recipients were final
    replacing = SyncEngine(json.loads(json.dumps(plan)), policy=Policy(), streams=[OPENS], start=START_AT)
    assert {u.start for u in replacing.plan_activity(_messages((1, 10, old, 7)), RUN)} == {START_AT}


def test_a_tap_listrak_state_continues_from_its_bookmark_once_then_the_plan_decides() -> None:
    bookmark = datetime(2026, 6, 8, tzinfo=timezone.utc)
    state = SingerState({"bookmarks": {"message_opens": {"OpenDate": "2026-06-08T00:00:00Z"},
                                       "message_sends": {"SendDate": "2026-06-08T00:00:00Z"}}})
    engine = SyncEngine(state.plan, policy=Policy(), streams=[OPENS, SENDS], start=START_AT, appends=True,
                        resume_since=state.resume_since)
    table = _messages((1, 10, RUN - timedelta(days=30), 5), (2, 10, RUN - timedelta(hours=3), 1))
    units = {(u.stream.name, u.parent): u.start for u in engine.plan_activity(table, RUN)}
    assert units == {("message_opens", 1): bookmark - timedelta(hours=48),
                     ("message_opens", 2): bookmark - timedelta(hours=48),
                     ("message_sends", 2): None}  # message 1's recipients went out before the bookmark
    for stream in (OPENS, SENDS):
        engine.record(stream, [u.parent for u in engine.units_of(stream)], {})
        engine.finish(stream, set(), set())
        state.complete(stream.name, RUN)
    again = SingerState(json.loads(json.dumps(state.value(engine.plan))))
    assert again.resume_since("message_opens", 3, 10, RUN) is None, "the plan decides from now on"
    assert again.plan["version"] == PLAN_VERSION


def test_the_packed_plan_round_trips_and_stays_small() -> None:
    streams = ("message_bounces", "message_clicks", "message_opens", "message_reads", "message_sends",
               "message_unsubs")
    now = int(RUN.timestamp())
    plan = {"version": PLAN_VERSION, "streams": {s: {"start": START_AT.isoformat()} for s in streams},
            "pages": {"ReportRangeMessageContactOpen": [2500, now]},
            "lists": {str(list_id): {"checked": dict.fromkeys(streams, now), "reach": [1, 2, 60, now, now],
                                     "messages": {str(list_id * 1000 + m): {s: [m * 37 % 1500, 0 if m % 3 else now - 60,
                                                                               now] for s in streams}
                                                  for m in range(60)}}
                      for list_id in range(1, 11)}}  # the shape of medium: 10 lists of 60 messages
    packed = pack_plan(plan)
    assert unpack_plan(packed) == plan
    assert len(packed) < 16_000


def test_a_damaged_plan_is_one_clear_error() -> None:
    from listrak_sync.errors import ConfigError

    with pytest.raises(ConfigError, match="Remove the \"listrak_sync\" key"):
        SingerState({"bookmarks": {}, "listrak_sync": {"version": 3, "plan": "bm90IGEgcGxhbg=="}})


def test_the_newest_event_of_us_style_text_dates_is_the_latest_in_time_not_in_spelling() -> None:
    import pyarrow as pa

    from listrak_sync.engine.sync import newest_events

    table = pa.table({"MsgID": [1, 1, 2], "OpenDate": ["9/1/2025 8:00:00 AM", "10/1/2025 7:00:00 AM",
                                                        "2025-09-01T08:00:00"]})
    newest: dict[int, datetime] = {}
    newest_events(OPENS, table.slice(0, 2), newest)
    newest_events(OPENS, table.slice(2), newest)
    assert newest == {1: datetime(2025, 10, 1, 7, tzinfo=timezone.utc), 2: datetime(2025, 9, 1, 8, tzinfo=timezone.utc)}
