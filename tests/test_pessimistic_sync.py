"""The incremental contract, checked against ground truth under both simulator profiles.

A full run equals ``Account.ground_truth``; after clock moves an incremental run misses at most
what docs/incremental.md allows (nothing extra in any table, none short by more than
0.1%, and on the tiny account nothing at all); deletes propagate; ``--full-refresh`` is exact
again. DuckDB and PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg2
import pytest
from destination import normalize, read_duckdb
from helpers import POSTGRES_DSN, RUN, START, cli, cli_env
from test_extract import virtual_now

from listrak_sync.pipeline.runner import RunSummary, replicate
from listrak_sync.settings import Settings
from listrak_sync.simulator import DEFAULT_PASSWORD, DEFAULT_USERNAME, Simulator
from listrak_sync.simulator.data import EPOCH
from listrak_sync.streams import STREAM_NAMES, STREAMS_BY_NAME, ColumnType

PROFILES = ("friendly", "pessimistic")
ZONES = {"friendly": "UTC", "pessimistic": "America/New_York"}


def utc_truth(table: str, rows: list[dict[str, Any]], zone: str) -> list[dict[str, Any]]:
    """Ground truth holds the service's wall times; the destination holds instants."""
    stream, tz = STREAMS_BY_NAME[table], ZoneInfo(zone)
    dated = [c.name for c in stream.table_columns if c.type is ColumnType.TIMESTAMP]
    out = []
    for row in rows:
        row = dict(row)
        for name in dated:
            if row.get(name) is not None:
                row[name] = row[name].replace(tzinfo=tz).astimezone(timezone.utc).replace(tzinfo=None)
        out.append(row)
    return out


class Target:
    """A destination to run into and read back."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind, self.dataset = kind, f"lrk_{uuid.uuid4().hex[:8]}"
        self.db = str(tmp_path / "out.duckdb")

    def run(self, sim: Simulator, *, full_refresh: bool = False) -> RunSummary:
        settings = Settings.from_mapping({
            "username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD, "start_date": START,
            "endpoint": sim.url, "source_timezone": ZONES[sim.profile.name], "max_retries": 3,
            "backoff_base": 0.01, "backoff_max": 0.05})
        if self.kind == "duckdb":
            return replicate(settings, duckdb_path=self.db, dataset=self.dataset, full_refresh=full_refresh,
                             clock=virtual_now(sim))
        from dlt.destinations import postgres
        return replicate(settings, destination=postgres(credentials=POSTGRES_DSN), dataset=self.dataset,
                         full_refresh=full_refresh, clock=virtual_now(sim))

    def read(self, table: str) -> list[dict[str, Any]]:
        if self.kind == "duckdb":
            return read_duckdb(self.db, self.dataset, table)
        with psycopg2.connect(POSTGRES_DSN) as con, con.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
            cur.execute(f'SELECT * FROM "{self.dataset}"."{table}"')
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def drop(self) -> None:
        if self.kind == "postgres":
            with psycopg2.connect(POSTGRES_DSN) as con, con.cursor() as cur:
                for schema in (self.dataset, f"{self.dataset}_staging"):
                    cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    made = Target(request.param, tmp_path)
    yield made
    made.drop()


def differences(target: Target, sim: Simulator) -> dict[str, tuple[int, int, int]]:
    """Per table: (rows in the ground truth, rows missing, rows not in it)."""
    out = {}
    for table in STREAM_NAMES:
        stream = STREAMS_BY_NAME[table]
        truth = utc_truth(table, sim.account.ground_truth(table, EPOCH), ZONES[sim.profile.name])
        want = normalize(stream, truth, listrak_names=True)
        got = normalize(stream, target.read(table), listrak_names=False)
        out[table] = (sum(want.values()), sum((want - got).values()), sum((got - want).values()))
    return out


def assert_exact(target: Target, sim: Simulator, label: str) -> None:
    diff = differences(target, sim)
    assert all(missing == extra == 0 for _, missing, extra in diff.values()), (label, diff)


def assert_within_contract(target: Target, sim: Simulator, label: str) -> None:
    diff = differences(target, sim)
    for table, (total, missing, extra) in diff.items():
        assert extra == 0, (label, table, diff)
        assert missing <= total * 0.001, (label, table, diff)


@pytest.mark.parametrize("profile", PROFILES)
def test_full_then_incremental_runs_keep_the_contract(profile: str, target: Target) -> None:
    with Simulator(scale="tiny", page_size=5, profile=profile) as sim:
        first = target.run(sim)
        assert "full refresh" in first.mode
        assert_exact(target, sim, "full")
        before = {t: len(sim.account.ground_truth(t, EPOCH)) for t in STREAM_NAMES}
        for days in (1.0, 1.0, 3.0):
            sim.advance(days)
            summary = target.run(sim)
            assert summary.mode == "incremental", summary.mode
            assert summary.total_requests < first.total_requests
            assert_within_contract(target, sim, f"+{days}")
            assert_exact(target, sim, f"+{days}")  # tiny: within 0.1% means exact
        after = {t: len(sim.account.ground_truth(t, EPOCH)) for t in STREAM_NAMES}
        assert after != before, "the clock moves must change the account"
        if profile == "pessimistic":
            assert after["lists"] < before["lists"], "a list was withdrawn: its rows must have gone"
        assert "full refresh" in target.run(sim, full_refresh=True).mode
        assert_exact(target, sim, "full refresh")


def test_small_pessimistic_account_after_a_day_is_within_the_contract(tmp_path: Path) -> None:
    target = Target("duckdb", tmp_path)
    with Simulator(scale="small", profile="pessimistic") as sim:
        target.run(sim)
        assert_exact(target, sim, "full")
        sim.advance(1)
        assert target.run(sim).mode == "incremental"
        assert_within_contract(target, sim, "+1 day")
        sim.advance(3)
        target.run(sim)
        assert_within_contract(target, sim, "+4 days")
        target.run(sim, full_refresh=True)
        assert_exact(target, sim, "full refresh")


def test_a_table_subset_run_keeps_the_other_tables_plan(tmp_path: Path) -> None:
    target = Target("duckdb", tmp_path)
    with Simulator(scale="tiny", page_size=5, profile="pessimistic") as sim:
        target.run(sim)
        sim.advance(1)
        settings_tables = Settings.from_mapping({
            "username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD, "start_date": START,
            "endpoint": sim.url, "source_timezone": ZONES["pessimistic"], "tables": "message_clicks"})
        subset = replicate(settings_tables, duckdb_path=target.db, dataset=target.dataset, clock=virtual_now(sim))
        assert subset.mode == "incremental", subset.mode
        summary = target.run(sim)
        assert summary.mode == "incremental", summary.mode  # the subset run reset nothing
        assert_exact(target, sim, "after a subset run")


_KILLABLE_RUN = """
import sys
from datetime import datetime
from listrak_sync.settings import Settings
from listrak_sync.pipeline.runner import replicate
endpoint, zone, kind, where, dataset, now, username, password, start = sys.argv[1:10]
settings = Settings.from_mapping({"username": username, "password": password, "start_date": start,
                                  "endpoint": endpoint, "source_timezone": zone})
