"""Incremental runs: after every run the destination equals a full load of the same clock time."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
from destination import assert_matches_truth, read_duckdb
from helpers import CLI, RUN, cli_env, settings_for
from test_extract import virtual_now

from listrak_sync.pipeline.runner import RunSummary, replicate
from listrak_sync.simulator import Simulator
from listrak_sync.simulator.data import EPOCH
from listrak_sync.streams import STREAM_NAMES


def run(sim: Simulator, db: Path, work: Path, **options: object) -> RunSummary:
    full_refresh = bool(options.pop("full_refresh", False))
    clock = virtual_now(sim) if options.pop("virtual_clock", False) else None
    return replicate(settings_for(sim, **{"max_retries": 2, **options}), duckdb_path=str(db), pipelines_dir=str(work),
                     full_refresh=full_refresh, clock=clock)


def assert_holds_ground_truth(sim: Simulator, db: Path, since: datetime = EPOCH) -> None:
    for table in STREAM_NAMES:
        assert_matches_truth(table, read_duckdb(str(db), "listrak", table), sim.account.ground_truth(table, since))


def assert_equals_full_load(sim: Simulator, db: Path, tmp_path: Path, label: str) -> None:
    fresh_db, fresh_work = tmp_path / f"fresh-{label}.duckdb", tmp_path / f"fresh-{label}"
    run(sim, fresh_db, fresh_work, full_refresh=True)
    for table in STREAM_NAMES:
        truth = sim.account.ground_truth(table, EPOCH)
        assert_matches_truth(table, read_duckdb(str(db), "listrak", table), truth)
        assert_matches_truth(table, read_duckdb(str(fresh_db), "listrak", table), truth)


@pytest.mark.parametrize("steps", [(0.5, 1.0, 3.0, 2.0)])
def test_incremental_runs_equal_a_full_load_after_every_clock_move(tmp_path: Path, steps: tuple[float, ...]) -> None:
    db, work = tmp_path / "inc.duckdb", tmp_path / "work"
    with Simulator(scale="tiny", page_size=5) as sim:
        sim.advance(-10)  # start 10 days back, so moving forward adds messages, late events, (un)subscribes
        first = run(sim, db, work)
        assert "full refresh" in first.mode
        for i, days in enumerate(steps):
            before = {t: len(sim.account.ground_truth(t, EPOCH)) for t in STREAM_NAMES}
            sim.advance(days)
            after = {t: len(sim.account.ground_truth(t, EPOCH)) for t in STREAM_NAMES}
            summary = run(sim, db, work)
            assert summary.mode == "incremental", summary.mode
            assert summary.total_requests < first.total_requests
            assert_equals_full_load(sim, db, tmp_path, str(i))
            if i == len(steps) - 1:
                assert after != before, "the clock moves must change the account, or this test proves nothing"


def test_a_rerun_with_nothing_changed_costs_a_handful_of_calls(tmp_path: Path) -> None:
    db, work = tmp_path / "inc.duckdb", tmp_path / "work"
    with Simulator(scale="tiny", page_size=5) as sim:
        # A quiet time: no message younger than lookback_hours or active within it, which every
        # run re-reads by contract (now is the service's clock, no longer this machine's).
        sim.set_now(datetime(2026, 8, 10))
        first = run(sim, db, work)
        again = run(sim, db, work)
        lists = len(sim.account.list_ids())
        # lists once, messages once per list, subscribed contacts' pages per list; no activity
        assert again.total_requests < first.total_requests / 5
        assert set(again.requests) <= {"GetContactListCollection", "ReportListMessageActivity",
                                       "ReportRangeSubscribedContacts"}
        assert first.requests["ReportListMessageActivity"] == lists * 3  # 3 windows of 365 days since EPOCH
        # The plan knows each list's few messages: the re-run asks for its range in one request.
        assert again.requests["ReportListMessageActivity"] == lists
        assert_holds_ground_truth(sim, db)


def test_a_list_s_quiet_past_is_asked_again_only_at_its_recheck(tmp_path: Path) -> None:
    """From 01/01/2000 most windows are empty: a re-run skips them until the list's recheck."""
    db, work = tmp_path / "inc.duckdb", tmp_path / "work"
    with Simulator(scale="tiny", page_size=5) as sim:
        lists = len(sim.account.list_ids())
        options = {"start_date": "01/01/2000", "full_recheck_days": 3, "virtual_clock": True}
        first = run(sim, db, work, **options)
        windows = first.requests["ReportListMessageActivity"]
        assert windows >= lists * 26, "one request per 365-day window from 2000 on"
        sim.advance(1)
        again = run(sim, db, work, **options)
        assert again.requests["ReportListMessageActivity"] == lists
        sim.advance(2.5)  # 3.5 days after the first run: each list's recheck asks from 2000 again
        rechecked = run(sim, db, work, **options)
        assert rechecked.requests["ReportListMessageActivity"] == windows
        refreshed = run(sim, db, work, **options, full_refresh=True)
        assert refreshed.requests["ReportListMessageActivity"] == windows
        assert_holds_ground_truth(sim, db)


def test_full_refresh_flag_and_changed_start_date_replace_everything(tmp_path: Path) -> None:
    db, work = tmp_path / "inc.duckdb", tmp_path / "work"
    with Simulator(scale="tiny", page_size=5) as sim:
        first = run(sim, db, work)
        forced = run(sim, db, work, full_refresh=True)
        assert forced.mode.startswith("full refresh")
        messages = len(sim.account.ground_truth("messages", EPOCH))
        for operation, count in first.requests.items():
            assert forced.requests[operation] >= min(count, messages), operation  # every message re-pulled
        later = EPOCH.replace(year=EPOCH.year + 2)
        moved = run(sim, db, work, start_date=later.strftime("%Y-%m-%d"))
        assert "start date changed" in moved.mode
        assert_holds_ground_truth(sim, db, later)


def test_runs_killed_at_several_points_then_resumed_equal_a_full_load(tmp_path: Path) -> None:
    db = tmp_path / "inc.duckdb"
    with Simulator(scale="tiny", page_size=3) as sim:
        sim.advance(-10)
        env = cli_env(sim.url, DLT_DATA_DIR=str(tmp_path / "dlt"))
        command = [*CLI, *RUN, "--duckdb", str(db)]
        assert subprocess.run(command, env=env, capture_output=True).returncode == 0
        for kill_after in (3, 12, 30):
            sim.advance(2)
            sim.configure_faults(latency_ms=30)
            sim.reset_stats()
            proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 60
            while sim.stats()["requests_total"] < kill_after and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            assert proc.poll() is None, f"the run ended before {kill_after} requests"
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            sim.configure_faults(latency_ms=0)
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert_holds_ground_truth(sim, db)
