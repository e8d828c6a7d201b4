"""Refused is not gone, on REST as on SOAP: a list or a message the REST API refuses (404 or 403 on
its routes) keeps the rows the last run loaded, whether this run replaces a table or merges into
it; the run exits 0 with a warning naming it, and the next run reads it again. Checked against
the simulator's ground truth (``rest_refused``: see ``RestFaults``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from destination import assert_matches_truth, read_duckdb
from helpers import RUN, cli
from test_rest_run import CLIENT_ID, CLIENT_SECRET, PROFILE_FIELDS, assert_rest_equals_truth, rest_env

from listrak_sync.simulator import Simulator
from listrak_sync.simulator.data import EPOCH
from listrak_sync.streams import REST_TABLE_NAMES, STREAM_NAMES

Row = dict[str, Any]
# The tables under a list message (what a refused /List/{listId}/Message/{messageId}/... holds).
UNDER_A_MESSAGE = ("message_activity", "message_links", "message_link_clickers", "message_summaries")


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(scale="tiny", client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as simulator:
        yield simulator


def truth(sim: Simulator) -> dict[str, list[Row]]:
    return {table: sim.account.rest_ground_truth(table, EPOCH) for table in REST_TABLE_NAMES}


def assert_tables(db: str, expected: Mapping[str, list[Row]]) -> None:
    for table, rows in expected.items():
        got = read_duckdb(db, "listrak", table)
        if table in PROFILE_FIELDS:  # not requested yet (test_rest_run.py)
            got, rows = ([{k: v for k, v in r.items() if k not in PROFILE_FIELDS[table]} for r in part]
                         for part in (got, rows))
        assert_matches_truth(table, got, rows)


def mixed(now: Mapping[str, list[Row]], before: Mapping[str, list[Row]], refused: Callable[[str, Row], bool]
          ) -> dict[str, list[Row]]:
    """Today's truth, but the refused object's rows as the last run loaded them."""
    return {t: [r for r in now[t] if not refused(t, r)] + [r for r in before[t] if refused(t, r)] for t in now}


def run(db: str, env: Mapping[str, str]) -> Any:
    result = cli(*RUN, "--duckdb", db, env=env)
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize("status", [404, 403])
def test_a_refused_list_keeps_its_rows_when_the_tables_are_replaced(sim: Simulator, tmp_path: Path,
                                                                   status: int) -> None:
    db, env = str(tmp_path / "out.duckdb"), {**rest_env(tmp_path, sim), "LISTRAK_FULL_RECHECK_DAYS": "0"}
    run(db, env)
    before, refused = truth(sim), sim.account.list_ids()[0]
    sim.advance(3)  # new messages and late activity: the refused list's rows would change
    sim.configure_faults(rest_refused=[{"listId": refused}], rest_refusal_status=status)
    result = run(db, env)
    assert f"Skipped list {refused}" in result.stderr and f"HTTP {status}" in result.stderr + result.stdout
    now = truth(sim)
    assert now != before
    assert_tables(db, mixed(now, before, lambda _, row: row["listId"] == refused))
    for table in STREAM_NAMES:  # SOAP is not refused: it is up to date
        assert_matches_truth(table, read_duckdb(db, "listrak", table), sim.account.ground_truth(table, EPOCH))

    sim.configure_faults(rest_refused=[])
    run(db, env)
    assert_rest_equals_truth(db, sim)


def test_a_list_refused_in_an_incremental_run_keeps_its_rows_and_is_read_whole_next_run(
        sim: Simulator, tmp_path: Path) -> None:
    db, env = str(tmp_path / "out.duckdb"), rest_env(tmp_path, sim)
    run(db, env)
    refused = sim.account.list_ids()[1]
    sim.configure_faults(rest_refused=[{"listId": refused}])
    result = run(db, env)
    assert f"Skipped list {refused}" in result.stderr and "refused lists/messages" in result.stdout
    assert_rest_equals_truth(db, sim)

    sim.configure_faults(rest_refused=[])
    campaigns = sim.stats()["rest_requests"].get("/List/{listId}/Campaign", 0)
    run(db, env)
    # Campaigns are read only at a list's recheck: the refused list's is due at once, no other's.
    assert sim.stats()["rest_requests"]["/List/{listId}/Campaign"] == campaigns + 1
    assert_rest_equals_truth(db, sim)


@pytest.mark.parametrize("write", ["replace", "merge"])
def test_a_refused_message_keeps_its_rows(sim: Simulator, tmp_path: Path, write: str) -> None:
    """``replace``: every list's recheck is due, every table replaced; ``merge``: an incremental run
    that re-reads every message (a lookback longer than the account's life), merged per message."""
    knob = {"replace": ("LISTRAK_FULL_RECHECK_DAYS", "0"), "merge": ("LISTRAK_LOOKBACK_HOURS", "87600")}[write]
    db, env = str(tmp_path / "out.duckdb"), {**rest_env(tmp_path, sim), knob[0]: knob[1]}
    run(db, env)
    before = truth(sim)
    message = max(before["message_summaries"], key=lambda row: row["sendDate"])
    ids = {"listId": message["listId"], "messageId": message["messageId"]}
    assert any(r["messageId"] == ids["messageId"] for r in before["message_activity"])
    sim.advance(2)  # new messages come
    sim.configure_faults(rest_refused=[ids])
    result = run(db, env)
    assert f"Skipped message {ids['messageId']}" in result.stderr
    now = truth(sim)
    assert_tables(db, mixed(now, before, lambda table, row: table in UNDER_A_MESSAGE and
                            all(row[k] == v for k, v in ids.items())))

    sim.configure_faults(rest_refused=[])
    run(db, env)
    assert_rest_equals_truth(db, sim)
