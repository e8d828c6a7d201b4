"""The README, run as written: its quick start and configuration examples, defaults untouched.

Nothing here isolates what a user would not: no DLT_DATA_DIR, no custom file or dataset unless
the README's command has one. The only setting supplied from outside is the endpoint
(``LISTRAK_ENDPOINT``, the simulator's URL), as a user of the simulator would set it.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from destination import assert_matches_truth, read_duckdb

from listrak_sync.settings import parse_start_date
from listrak_sync.simulator import Simulator, User

README = (Path(__file__).parent.parent / "README.md").read_text()
BIN = Path(sys.executable).parent


def section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end > 0 else None]


def code_blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def commands(text: str, program: str = "listrak-sync") -> list[str]:
    """The README's command lines for ``program`` in ``text``, comments removed."""
    lines = [line.split("  #")[0].strip() for block in code_blocks(text, "sh") for line in block.splitlines()]
    return [line for line in lines if line.startswith(program + " ")]


def user_env(sim: Simulator, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LISTRAK_", "DESTINATION__", "SOURCES__", "DLT_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(LISTRAK_ENDPOINT=sim.url, **extra)
    return env


def sh(line: str, cwd: Path, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


README_USER = User("api-user", "...")  # the README's own example credentials


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(scale="tiny", page_size=7, users=[README_USER]) as simulator:
        yield simulator


def test_quick_start_commands_work_as_written_from_a_fresh_directory(sim: Simulator, tmp_path: Path) -> None:
    lines = commands(section("Quick start"))
    assert [line.split()[1] for line in lines] == ["check", "run"], lines
    env = user_env(sim, LISTRAK_USERNAME=README_USER.username, LISTRAK_PASSWORD=README_USER.password)
    for line in lines:
        result = sh(line, tmp_path, env)
        assert result.returncode == 0, (line, result.stderr)
        assert "Traceback" not in result.stderr and "WARNING" not in result.stderr, result.stderr
    db = tmp_path / "listrak.duckdb"
    assert db.exists(), "the default run writes ./listrak.duckdb"
    assert str(db) in result.stdout, "the summary names the absolute path"
    start = parse_start_date(shlex.split(lines[-1])[shlex.split(lines[-1]).index("--start-date") + 1])
    for table in ("lists", "messages", "message_clicks", "subscribed_contacts"):
        assert_matches_truth(table, read_duckdb(str(db), "listrak", table), sim.account.ground_truth(table, start))
    # the README's advice for querying the default file works
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM listrak.listrak.messages").fetchone()[0] > 0


def test_configuration_files_as_written_need_no_flags(sim: Simulator, tmp_path: Path) -> None:
    blocks = code_blocks(section("Configuration"), "toml")
    assert len(blocks) == 2
    for block in blocks:
        name = block.splitlines()[0].lstrip("# ").strip()
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(block)
    result = sh("listrak-sync run", tmp_path, user_env(sim))
    assert result.returncode == 0, result.stderr
    assert "'listrak_opens'" in result.stdout
    start = parse_start_date("01/01/2024")
    db = str(tmp_path / "listrak.duckdb")
    for table in ("lists", "messages", "message_opens"):
        assert_matches_truth(table, read_duckdb(db, "listrak_opens", table), sim.account.ground_truth(table, start))
    import duckdb

    with duckdb.connect(db, read_only=True) as con:
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'listrak_opens'").fetchall()}
    assert "message_clicks" not in tables, "tables from config.toml were honoured"


def test_every_setting_comes_from_dlt_config_and_unknown_keys_are_errors(sim: Simulator, tmp_path: Path) -> None:
    dlt_dir = tmp_path / ".dlt"
    dlt_dir.mkdir()
    # the endpoint in secrets.toml is honoured (it used to be ignored, and the run went to production)
    (dlt_dir / "secrets.toml").write_text(
        f'[sources.listrak]\nusername = "api-user"\npassword = "..."\nendpoint = "{sim.url}"\n')
    env = {k: v for k, v in user_env(sim).items() if k != "LISTRAK_ENDPOINT"}
    result = sh("listrak-sync run --start-date 01/01/2024 --tables lists", tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert sim.stats()["requests_total"] > 0
    # SOURCES__LISTRAK__* works for any key
    result = sh("listrak-sync run --start-date 01/01/2024", tmp_path,
                {**env, "SOURCES__LISTRAK__TABLES": "lists", "SOURCES__LISTRAK__DATASET": "from_env"})
    assert result.returncode == 0, result.stderr
    assert "'from_env'" in result.stdout
    # a typo is an error, not silently ignored
    (dlt_dir / "config.toml").write_text('[sources.listrak]\nendpiont = "http://example.invalid"\n')
    result = sh("listrak-sync run --start-date 01/01/2024", tmp_path, env)
    assert result.returncode == 2 and "endpiont" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    (dlt_dir / "config.toml").unlink()
    result = sh("listrak-sync run --start-date 01/01/2024", tmp_path, {**env, "SOURCES__LISTRAK__CONCURENCY": "4"})
    assert result.returncode == 2 and "concurency" in result.stderr


def test_relative_duckdb_path_lands_in_the_current_directory(sim: Simulator, tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = user_env(sim, LISTRAK_USERNAME="api-user", LISTRAK_PASSWORD="...", TMPDIR=str(scratch))
    first, second = tmp_path / "a", tmp_path / "b"
    for directory in (first, second):
        directory.mkdir()
        result = sh("listrak-sync run --start-date 01/01/2024 --tables lists --duckdb mine.duckdb", directory, env)
        assert result.returncode == 0, result.stderr
        assert (directory / "mine.duckdb").exists()
        assert str(directory / "mine.duckdb") in result.stdout
    assert not list(scratch.glob("listrak-sync-run-*")), "each run removes its working folder"


def test_discover_names_columns_as_the_tables_hold_them(tmp_path: Path) -> None:
    result = sh("listrak-sync discover", tmp_path, {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"})
    assert result.returncode == 0
    assert "msg_id" in result.stdout and "MsgID" in result.stdout  # column, with the Listrak field beside
    assert "tap-listrak --discover" in sh("listrak-sync discover --help", tmp_path, dict(os.environ,
                                          PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")).stdout
