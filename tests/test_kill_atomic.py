"""Kill a run at every load statement: each table is its last complete load or the new one.

The loader tells every SQL call to ``destinations.on_statement`` before and after it; the runs
here start through ``kill_launcher.py``, whose observer numbers those points and makes the
process SIGKILL itself at point N. A counting run tells which points write the final tables;
the run is then killed at each of them, from the same starting data every time (a copy of the DuckDB file, a clone of
the PostgreSQL database). After each kill:

- every table equals either the previous complete load or the new one (never a mix, never
  emptied), and
- the next, uninterrupted run equals the ground truth, i.e. a fresh full load.

A random-kill series then kills runs at random moments, one after another on the same data.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from destination import normalize, read_duckdb
from helpers import POSTGRES_DSN, RUN, cli_env, settings_for, start_cli

from listrak_sync.pipeline.runner import replicate
from listrak_sync.simulator import Simulator
from listrak_sync.simulator.data import EPOCH
from listrak_sync.streams import STREAM_NAMES, STREAMS_BY_NAME

DATASET = "listrak"
Snapshot = dict[str, Counter[tuple[Any, ...]]]
LAUNCHER = Path(__file__).with_name("kill_launcher.py")


def run_cli(env: dict[str, str], args: list[str], cwd: Path, *, count: Path | None = None,
            kill_at: int | None = None) -> subprocess.CompletedProcess[str]:
    """``listrak-sync run`` through the launcher: its load's statements listed in ``count``, killed at ``kill_at``."""
    seam = [*(["--count", str(count)] if count else []), *(["--kill-at", str(kill_at)] if kill_at else [])]
    return subprocess.run([sys.executable, str(LAUNCHER), *seam, *RUN, *args],
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)


def truth(sim: Simulator) -> Snapshot:
    return {t: normalize(STREAMS_BY_NAME[t], sim.account.ground_truth(t, EPOCH), listrak_names=True)
            for t in STREAM_NAMES}


class Place:
    """A destination the test can snapshot, clone from a base, and read back."""

    name: str

    def args(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {}

    def read(self) -> Snapshot:
        raise NotImplementedError

    def save_base(self) -> None:
        raise NotImplementedError

    def restore_base(self) -> None:
        raise NotImplementedError


class DuckDbPlace(Place):
    name = "duckdb"

    def __init__(self, root: Path) -> None:
        self.file, self.base = root / "listrak_sync.duckdb", root / "base.duckdb"

    def args(self) -> list[str]:
        return ["--duckdb", str(self.file)]

    def read(self) -> Snapshot:
        return {t: normalize(STREAMS_BY_NAME[t], read_duckdb(str(self.file), DATASET, t), listrak_names=False)
                for t in STREAM_NAMES}

    def save_base(self) -> None:
        shutil.copy(self.file, self.base)

    def restore_base(self) -> None:
        for leftover in self.file.parent.glob(self.file.name + ".wal"):
            leftover.unlink()
        shutil.copy(self.base, self.file)


class PostgresPlace(Place):
    name = "postgres"

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.database, self.base = f"lskill_{tag}", f"lskill_base_{tag}"
        self._admin(f'CREATE DATABASE "{self.database}"')

    def _admin(self, sql: str) -> None:
        con = psycopg2.connect(POSTGRES_DSN)
        con.autocommit = True
        try:
            with con.cursor() as cur:
                cur.execute(sql)
        finally:
            con.close()

    def dsn(self) -> str:
        return f"{POSTGRES_DSN.rsplit('/', 1)[0]}/{self.database}"

    def args(self) -> list[str]:
        return ["--destination", "postgres"]

    def env(self) -> dict[str, str]:
        return {"DESTINATION__POSTGRES__CREDENTIALS": self.dsn()}

    def read(self) -> Snapshot:
        out: Snapshot = {}
        with psycopg2.connect(self.dsn()) as con, con.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
            for table in STREAM_NAMES:
                cur.execute(f'SELECT * FROM "{DATASET}"."{table}"')
                names = [d[0] for d in cur.description]
                rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
                out[table] = normalize(STREAMS_BY_NAME[table], rows, listrak_names=False)
        return out

    def save_base(self) -> None:
        self._admin(f'CREATE DATABASE "{self.base}" TEMPLATE "{self.database}"')

    def restore_base(self) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        self._admin(f'CREATE DATABASE "{self.database}" TEMPLATE "{self.base}"')

    def drop(self) -> None:
        for name in (self.database, self.base):
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Place]:
    if request.param == "duckdb":
        yield DuckDbPlace(tmp_path)
        return
    pg = PostgresPlace()
    try:
        yield pg
    finally:
        pg.drop()


# A write to a table of the dataset itself (catalog-qualified on DuckDB), not of its staging copy.
WRITES = re.compile(
    rf'^(?:INSERT INTO|DELETE FROM|UPDATE|MERGE INTO) (?:"\w+"\.)?"{DATASET}"\."(\w+)"(?=[\s(;]|$)', re.I
)