clock = datetime.fromisoformat(now)
if kind == "duckdb":
    replicate(settings, duckdb_path=where, dataset=dataset, clock=lambda: clock)
else:
    import os
    os.environ["DESTINATION__POSTGRES__CREDENTIALS"] = where
    replicate(settings, destination="postgres", dataset=dataset, clock=lambda: clock)
"""


@pytest.mark.parametrize("profile", PROFILES)
def test_a_killed_incremental_run_then_the_next_keeps_the_contract(profile: str, target: Target) -> None:
    import signal
    import subprocess
    import sys
    import time

    with Simulator(scale="tiny", page_size=5, profile=profile) as sim:
        target.run(sim)
        assert_exact(target, sim, "full")
        for seconds in (2.0, 3.0):
            sim.advance(1)
            sim.configure_faults(latency_ms=250)
            where = target.db if target.kind == "duckdb" else POSTGRES_DSN
            proc = subprocess.Popen([sys.executable, "-c", _KILLABLE_RUN, sim.url, ZONES[profile], target.kind, where,
                                     target.dataset, virtual_now(sim)().isoformat(), DEFAULT_USERNAME,
                                     DEFAULT_PASSWORD,
                                     START],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            time.sleep(seconds)
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=60) == -signal.SIGKILL, "the run finished before the kill: nothing tested"
            sim.configure_faults(latency_ms=0)
            summary = target.run(sim)  # resumes from the last completed load
            assert summary.mode == "incremental", summary.mode
            assert_within_contract(target, sim, f"after a kill at {seconds}s")
            assert_exact(target, sim, f"after a kill at {seconds}s")  # tiny: within 0.1% means exact


def test_under_asmx_faults_a_wrong_password_is_exit_3_and_a_refused_list_is_skipped_by_name(tmp_path: Path) -> None:
    from listrak_sync.simulator import User

    with Simulator(scale="tiny", profile="pessimistic") as probe:
        list_ids = probe.account.list_ids()
    refused = list_ids[0]
    user = User("partial", "partial-pw", list_ids=frozenset(list_ids), refused_list_ids=frozenset({refused}))
    with Simulator(scale="tiny", page_size=5, profile="pessimistic", users=[user]) as sim:
        eastern = {"LISTRAK_SOURCE_TIMEZONE": "America/New_York"}
        wrong = cli(*RUN, env=cli_env(sim.url, username="partial", password="wrong", **eastern), cwd=tmp_path,
                    timeout=120)
        assert wrong.returncode == 3, wrong.stderr
        assert "rejected the username or password" in wrong.stderr and sim.stats()["requests_total"] == 1
        sim.reset_stats()
        sim.reset_lockouts()
        good = cli(*RUN, env=cli_env(sim.url, username="partial", password="partial-pw", **eastern), cwd=tmp_path)
        assert good.returncode == 0, good.stderr
        assert f"ListID {refused}" in good.stdout + good.stderr, good.stdout
        allowed = [i for i in list_ids if i != refused]
        for table in ("messages", "message_opens", "subscribed_contacts"):
            truth = utc_truth(table, sim.account.ground_truth(table, EPOCH, list_ids=allowed), ZONES["pessimistic"])
            got = read_duckdb(str(tmp_path / "listrak_sync.duckdb"), "listrak", table)
            stream = STREAMS_BY_NAME[table]
            assert normalize(stream, got, listrak_names=False) == normalize(stream, truth, listrak_names=True), table
