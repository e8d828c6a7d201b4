"""End to end: the `listrak-sync` CLI, as a user runs it, against the simulator over HTTP.

Every table is compared row for row and type for type with the simulator's ground truth.
"""

from __future__ import annotations

import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import psycopg2
import pytest
from destination import (
    EXPECTED_DUCKDB_TYPES,
    EXPECTED_POSTGRES_TYPES,
    assert_matches_truth,
    duckdb_types,
    expected_types,
    read_duckdb,
)
from helpers import POSTGRES_DSN, RUN, clean_env, cli, cli_env, start_cli

from listrak_sync.cli.docs import column_name
from listrak_sync.simulator import DEFAULT_PASSWORD, DEFAULT_USERNAME, Simulator, User
from listrak_sync.simulator.data import EPOCH
from listrak_sync.streams import REST_TABLE_NAMES, STREAM_NAMES, STREAMS, get_stream


def base_env(
    tmp_path: Path, sim: Simulator, *, password: str = DEFAULT_PASSWORD, username: str = DEFAULT_USERNAME
) -> dict[str, str]:
    """The CLI's environment here: dlt's working files under ``tmp_path``, its log quiet."""
    return cli_env(sim.url, username=username, password=password, DLT_DATA_DIR=str(tmp_path / "dlt"),
                   RUNTIME__LOG_LEVEL="WARNING")


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(scale="tiny", page_size=7) as simulator:
        yield simulator


def assert_duckdb_equals_truth(path: str, sim: Simulator, tables: tuple[str, ...] = STREAM_NAMES) -> None:
    for table in tables:
        truth = sim.account.ground_truth(table, EPOCH)
        assert_matches_truth(table, read_duckdb(path, "listrak", table), truth)


def test_run_replicates_every_table_into_duckdb(sim: Simulator, tmp_path: Path) -> None:
    db = str(tmp_path / "out.duckdb")
    result = cli(*RUN, "--duckdb", db, "--json", env=base_env(tmp_path, sim))
    assert result.returncode == 0, result.stderr
    assert_duckdb_equals_truth(db, sim)
    for stream in STREAMS:
        assert duckdb_types(db, "listrak", stream.name) == expected_types(stream, EXPECTED_DUCKDB_TYPES)
    # the two-clicks case: one contact, one message, two rows
    clicks = read_duckdb(db, "listrak", "message_clicks")
    pairs = [(r["msg_id"], r["email_address"]) for r in clicks]
    assert any(pairs.count(p) > 1 for p in set(pairs))


@pytest.mark.postgres
def test_run_replicates_every_table_into_postgres(sim: Simulator, tmp_path: Path) -> None:
    dataset = f"listrak_e2e_{uuid.uuid4().hex[:8]}"
    env = base_env(tmp_path, sim) | {"DESTINATION__POSTGRES__CREDENTIALS": POSTGRES_DSN}
    try:
        result = cli(*RUN, "--destination", "postgres", "--dataset", dataset, env=env)
        assert result.returncode == 0, result.stderr
        with psycopg2.connect(POSTGRES_DSN) as con, con.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
            for stream in STREAMS:
                cur.execute(f'SELECT * FROM "{dataset}"."{stream.name}"')
                names = [d[0] for d in cur.description]
                rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
                assert_matches_truth(stream.name, rows, sim.account.ground_truth(stream.name, EPOCH))
                cur.execute(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = %s AND table_name = %s AND column_name NOT LIKE '\\_dlt%%'",
                    (dataset, stream.name),
                )
                assert dict(cur.fetchall()) == expected_types(stream, EXPECTED_POSTGRES_TYPES)
    finally:
        with psycopg2.connect(POSTGRES_DSN) as con, con.cursor() as cur:
            cur.execute(f'DROP SCHEMA IF EXISTS "{dataset}" CASCADE')
            cur.execute(f'DROP SCHEMA IF EXISTS "{dataset}_staging" CASCADE')


def test_selected_tables_only(sim: Simulator, tmp_path: Path) -> None:
    db = str(tmp_path / "out.duckdb")
    result = cli(*RUN, "--duckdb", db, "--tables", "message_clicks,subscribed_contacts",
                 env=base_env(tmp_path, sim))
    assert result.returncode == 0, result.stderr
    assert_duckdb_equals_truth(db, sim, ("message_clicks", "subscribed_contacts"))
    present = {t for t in read_duckdb_tables(db) if not t.startswith("_dlt")}
    assert present == {"message_clicks", "subscribed_contacts"}