def points(count_file: Path) -> list[tuple[int, str, str]]:
    """Each fault point of a run: number, before/after, and the final table its SQL writes ("" if none)."""
    out = []
    for line in count_file.read_text().splitlines():
        number, when, sql = line.split("\t", 2)
        match = WRITES.match(sql)
        out.append((int(number), when, match.group(1) if match else ""))
    return out


def kill_points(count_file: Path) -> list[int]:
    """Inside each write to a final table (after its SQL ran, before its commit), and just before
    dlt marks the load complete (every table swapped, the load not yet recorded)."""
    chosen = [n for n, when, table in points(count_file) if table and when == "after"]
    chosen += [n for n, when, table in points(count_file) if table == "_dlt_loads" and when == "before"]
    return sorted(set(chosen))


def assert_each_table_old_or_new(got: Snapshot, old: Snapshot, new: Snapshot, context: str) -> None:
    for table in STREAM_NAMES:
        assert got[table] in (old[table], new[table]), (
            f"{context}: {table} is neither the last complete load ({sum(old[table].values())} rows) nor the "
            f"new one ({sum(new[table].values())} rows): it has {sum(got[table].values())}"
        )


def complete_in_process(sim: Simulator, place: Place, cwd: Path) -> None:
    settings = settings_for(sim)
    old = os.environ.copy()
    os.environ.update(place.env())
    try:
        if isinstance(place, DuckDbPlace):
            replicate(settings, duckdb_path=str(place.file), dataset=DATASET)
        else:
            replicate(settings, destination="postgres", dataset=DATASET)
    finally:
        os.environ.clear()
        os.environ.update(old)


def test_a_kill_inside_any_table_swap_leaves_whole_tables(place: Place, tmp_path: Path) -> None:
    check_kills(place, tmp_path, [])


def test_a_kill_inside_a_full_refresh_leaves_whole_tables(tmp_path: Path) -> None:
    check_kills(DuckDbPlace(tmp_path), tmp_path, ["--full-refresh"])


def check_kills(place: Place, tmp_path: Path, extra: list[str]) -> None:
    with Simulator(scale="tiny", page_size=7) as sim:
        env = cli_env(sim.url, **place.env())
        first = run_cli(env, place.args(), tmp_path)
        assert first.returncode == 0, first.stderr
        old = place.read()
        assert old == truth(sim)
        sim.advance(2)
        new = truth(sim)
        assert new != old, "the clock move must change the data, or the test proves nothing"
        place.save_base()

        count_file = tmp_path / "points.txt"
        counted = run_cli(env, [*place.args(), *extra], tmp_path, count=count_file)
        assert counted.returncode == 0, counted.stderr
        assert place.read() == new
        chosen = kill_points(count_file)
        assert len(chosen) >= 5, count_file.read_text()

        for point in chosen:
            place.restore_base()
            trail = tmp_path / f"killed-{point}.txt"
            killed = run_cli(env, [*place.args(), *extra], tmp_path, count=trail, kill_at=point)
            assert killed.returncode == -signal.SIGKILL, (point, killed.returncode, killed.stderr[-500:])
            got = place.read()
            assert_each_table_old_or_new(got, old, new, f"killed at point {point}")
            _, when, table = points(trail)[-1]
            if when == "after" and table in STREAM_NAMES:
                # killed inside that table's transaction: its change must not have committed
                assert got[table] == old[table], f"{table} changed though its transaction never committed"
            complete_in_process(sim, place, tmp_path)
            assert place.read() == new, f"the run after a kill at point {point} is not a full load"


def test_random_kills_in_a_row_then_one_run_equals_a_full_load(place: Place, tmp_path: Path) -> None:
    rng = random.Random(7)
    with Simulator(scale="tiny", page_size=7) as sim:
        env = cli_env(sim.url, **place.env())
        assert run_cli(env, place.args(), tmp_path).returncode == 0
        sim.configure_faults(latency_ms=4)
        # Kills land within the span of a whole run on this machine, however fast it is today.
        started = time.monotonic()
        assert run_cli(env, place.args(), tmp_path).returncode == 0
        span = time.monotonic() - started
        outcomes: Counter[str] = Counter()
        for _ in range(4):
            before = place.read()
            sim.advance(rng.choice([0.5, 1, 2]))
            after = truth(sim)
            proc = start_cli(*RUN, *place.args(), env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.1, 0.9) * span)
            proc.send_signal(signal.SIGKILL)
            code = proc.wait(timeout=60)
            outcomes["finished" if code == 0 else "killed"] += 1
            got = place.read()
            assert_each_table_old_or_new(got, before, after, "random kill")
        sim.configure_faults(latency_ms=0)
        complete_in_process(sim, place, tmp_path)
        assert place.read() == truth(sim), outcomes
        assert outcomes["killed"] >= 2, outcomes

