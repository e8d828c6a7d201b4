"""List shards: a run of some lists replaces exactly those lists' rows and leaves the others.

Runs are the CLI as a subprocess against the simulator; tables are compared row for row with
the simulator's ground truth, per list.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from destination import assert_matches_truth, read_duckdb

from listrak_sync.simulator import DEFAULT_PASSWORD, DEFAULT_USERNAME, Simulator
from listrak_sync.simulator.data import EPOCH
from listrak_sync.streams import STREAM_NAMES

START = EPOCH.strftime("%m/%d/%Y")
PG = "postgresql://postgres:trust@127.0.0.1:5432/test"
Truth = dict[str, list[dict[str, Any]]]


def env_for(sim: Simulator, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LISTRAK_", "DESTINATION__", "SOURCES__"))}
    env.update(LISTRAK_USERNAME=DEFAULT_USERNAME, LISTRAK_PASSWORD=DEFAULT_PASSWORD, LISTRAK_ENDPOINT=sim.url, **extra)
    return env


def command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "listrak_sync", "run", "--start-date", START, *args]


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(args), env=env, cwd=cwd, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)


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
    env = env_for(sim)
    db = str(tmp_path / "listrak.duckdb")

    def read(table: str) -> list[dict[str, Any]]:
        return read_duckdb(db, "listrak", table)

    assert run([], env, tmp_path).returncode == 0
    before_others = truth(sim, others)
    sim.advance(2)
    result = run(lists_arg([first]), env, tmp_path)
    assert result.returncode == 0, result.stderr
    # the shard's list is current, the other lists are exactly as the first run left them
    assert_tables(read, union(truth(sim, [first]), before_others))
    # the other lists as a second shard, incremental from here: the union is the whole account
    result = run(lists_arg(others), env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert_tables(read, truth(sim, [first, *others]))
    # shards stay exact incrementally
    sim.advance(1)
    for ids in ([first], others):
        result = run(lists_arg(ids), env, tmp_path)
        assert result.returncode == 0, result.stderr
        assert "incremental" in result.stdout
    assert_tables(read, truth(sim, [first, *others]))
    # and a run of every list after shard runs is exact too
    sim.advance(1)
    assert run([], env, tmp_path).returncode == 0
    assert_tables(read, truth(sim, [first, *others]))


def test_shards_on_duckdb_take_turns_and_one_list_twice_fails_fast(sim: Simulator, tmp_path: Path) -> None:
    first, *others = sim.account.list_ids()
    sim.configure_faults(latency_ms=120)
    env = env_for(sim)
    procs = [subprocess.Popen(command(lists_arg(ids)), env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
             for ids in ([first], others)]
    time.sleep(1.5)
    clash = run(lists_arg([first]), env, tmp_path)
    assert clash.returncode == 2 and f"writing list {first}" in clash.stderr, clash.stderr
    whole = run([], env, tmp_path)
    assert whole.returncode == 2 and "shard" in whole.stderr, whole.stderr
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.communicate()[1]
    assert_tables(lambda t: read_duckdb(str(tmp_path / "listrak.duckdb"), "listrak", t),
                  truth(sim, [first, *others]))


@pytest.mark.postgres
def test_two_shards_in_parallel_into_one_postgres_dataset(sim: Simulator, tmp_path: Path) -> None:
    first, *others = sim.account.list_ids()
    dataset = f"shards_{uuid.uuid4().hex[:8]}"
    env = env_for(sim, DESTINATION__POSTGRES__CREDENTIALS=PG)
    args = ["--destination", "postgres", "--dataset", dataset]

    def read(table: str) -> list[dict[str, Any]]:
        with psycopg2.connect(PG) as con, con.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
            cur.execute(f'SELECT * FROM "{dataset}"."{table}"')
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    try:
        sim.configure_faults(latency_ms=30)
        for step in (0.0, 2.0):
            sim.advance(step)
            procs = [subprocess.Popen(command([*args, *lists_arg(ids)]), env=env, cwd=tmp_path,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      stdin=subprocess.DEVNULL) for ids in ([first], others)]
            for proc in procs:
                assert proc.wait(timeout=300) == 0, proc.communicate()[1]
            assert_tables(read, truth(sim, [first, *others]))
    finally:
        with psycopg2.connect(PG) as con, con.cursor() as cur:
            cur.execute(f"SELECT nspname FROM pg_namespace WHERE nspname LIKE '{dataset}%'")
            for (schema,) in cur.fetchall():
                cur.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_a_shard_into_files_is_refused(sim: Simulator, tmp_path: Path) -> None:
    first = sim.account.list_ids()[0]
    env = env_for(sim, DESTINATION__FILESYSTEM__BUCKET_URL=(tmp_path / "b").as_uri())
    result = run(["--destination", "filesystem", *lists_arg([first])], env, tmp_path)
    assert result.returncode == 2 and "cannot merge" in result.stderr, result.stderr
    assert sim.stats()["requests_total"] == 0