def test_transient_failures_give_identical_results(tmp_path: Path) -> None:
    with Simulator(scale="tiny", page_size=7, fail_rate=0.1, fault_seed=7,
                   fault_kinds=["server_fault", "unavailable", "drop", "truncated"]) as sim:
        db = str(tmp_path / "out.duckdb")
        result = cli(*RUN, "--duckdb", db, "--json", env=base_env(tmp_path, sim))
        assert result.returncode == 0, result.stderr
        assert sum(sim.stats()["faults"].values()) > 0
        assert_duckdb_equals_truth(db, sim)


@pytest.mark.parametrize(
    ("make_sim", "password", "needle"),
    [
        (lambda: Simulator(scale="tiny"), "wrong-password", "rejected the username or password"),
        (lambda: Simulator(scale="tiny", ip_allowlist=["10.0.0.0/8"]), DEFAULT_PASSWORD, "SOAP API IP Authorization"),
        (lambda: Simulator(scale="tiny", lockout_after=0), "wrong-password", "locked"),
    ],
    ids=["bad-password", "ip-refused", "locked-out"],
)
def test_access_errors_stop_after_one_request(make_sim, password: str, needle: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with make_sim() as sim:
        for command in (["check"], [*RUN, "--duckdb", str(tmp_path / "x.duckdb")]):
            sim.reset_stats()
            result = cli(*command, env=base_env(tmp_path, sim, password=password))
            assert result.returncode == 3, result.stderr
            assert needle in result.stderr
            assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
            assert sum(sim.stats()["requests"].values()) <= 1


def test_refused_list_is_skipped_and_the_rest_loads(tmp_path: Path) -> None:
    with Simulator(scale="tiny") as probe:
        list_ids = probe.account.list_ids()
    refused = list_ids[0]
    user = User("partial", "partial-pw", list_ids=frozenset(list_ids), refused_list_ids=frozenset({refused}))
    with Simulator(scale="tiny", page_size=7, users=[user]) as sim:
        db = str(tmp_path / "out.duckdb")
        result = cli(*RUN, "--duckdb", db,
                     env=base_env(tmp_path, sim, username="partial", password="partial-pw"))
        assert result.returncode == 0, result.stderr
        assert f"ListID {refused}" in result.stderr or str(refused) in result.stdout
        allowed = [i for i in list_ids if i != refused]
        for table in ("messages", "message_opens", "subscribed_contacts"):
            truth = sim.account.ground_truth(table, EPOCH, list_ids=allowed)
            assert_matches_truth(table, read_duckdb(db, "listrak", table), truth)


def test_killed_run_leaves_previous_data_and_next_run_completes(tmp_path: Path) -> None:
    with Simulator(scale="tiny", page_size=3) as sim:
        db = str(tmp_path / "out.duckdb")
        env = base_env(tmp_path, sim)
        assert cli(*RUN, "--duckdb", db, env=env).returncode == 0
        before = {t: read_duckdb(db, "listrak", t) for t in STREAM_NAMES}
        truth_before = {t: sim.account.ground_truth(t, EPOCH) for t in STREAM_NAMES}

        sim.advance(days=20)
        sim.configure_faults(latency_ms=40)
        sim.reset_stats()
        proc = start_cli(*RUN, "--duckdb", db, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while sum(sim.stats()["requests"].values()) < 25 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be killed; slow the simulator further"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for table in STREAM_NAMES:
            assert_matches_truth(table, read_duckdb(db, "listrak", table), truth_before[table])
            assert len(read_duckdb(db, "listrak", table)) == len(before[table])
        # The killed run's working folder (rows, e-mail addresses) is left: the next run removes it.
        left = list(Path(tempfile.gettempdir()).glob(f"listrak-sync-run-{proc.pid}-*"))
        assert left, "the killed run left no working folder: the check below proves nothing"

        sim.configure_faults(latency_ms=0)
        result = cli(*RUN, "--duckdb", db, env=env)
        assert result.returncode == 0, result.stderr
        assert_duckdb_equals_truth(db, sim)
        assert not any(path.exists() for path in left)
        assert not list(Path(tempfile.gettempdir()).glob("listrak-sync-run-*"))


def test_password_never_appears_at_debug_level(tmp_path: Path) -> None:
    password = f"S3cret-{uuid.uuid4().hex}"
    with Simulator(scale="tiny", page_size=7, users=[User("leaky", password)]) as sim:
        _run_and_check_secrecy(sim, password, tmp_path)


def _run_and_check_secrecy(sim: Simulator, password: str, tmp_path: Path) -> None:
    db = tmp_path / "out.duckdb"
    env = base_env(tmp_path, sim, username="leaky", password=password)
    result = cli("--debug", *RUN, "--duckdb", str(db), env=env)
    assert result.returncode == 0, result.stderr
    assert "ReportRangeMessageContactOpen" in result.stderr  # DEBUG really logged the calls
    failed = cli("--debug", "check", env=base_env(tmp_path, sim, username="leaky", password=password + "x"))
    assert failed.returncode == 3
    for text in (result.stdout, result.stderr, failed.stdout, failed.stderr):
        assert password not in text
    for path in [db, *(tmp_path / "dlt").rglob("*")]:
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "--start-date", "13/45/2024"], "start date"),
        (["run", "--start-date", "02/30/2024"], "start date"),
        (["run", "--start-date", "01/01/2999"], "future"),
        (["run", "--start-date", "yesterday"], "start date"),
        ([*RUN, "--tables", "lists,clicks"], "clicks"),
        ([*RUN, "--lists", "12,abc"], "abc"),
        ([*RUN, "--destination", "nosuchdb"], "nosuchdb"),
        ([*RUN, "--endpoint", "http://127.0.0.1:9/v31/IntegrationService.asmx"], "connect"),
        ([*RUN, "--endpoint", "not a url"], "endpoint"),
        ([*RUN, "--concurrency", "0"], "concurrency"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(sim: Simulator, tmp_path: Path, args: list[str], needle: str) -> None:
    db = tmp_path / "out.duckdb"
    result = cli(*args, "--duckdb", str(db), env=base_env(tmp_path, sim), timeout=120)
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert needle.lower() in lines[0].lower()
    assert not db.exists() or not read_duckdb_tables(str(db))


def read_duckdb_tables(path: str) -> list[str]:
    with duckdb.connect(path, read_only=True) as con:
        return [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]


def test_discover_needs_no_network_and_names_every_column(tmp_path: Path) -> None:
    import json

    result = cli("discover", "--json", env=clean_env(LISTRAK_ENDPOINT="http://127.0.0.1:9/"))
    assert result.returncode == 0, result.stderr
    tables = {t["table"]: t for t in json.loads(result.stdout)}
    assert list(tables) == [*STREAM_NAMES, *REST_TABLE_NAMES]
    for name in REST_TABLE_NAMES:  # REST tables: keys and fields from the stream table
        stream = get_stream(name)
        assert tables[name]["api"] == "rest"
        assert tables[name]["key"] == [column_name(k) for k in stream.key]
        assert [c["listrak_field"] for c in tables[name]["columns"]] == [c.name for c in stream.table_columns]
    for stream in STREAMS:
        # the columns as the destination holds them (the DuckDB type test checks the same names),
        # each with the Listrak field it comes from
        columns = tables[stream.name]["columns"]
        assert [c["name"] for c in columns] == list(expected_types(stream, EXPECTED_DUCKDB_TYPES))
        assert [c["listrak_field"] for c in columns] == [".".join(c.path) for c in stream.table_columns]
        assert tables[stream.name]["key"] == [column_name(k) for k in stream.key]


def test_check_lists_the_visible_lists(sim: Simulator, tmp_path: Path) -> None:
    result = cli("check", env=base_env(tmp_path, sim))
    assert result.returncode == 0, result.stderr
    for row in sim.account.lists():
        assert str(row["ListID"]) in result.stdout
    assert sum(sim.stats()["requests"].values()) == 1


def test_a_sigterm_that_dlt_s_own_handler_took_still_exits_143() -> None:
    """During some of dlt's steps its handler takes SIGTERM and raises its own interrupt."""
    import signal as signals

    from dlt.common.exceptions import SignalReceivedException

    from listrak_sync.cli.common import Terminated, is_sigterm

    assert is_sigterm(Terminated())
    assert is_sigterm(SignalReceivedException(signals.SIGTERM))
    assert not is_sigterm(SignalReceivedException(signals.SIGINT))
    assert not is_sigterm(KeyboardInterrupt())


@pytest.mark.parametrize("name", ["main.duckdb", "Temp.duckdb", "information_schema.duckdb", "link.duckdb"])
def test_any_duckdb_file_name_and_a_symlinked_path_load(sim: Simulator, tmp_path: Path, name: str) -> None:
    db = tmp_path / name
    if name == "link.duckdb":  # a symlink to a file in another directory
        (tmp_path / "real").mkdir()
        db.symlink_to(tmp_path / "real" / "target.duckdb")
    for _ in ("first run", "incremental run"):
        result = cli(*RUN, "--duckdb", str(db), env=base_env(tmp_path, sim))
        assert result.returncode == 0, result.stderr
    real = str(db.resolve())
    assert_duckdb_equals_truth(real, sim)
    if name == "link.duckdb":
        assert db.is_symlink() and (tmp_path / "real" / "target.duckdb").is_file()
