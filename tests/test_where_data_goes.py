"""Where a run's data goes, as a user names it and reads it back.

- The DuckDB file by dlt's own name for it (``DESTINATION__DUCKDB__CREDENTIALS``,
  ``[destination.duckdb] credentials``), in the documented order of the settings.
- The summary's query works as typed in the file, the default one or an earlier version's
  ``listrak.duckdb``; no empty staging schema is left behind, and one holding rows is kept.
- The summary names the PostgreSQL server and database (never the password) and the files' folder.

The CLI runs as a subprocess in a fresh directory against the simulator; every destination is
compared with the simulator's ground truth.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import psycopg2
import pytest
from destination import assert_matches_truth, read_duckdb
from helpers import POSTGRES_DSN, RUN, cli, cli_env

from listrak_sync.errors import ConfigError
from listrak_sync.pipeline.destinations import resolve_target
from listrak_sync.pipeline.run_settings import gather
from listrak_sync.simulator import Simulator
from listrak_sync.simulator.data import EPOCH
from listrak_sync.streams import STREAM_NAMES


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(scale="tiny", page_size=7) as simulator:
        yield simulator


def assert_equals_truth(db: Path, dataset: str, sim: Simulator) -> None:
    for table in STREAM_NAMES:
        assert_matches_truth(table, read_duckdb(str(db), dataset, table), sim.account.ground_truth(table, EPOCH))


def schemas(db: Path) -> set[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {name for (name,) in con.execute("SELECT schema_name FROM information_schema.schemata").fetchall()}


def printed_query(stdout: str) -> str:
    """The query the summary prints (``Query: SELECT ...``)."""
    return re.search(r"^Query: (.+)$", stdout, flags=re.M).group(1)  # type: ignore[union-attr]


def count_as_typed(db: Path, query: str) -> int:
    """``query`` run as a user types it into ``duckdb <file>`` (the file is the default catalog)."""
    with duckdb.connect(str(db), read_only=True) as con:
        return int(con.execute(query).fetchall()[0][0])


# ---- the DuckDB file, by dlt's name


def test_dlts_own_name_for_the_duckdb_file_is_where_run_writes(sim: Simulator, tmp_path: Path) -> None:
    elsewhere = tmp_path / "some" / "where.duckdb"
    elsewhere.parent.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    result = cli(*RUN, env=cli_env(sim.url, DESTINATION__DUCKDB__CREDENTIALS=str(elsewhere)), cwd=work)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Replicated into duckdb {elsewhere} dataset 'listrak'"), result.stdout
    assert_equals_truth(elsewhere, "listrak", sim)
    assert list(work.iterdir()) == [], "nothing at the default path"


def test_the_duckdb_file_in_dlts_toml_files_and_what_wins(sim: Simulator, tmp_path: Path) -> None:
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text('[destination.duckdb]\ncredentials = "from_config.duckdb"\n')
    (tmp_path / ".dlt" / "secrets.toml").write_text(
        '[destination.duckdb.credentials]\ndatabase = "from_secrets.duckdb"\n')
    lists = ["--tables", "lists"]

    def lands_in(name: str, **env: str) -> None:
        result = cli(*RUN, *lists, env=cli_env(sim.url, **env), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"Replicated into duckdb {tmp_path / name} "), result.stdout
        assert_matches_truth("lists", read_duckdb(str(tmp_path / name), "listrak", "lists"),
                             sim.account.ground_truth("lists", EPOCH))

    lands_in("from_secrets.duckdb")  # secrets.toml before config.toml, as dlt reads them
    (tmp_path / ".dlt" / "secrets.toml").unlink()
    lands_in("from_config.duckdb")
    lands_in("from_env.duckdb", DESTINATION__DUCKDB__CREDENTIALS="duckdb:///from_env.duckdb")  # env before files
    lands_in("ours_env.duckdb", DESTINATION__DUCKDB__CREDENTIALS="x.duckdb", SOURCES__LISTRAK__DUCKDB="ours_env.duckdb")
    lands_in("listrak_env.duckdb", SOURCES__LISTRAK__DUCKDB="x.duckdb", LISTRAK_DUCKDB="listrak_env.duckdb")
    result = cli(*RUN, *lists, "--duckdb", "flag.duckdb", env=cli_env(sim.url, LISTRAK_DUCKDB="x.duckdb"), cwd=tmp_path)
    assert result.returncode == 0 and (tmp_path / "flag.duckdb").is_file(), result.stderr
    assert not (tmp_path / "x.duckdb").exists() and not (tmp_path / "listrak_sync.duckdb").exists()


def test_the_order_of_the_duckdb_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert gather({})[1].duckdb == "listrak_sync.duckdb"
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS__DATABASE", "table_form.duckdb")
    assert gather({})[1].duckdb == "table_form.duckdb"
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", "duckdb:////abs/dlt.duckdb")
    assert gather({})[1].duckdb == "/abs/dlt.duckdb"
    monkeypatch.setenv("SOURCES__LISTRAK__DUCKDB", "sources.duckdb")
    assert gather({})[1].duckdb == "sources.duckdb"
    monkeypatch.setenv("LISTRAK_DUCKDB", "listrak.duckdb")
    assert gather({})[1].duckdb == "listrak.duckdb"
    assert gather({"duckdb": "flag.duckdb"})[1].duckdb == "flag.duckdb"
    # A DuckDB setting that keeps no file is refused for DuckDB, and ignored for another destination.
    for name in ("LISTRAK_DUCKDB", "SOURCES__LISTRAK__DUCKDB"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", ":memory:")
    with pytest.raises(ConfigError, match="DESTINATION__DUCKDB__CREDENTIALS is ':memory:'.*file"):
        gather({})
    assert gather({"destination": "postgres"})[1].destination == "postgres"


# ---- the default file, as a user queries it


def test_the_summarys_query_works_as_typed_and_no_empty_staging_is_left(sim: Simulator, tmp_path: Path) -> None:
    db = tmp_path / "listrak_sync.duckdb"
    first = cli(*RUN, env=cli_env(sim.url), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert printed_query(first.stdout) == "SELECT count(*) FROM listrak.messages"
    messages = len(sim.account.ground_truth("messages", EPOCH))
    assert count_as_typed(db, "select count(*) from listrak.messages") == messages
    assert "listrak_staging" not in schemas(db)
    # What a later run keeps there (rows of a run to resume, say) is not dropped.
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE SCHEMA listrak_staging")
        con.execute("CREATE TABLE listrak_staging.kept AS SELECT 1 AS row_kept")
    sim.advance(days=2)
    second = cli(*RUN, env=cli_env(sim.url), cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "(incremental)" in second.stdout
    assert_equals_truth(db, "listrak", sim)
    assert count_as_typed(db, printed_query(second.stdout)) == len(sim.account.ground_truth("messages", EPOCH))
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT * FROM listrak_staging.kept").fetchall() == [(1,)]
    # Emptied, it goes with the next run.
    with duckdb.connect(str(db)) as con:
        con.execute("DROP TABLE listrak_staging.kept")
    sim.advance(days=1)
    third = cli(*RUN, env=cli_env(sim.url), cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert_equals_truth(db, "listrak", sim)
    assert "listrak_staging" not in schemas(db)
    assert "WARNING" not in first.stderr + second.stderr + third.stderr


def test_an_earlier_versions_listrak_duckdb_says_how_to_query_it(sim: Simulator, tmp_path: Path) -> None:
    legacy = tmp_path / "listrak.duckdb"
    first = cli(*RUN, "--duckdb", "listrak.duckdb", env=cli_env(sim.url), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    sim.advance(days=2)
    second = cli(*RUN, env=cli_env(sim.url), cwd=tmp_path)  # no --duckdb: goes on with the old file
    assert second.returncode == 0, second.stderr
    assert not (tmp_path / "listrak_sync.duckdb").exists()
    warnings = [line for line in second.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "listrak.listrak.<table>" in warnings[0], second.stderr
    assert_equals_truth(legacy, "listrak", sim)
    for result in (first, second):
        query = printed_query(result.stdout)
        assert query == "SELECT count(*) FROM listrak.listrak.messages"
        assert count_as_typed(legacy, query) == len(sim.account.ground_truth("messages", EPOCH))
    with duckdb.connect(str(legacy), read_only=True) as con, pytest.raises(duckdb.Error, match="Ambiguous"):
        con.execute("SELECT count(*) FROM listrak.messages")  # why the summary names the catalog
    assert "listrak_staging" not in schemas(legacy)


# ---- the summary names where the data went


@pytest.mark.postgres
def test_the_postgres_summary_names_server_database_and_dataset_not_the_password(sim: Simulator,
                                                                                 tmp_path: Path) -> None:
    dataset = f"where_pg_{uuid.uuid4().hex[:8]}"
    env = cli_env(sim.url, DESTINATION__POSTGRES__CREDENTIALS=POSTGRES_DSN)
    password = POSTGRES_DSN.split("//", 1)[1].split("@", 1)[0].split(":", 1)[1]
    try:
        result = cli(*RUN, "--destination", "postgres", "--dataset", dataset, env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"Replicated into postgres 127.0.0.1:5432/test dataset {dataset!r}"), \
            result.stdout
        assert printed_query(result.stdout) == f"SELECT count(*) FROM {dataset}.messages"
        as_json = cli(*RUN, "--destination", "postgres", "--dataset", dataset, "--json", env=env, cwd=tmp_path)
        assert as_json.returncode == 0, as_json.stderr
        assert json.loads(as_json.stdout)["location"] == "127.0.0.1:5432/test"
        for output in (result.stdout + result.stderr, as_json.stdout + as_json.stderr):
            assert password not in output
        with psycopg2.connect(POSTGRES_DSN) as con, con.cursor() as cur:
            cur.execute(printed_query(result.stdout))
            assert cur.fetchone()[0] == len(sim.account.ground_truth("messages", EPOCH))  # type: ignore[index]
            cur.execute("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s",
                        (f"{dataset}%",))
            assert cur.fetchall() == [(dataset,)], "no empty staging schema is left"
    finally:
        with psycopg2.connect(POSTGRES_DSN) as con, con.cursor() as cur:
            cur.execute(f'DROP SCHEMA IF EXISTS "{dataset}" CASCADE')
            cur.execute(f'DROP SCHEMA IF EXISTS "{dataset}_staging" CASCADE')


def test_the_filesystem_summary_names_the_folder_of_the_files(sim: Simulator, tmp_path: Path) -> None:
    env = cli_env(sim.url, DESTINATION__FILESYSTEM__BUCKET_URL="listrak-files")  # relative, as the manual's
    result = cli(*RUN, "--destination", "filesystem", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    bucket = (tmp_path / "listrak-files").as_uri()
    assert result.stdout.startswith(f"Replicated into filesystem {bucket} dataset 'listrak'"), result.stdout
    files = re.search(r"^Files: (.+)$", result.stdout, flags=re.M).group(1)  # type: ignore[union-attr]
    assert files == f"{bucket}/listrak/messages/"
    folder = tmp_path / "listrak-files" / "listrak" / "messages"
    with duckdb.connect() as con:
        count = con.execute(f"SELECT count(*) FROM read_parquet('{folder}/*.parquet')").fetchone()[0]  # type: ignore[index]
    assert count == len(sim.account.ground_truth("messages", EPOCH))


def test_a_locations_credentials_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", "sftp://loader:s3cret-pw@files.example:2222/data")
    assert resolve_target("filesystem").location == "sftp://files.example:2222/data"
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", "postgresql://loader:s3cret-pw@db.example:6543/analytics")
    assert resolve_target("postgres").location == "db.example:6543/analytics"
    monkeypatch.delenv("DESTINATION__POSTGRES__CREDENTIALS")
    assert resolve_target("postgres").location == "postgres"  # nothing configured yet: the run says what is missing
