"""List shards: a run of some lists replaces exactly those lists' rows and leaves the others.

Runs are the CLI as a subprocess against the simulator; tables are compared row for row with
the simulator's ground truth, per list.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from destination import assert_matches_truth, read_duckdb
from helpers import POSTGRES_DSN, RUN, cli, cli_env, start_cli

from listrak_sync.simulator import Simulator
from listrak_sync.simulator.data import EPOCH
from listrak_sync.streams import STREAM_NAMES

Truth = dict[str, list[dict[str, Any]]]


def lists_arg(ids: list[int]) -> list[str]:
    return ["--lists", ",".join(map(str, ids))]


def truth(sim: Simulator, ids: list[int]) -> Truth:
    return {t: sim.account.ground_truth(t, EPOCH, list_ids=ids) for t in STREAM_NAMES}


def union(*parts: Truth) -> Truth:
    return {t: [row for part in parts for row in part[t]] for t in STREAM_NAMES}


def assert_tables(read: Any, expected: Truth) -> None:
    for table in STREAM_NAMES:
        assert_matches_truth(table, read(table), expected[table])


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(scale="tiny", page_size=7) as simulator:
        yield simulator


def test_a_shard_replaces_only_its_lists_and_the_union_equals_a_full_run(sim: Simulator, tmp_path: Path) -> None:
    first, *others = sim.account.list_ids()
    env = cli_env(sim.url)
    db = str(tmp_path / "listrak_sync.duckdb")

    def read(table: str) -> list[dict[str, Any]]:
        return read_duckdb(db, "listrak", table)

    assert cli(*RUN, env=env, cwd=tmp_path).returncode == 0
    before_others = truth(sim, others)
    sim.advance(2)
    result = cli(*RUN, *lists_arg([first]), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # the shard's list is current, the other lists are exactly as the first run left them
    assert_tables(read, union(truth(sim, [first]), before_others))
    # the other lists as a second shard, incremental from here: the union is the whole account
    result = cli(*RUN, *lists_arg(others), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert_tables(read, truth(sim, [first, *others]))
    # shards stay exact incrementally
    sim.advance(1)
    for ids in ([first], others):
        result = cli(*RUN, *lists_arg(ids), env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "incremental" in result.stdout
    assert_tables(read, truth(sim, [first, *others]))
    # and a run of every list after shard runs is exact too
    sim.advance(1)
    assert cli(*RUN, env=env, cwd=tmp_path).returncode == 0
    assert_tables(read, truth(sim, [first, *others]))


def test_shards_on_duckdb_take_turns_and_one_list_twice_fails_fast(sim: Simulator, tmp_path: Path) -> None:
    first, *others = sim.account.list_ids()
    sim.configure_faults(latency_ms=120)
    env = cli_env(sim.url)
    procs = [start_cli(*RUN, *lists_arg(ids), env=env, cwd=tmp_path) for ids in ([first], others)]
    time.sleep(1.5)
    clash = cli(*RUN, *lists_arg([first]), env=env, cwd=tmp_path)
    assert clash.returncode == 2 and f"writing list {first}" in clash.stderr, clash.stderr
    whole = cli(*RUN, env=env, cwd=tmp_path)
    assert whole.returncode == 2 and "shard" in whole.stderr, whole.stderr
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.communicate()[1]
    assert_tables(lambda t: read_duckdb(str(tmp_path / "listrak_sync.duckdb"), "listrak", t),
                  truth(sim, [first, *others]))


@pytest.mark.postgres
def test_two_shards_in_parallel_into_one_postgres_dataset(sim: Simulator, tmp_path: Path) -> None:
    first, *others = sim.account.list_ids()
    dataset = f"shards_{uuid.uuid4().hex[:8]}"
    env = cli_env(sim.url, DESTINATION__POSTGRES__CREDENTIALS=POSTGRES_DSN)
    args = ["--destination", "postgres", "--dataset", dataset]

    def read(table: str) -> list[dict[str, Any]]:
        with psycopg2.connect(POSTGRES_DSN) as con, con.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
            cur.execute(f'SELECT * FROM "{dataset}"."{table}"')
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    try:
        sim.configure_faults(latency_ms=30)
        for step in (0.0, 2.0):
            sim.advance(step)
            procs = [start_cli(*RUN, *args, *lists_arg(ids), env=env, cwd=tmp_path) for ids in ([first], others)]
            for proc in procs:
                assert proc.wait(timeout=300) == 0, proc.communicate()[1]
            assert_tables(read, truth(sim, [first, *others]))
    finally:
        with psycopg2.connect(POSTGRES_DSN) as con, con.cursor() as cur:
            cur.execute(f"SELECT nspname FROM pg_namespace WHERE nspname LIKE '{dataset}%'")
            for (schema,) in cur.fetchall():
                cur.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_a_shard_into_files_is_refused(sim: Simulator, tmp_path: Path) -> None:
    first = sim.account.list_ids()[0]
    env = cli_env(sim.url, DESTINATION__FILESYSTEM__BUCKET_URL=(tmp_path / "b").as_uri())
    result = cli(*RUN, "--destination", "filesystem", *lists_arg([first]), env=env, cwd=tmp_path)
    assert result.returncode == 2 and "cannot merge" in result.stderr, result.stderr
    assert sim.stats()["requests_total"] == 0
