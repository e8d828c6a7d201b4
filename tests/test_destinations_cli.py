"""Destinations as a user meets them: runs side by side, every destination after incremental
runs, bad paths and credentials, and interrupts. The CLI runs as a subprocess against the
simulator; results are compared with the simulator's ground truth."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import psycopg2
import pytest
from destination import assert_matches_truth, read_duckdb
from helpers import POSTGRES_DSN, RUN, cli, cli_env, start_cli, wait_until

from listrak_sync.simulator import Simulator
from listrak_sync.simulator.data import EPOCH
from listrak_sync.streams import STREAM_NAMES


def one_line_error(result: subprocess.CompletedProcess[str] | tuple[int, str], code: int, needle: str) -> None:
    returncode, stderr = (result.returncode, result.stderr) if not isinstance(result, tuple) else result
    assert returncode == code, (returncode, stderr)
    lines = [line for line in stderr.strip().splitlines() if " INFO " not in line]
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    assert needle.lower() in lines[0].lower(), stderr
    assert "Traceback" not in stderr


def assert_equals_truth(db: Path, dataset: str, sim: Simulator) -> None:
    for table in STREAM_NAMES:
        assert_matches_truth(table, read_duckdb(str(db), dataset, table), sim.account.ground_truth(table, EPOCH))


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(scale="tiny", page_size=7) as simulator:
        yield simulator


def test_two_datasets_of_one_file_at_once_both_succeed(sim: Simulator, tmp_path: Path) -> None:
    sim.configure_faults(latency_ms=15)
    env = cli_env(sim.url)
    runs = [start_cli(*RUN, "--dataset", name, env=env, cwd=tmp_path) for name in ("brand_a", "brand_b")]
    results = [(p.wait(timeout=300), p.communicate()) for p in runs]
    for code, (_, stderr) in results:
        assert code == 0, stderr
    for name in ("brand_a", "brand_b"):
        assert_equals_truth(tmp_path / "listrak_sync.duckdb", name, sim)


def test_a_second_run_into_the_same_dataset_fails_fast(sim: Simulator, tmp_path: Path) -> None:
    # An outage keeps the first run inside the dataset (retrying 503s) until the test ends it.
    sim.configure_faults(outage_seconds=600)
    retrying = cli_env(sim.url, LISTRAK_MAX_RETRIES="1000", LISTRAK_BACKOFF_BASE="0.05", LISTRAK_BACKOFF_MAX="0.2")
    first = start_cli(*RUN, env=retrying, cwd=tmp_path)
    # It takes the dataset before it asks Listrak anything, so a refused request means it holds it.
    wait_until(lambda: sim.stats()["faults"]["unavailable"] > 0 or first.poll() is not None)
    assert first.poll() is None, first.communicate()
    second = cli(*RUN, env=cli_env(sim.url), cwd=tmp_path)
    one_line_error(second, 2, "Another listrak-sync run is writing dataset 'listrak'")
    assert first.poll() is None, "the second run waited for the first instead of failing"
    sim.configure_faults(outage_seconds=0)
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert_equals_truth(tmp_path / "listrak_sync.duckdb", "listrak", sim)


def test_filesystem_destination_equals_a_full_load_after_clock_moves(sim: Simulator, tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    env = cli_env(sim.url, DESTINATION__FILESYSTEM__BUCKET_URL=bucket.as_uri())
    for step in (0.0, 3.0, 1.0):
        sim.advance(step)
        result = cli(*RUN, "--destination", "filesystem", env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "cannot merge" in result.stdout, result.stdout
        assert "Falling back" not in result.stderr and "WARNING" not in result.stderr
        with duckdb.connect() as con:
            for table in STREAM_NAMES:
                files = sorted((bucket / "listrak" / table).glob("*"))
                assert files, table
                cursor = con.execute(f"SELECT * FROM read_parquet({[str(f) for f in files]!r})")
                names = [d[0] for d in cursor.description]
                rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
                assert_matches_truth(table, rows, sim.account.ground_truth(table, EPOCH))


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("dsn", "needle"),
    [
        ("postgresql://postgres@127.0.0.1:5432/test", "credentials.password"),
        ("postgresql://postgres:trust@127.0.0.1:9/test", "Cannot use the postgres destination"),
        ("postgresql://postgres:trust@127.0.0.1:5432/no_such_database_here", "Cannot use the postgres destination"),
        ("postgresql://no_such_role:pw@127.0.0.1:5432/test", "Cannot use the postgres destination"),
    ],
    ids=["no-password", "closed-port", "missing-database", "wrong-role"],
)
def test_postgres_credentials_that_do_not_work_are_configuration_errors(
    sim: Simulator, tmp_path: Path, dsn: str, needle: str
) -> None:
    result = cli(*RUN, "--destination", "postgres", env=cli_env(sim.url, DESTINATION__POSTGRES__CREDENTIALS=dsn),
                 cwd=tmp_path)
    one_line_error(result, 2, needle)
    assert sim.stats()["requests_total"] == 0, "the destination is checked before Listrak is asked anything"


def _corrupt(path: Path) -> Path:
    path.write_bytes(b"this is not a duckdb file" * 100)
    return path


@pytest.mark.parametrize(
    ("make_path", "needle"),
    [
        (lambda tmp: tmp / "missing" / "x.duckdb", "does not exist"),
        (lambda tmp: tmp, "is a directory"),
        (lambda tmp: _corrupt(tmp / "corrupt.duckdb"), "cannot be opened as a DuckDB database"),
    ],
    ids=["missing-directory", "a-directory", "corrupt-file"],
)
def test_bad_duckdb_paths_are_configuration_errors(sim: Simulator, tmp_path: Path, make_path, needle: str) -> None:  # type: ignore[no-untyped-def]
    result = cli(*RUN, "--duckdb", str(make_path(tmp_path)), env=cli_env(sim.url), cwd=tmp_path)
    one_line_error(result, 2, needle)
    assert sim.stats()["requests_total"] == 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["--dataset", "bad name;drop"], "Dataset name"), (["--tables", ""], "tables is empty"),
     (["--lists", " "], "lists is empty")],
    ids=["dataset", "empty-tables", "empty-lists"],
)
def test_bad_run_values_are_one_line_and_nothing_is_written(
    sim: Simulator, tmp_path: Path, args: list[str], needle: str
) -> None:
    result = cli(*RUN, *args, env=cli_env(sim.url), cwd=tmp_path)
    one_line_error(result, 2, needle)
    assert not (tmp_path / "listrak_sync.duckdb").exists()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_an_interrupt_is_one_line_and_keeps_the_last_complete_load(
    sim: Simulator, tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    env = cli_env(sim.url)
    assert cli(*RUN, env=env, cwd=tmp_path).returncode == 0
    sim.advance(2)
    sim.configure_faults(latency_ms=60)
    proc = start_cli(*RUN, "--full-refresh", env=env, cwd=tmp_path)
    time.sleep(3.0)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    one_line_error((proc.returncode, stderr), code, "Interrupted: the destination holds the last complete load")
    sim.configure_faults(latency_ms=0)
    # each table is whole (the previous load, as the clock move changed nothing already loaded
    # or the new one); the next run completes the job
    assert cli(*RUN, env=env, cwd=tmp_path).returncode == 0
    assert_equals_truth(tmp_path / "listrak_sync.duckdb", "listrak", sim)


@pytest.mark.postgres
def test_two_datasets_in_postgres_at_once_both_succeed(sim: Simulator, tmp_path: Path) -> None:
    sim.configure_faults(latency_ms=15)
    names = [f"pair_{uuid.uuid4().hex[:6]}_{i}" for i in range(2)]
    env = cli_env(sim.url, DESTINATION__POSTGRES__CREDENTIALS=POSTGRES_DSN)
    try:
        runs = [start_cli(*RUN, "--destination", "postgres", "--dataset", name, env=env, cwd=tmp_path)
                for name in names]
        for proc in runs:
            assert proc.wait(timeout=300) == 0, proc.communicate()[1]
        with psycopg2.connect(POSTGRES_DSN) as con, con.cursor() as cur:
            for name in names:
                cur.execute(f'SELECT count(*) FROM "{name}".message_opens')
                assert cur.fetchone()[0] == len(sim.account.ground_truth("message_opens", EPOCH))
    finally:
        with psycopg2.connect(POSTGRES_DSN) as con, con.cursor() as cur:
            for name in names:
                cur.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE; DROP SCHEMA IF EXISTS "{name}_staging" CASCADE')


def test_the_destination_is_the_source_of_truth_for_the_plan(sim: Simulator, tmp_path: Path) -> None:
    """A restored backup, another file, or another machine (working directory) all continue from
    what that destination holds, and one run gives a full load's result."""
    env = cli_env(sim.url)
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    db = here / "listrak_sync.duckdb"
    assert cli(*RUN, env=env, cwd=here).returncode == 0
    backup = tmp_path / "backup.duckdb"
    backup.write_bytes(db.read_bytes())
    sim.advance(2)
    assert cli(*RUN, env=env, cwd=here).returncode == 0
    assert_equals_truth(db, "listrak", sim)
    # restore the older backup: its own plan (older) must win over anything remembered locally
    db.write_bytes(backup.read_bytes())
    sim.advance(1)
    result = cli(*RUN, "--duckdb", str(db), env=env, cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert "incremental" in result.stdout
    assert_equals_truth(db, "listrak", sim)
    # another file with the same dataset name: a first run there, complete
    other = elsewhere / "listrak_sync.duckdb"
    assert cli(*RUN, env=env, cwd=elsewhere).returncode == 0
    assert_equals_truth(other, "listrak", sim)


class _ConnectionCounter:
    """A TCP listener that counts connection attempts (a stand-in for any outside host)."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.count = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.count += 1
            conn.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"


@pytest.mark.parametrize("telemetry", [None, "true"], ids=["default", "turned-on"])
def test_nothing_phones_home_unless_the_user_turns_telemetry_on(
    sim: Simulator, tmp_path: Path, telemetry: str | None
) -> None:
    # Every outside call goes through a proxy that only counts; the simulator is reached directly.
    proxy = _ConnectionCounter()
    extra = {"HTTPS_PROXY": proxy.url, "HTTP_PROXY": proxy.url, "NO_PROXY": "127.0.0.1,localhost"}
    if telemetry:
        extra["RUNTIME__DLTHUB_TELEMETRY"] = telemetry
    result = cli(*RUN, env=cli_env(sim.url, **extra), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    if telemetry:
        assert proxy.count > 0, "the control case must reach the proxy, or this test proves nothing"
    else:
        assert proxy.count == 0


def test_a_run_survives_30_percent_faults_and_an_outage_in_the_middle(tmp_path: Path) -> None:
    kinds = ["server_fault", "unavailable", "drop", "truncated"]
    with Simulator(scale="tiny", page_size=7, fail_rate=0.3, fault_kinds=kinds, latency_ms=20) as sim:
        # small backoff so the test is quick; the outage is bridged by the retry budget
        env = cli_env(sim.url, LISTRAK_BACKOFF_BASE="0.05", LISTRAK_BACKOFF_MAX="1")
        proc = start_cli(*RUN, "--retry-budget-seconds", "60", env=env, cwd=tmp_path)
        time.sleep(2.0)
        sim.configure_faults(outage_seconds=6)
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        faults = sim.stats()["faults"]
        assert faults.get("unavailable", 0) > 10 and sum(faults.values()) > 30, faults
        assert_equals_truth(tmp_path / "listrak_sync.duckdb", "listrak", sim)


def test_a_duckdb_memory_limit_it_cannot_read_is_one_line_and_nothing_is_written(
    sim: Simulator, tmp_path: Path
) -> None:
    result = cli(*RUN, env=cli_env(sim.url, LISTRAK_DUCKDB_MEMORY_LIMIT="lots"), cwd=tmp_path)
    one_line_error(result, 2, "duckdb_memory_limit 'lots' is not a size")
    assert not (tmp_path / "listrak_sync.duckdb").exists()
    assert sim.stats()["requests_total"] == 0


def test_duckdb_out_of_its_memory_limit_is_one_line_naming_the_setting_and_keeps_the_last_load(
    sim: Simulator, tmp_path: Path
) -> None:
    assert cli(*RUN, env=cli_env(sim.url), cwd=tmp_path).returncode == 0
    result = cli(*RUN, "--full-refresh", env=cli_env(sim.url, LISTRAK_DUCKDB_MEMORY_LIMIT="1MB"), cwd=tmp_path)
    one_line_error(result, 1, "Raise it, e.g. LISTRAK_DUCKDB_MEMORY_LIMIT=")
    assert_equals_truth(tmp_path / "listrak_sync.duckdb", "listrak", sim)
    # The default limit loads the same account: the limit is DuckDB's working memory, not the data's size.
    result = cli(*RUN, "--full-refresh", env=cli_env(sim.url, LISTRAK_DUCKDB_MEMORY_LIMIT="32MB"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert_equals_truth(tmp_path / "listrak_sync.duckdb", "listrak", sim)


def test_the_default_file_is_queried_as_dataset_dot_table_and_an_old_default_file_goes_on(
    sim: Simulator, tmp_path: Path
) -> None:
    env = cli_env(sim.url)
    fresh, old = tmp_path / "fresh", tmp_path / "old"
    fresh.mkdir()
    old.mkdir()
    assert cli(*RUN, env=env, cwd=fresh).returncode == 0
    with duckdb.connect(str(fresh / "listrak_sync.duckdb"), read_only=True) as con:
        count = con.execute("SELECT count(*) FROM listrak.messages").fetchone()
    assert count == (len(sim.account.ground_truth("messages", EPOCH)),)
    # A directory an earlier version replicated into keeps its file, with one warning.
    assert cli(*RUN, "--duckdb", "listrak.duckdb", env=env, cwd=old).returncode == 0
    again = cli(*RUN, env=env, cwd=old)
    assert again.returncode == 0, again.stderr
    assert "Using listrak.duckdb, the default DuckDB file of earlier versions" in again.stderr
    assert not (old / "listrak_sync.duckdb").exists()
    assert str(old / "listrak.duckdb") in again.stdout
    assert_equals_truth(old / "listrak.duckdb", "listrak", sim)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs of its own: a disk that can be filled without filling the machine's."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_one_line_naming_the_cause_and_the_path_and_keeps_the_last_load(
        sim: Simulator, small_disk: Path, tmp_path: Path) -> None:
    db = small_disk / "out.duckdb"
    env = cli_env(sim.url, DLT_DATA_DIR=str(tmp_path / "dlt"))
    assert cli(*RUN, "--duckdb", str(db), env=env).returncode == 0
    filler = small_disk / "filler"
    with filler.open("wb") as out:  # fill the disk to the last block
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    result = cli(*RUN, "--duckdb", str(db), "--full-refresh", env=env)
    one_line_error(result, 1, "The disk is full")
    assert str(small_disk) in result.stderr
    filler.unlink()
    assert_equals_truth(db, "listrak", sim)


def test_the_lock_is_the_destination_s_own_idea_of_one_dataset(sim: Simulator, tmp_path: Path) -> None:
    """Another case of the dataset name, another path to the file and another TMPDIR are the
    same dataset of the same file: refused while the first run holds it."""
    sim.configure_faults(outage_seconds=600)
    retrying = cli_env(sim.url, LISTRAK_MAX_RETRIES="1000", LISTRAK_BACKOFF_BASE="0.05", LISTRAK_BACKOFF_MAX="0.2")
    (tmp_path / "sub").mkdir()
    (tmp_path / "other-tmp").mkdir()
    first = start_cli(*RUN, "--duckdb", "x.duckdb", env=retrying, cwd=tmp_path)
    try:
        wait_until(lambda: sim.stats()["faults"]["unavailable"] > 0 or first.poll() is not None)
        assert first.poll() is None, first.communicate()
        same = [["--dataset", "Listrak", "--duckdb", "x.duckdb"],
                ["--duckdb", "sub/../x.duckdb"]]
        for args in same:
            second = cli(*RUN, *args, env=cli_env(sim.url, TMPDIR=str(tmp_path / "other-tmp")), cwd=tmp_path)
            one_line_error(second, 2, "Another listrak-sync run is writing dataset")
        assert first.poll() is None, "a second run waited for the first instead of failing"
    finally:
        sim.configure_faults(outage_seconds=0)
        _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert_equals_truth(tmp_path / "x.duckdb", "listrak", sim)


@pytest.mark.postgres
def test_one_dataset_name_in_two_postgres_databases_is_two_datasets(sim: Simulator, tmp_path: Path) -> None:
    other = f"lrk_db_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(POSTGRES_DSN)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {other}")
    try:
        sim.configure_faults(outage_seconds=600)
        dataset = f"same_{uuid.uuid4().hex[:6]}"
        retrying = cli_env(sim.url, LISTRAK_MAX_RETRIES="1000", LISTRAK_BACKOFF_BASE="0.05",
                           LISTRAK_BACKOFF_MAX="0.2", DESTINATION__POSTGRES__CREDENTIALS=POSTGRES_DSN)
        first = start_cli(*RUN, "--destination", "postgres", "--dataset", dataset, env=retrying, cwd=tmp_path)
        try:
            wait_until(lambda: sim.stats()["faults"]["unavailable"] > 0 or first.poll() is not None)
            assert first.poll() is None, first.communicate()
            elsewhere = POSTGRES_DSN.rsplit("/", 1)[0] + f"/{other}"
            probe = start_cli(*RUN, "--destination", "postgres", "--dataset", dataset, env=cli_env(
                sim.url, DESTINATION__POSTGRES__CREDENTIALS=elsewhere), cwd=tmp_path)
            time.sleep(3)  # refused at once if it took the other database's dataset for this one
            assert probe.poll() is None, probe.communicate()
            sim.configure_faults(outage_seconds=0)
            assert probe.wait(timeout=300) == 0, probe.communicate()
        finally:
            sim.configure_faults(outage_seconds=0)
            first.communicate(timeout=300)
        assert first.returncode == 0
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {other} WITH (FORCE)")
        admin.close()
