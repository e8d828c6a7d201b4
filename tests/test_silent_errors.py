"""Errors that were silent or cut short: each is one line that says what to fix, with its exit code.

- a user who sees no lists: ``run``, ``check`` and the tap stop with exit 3 and say what to
  check in Listrak (one message, from the extractor all three share);
- a TOML syntax error in ``.dlt/config.toml`` or ``secrets.toml``: file, line and column, exit 2;
- a DuckDB file another process holds: said at once (program and PID) while the run waits, and
  the run goes on once the file is free.

Everything runs for real: the simulator on loopback, the CLI and the tap as subprocesses.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from destination import assert_matches_truth, read_duckdb
from helpers import RUN, clean_env, cli, cli_env, start_cli

from listrak_sync.errors import EXIT_ACCESS, EXIT_CONFIG, EXIT_ERROR, EXIT_OK
from listrak_sync.simulator import Simulator
from listrak_sync.simulator.access import DEFAULT_USER, User
from listrak_sync.simulator.data import EPOCH
from listrak_sync.streams import STREAM_NAMES

NO_LISTS = User("no-lists-user", "No-Lists-Secret-1", list_ids=frozenset())
NO_LISTS_WORDS = ("Listrak user 'no-lists-user' sees no lists", "Manage > Accounts > User Manager",
                  "SOAP API IP Authorization")


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(scale="tiny", users=[DEFAULT_USER, NO_LISTS]) as simulator:
        yield simulator


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.strip().splitlines() if line.startswith(("Error: ", "CRITICAL"))]


# -- a user who sees no lists ----------------------------------------------------------------------


@pytest.mark.parametrize("command", [RUN, ["check"]], ids=["run", "check"])
def test_a_user_who_sees_no_lists_is_told_what_to_check_exit_3(
    sim: Simulator, tmp_path: Path, command: list[str]
) -> None:
    env = cli_env(sim.url, username=NO_LISTS.username, password=NO_LISTS.password)
    result = cli(*command, env=env, cwd=tmp_path)  # the defaults: fresh directory, default file
    lines = result.stderr.strip().splitlines()
    assert result.returncode == EXIT_ACCESS, result.stderr
    assert len(lines) == 1 and lines[0].startswith("Error: "), lines
    assert all(words in lines[0] for words in NO_LISTS_WORDS), lines
    assert NO_LISTS.password not in result.stderr + result.stdout
    db = tmp_path / "listrak_sync.duckdb"
    if db.exists():  # nothing was written
        with duckdb.connect(str(db), read_only=True) as con:
            assert con.execute("SELECT count(*) FROM information_schema.tables").fetchone() == (0,)


def test_the_tap_says_the_same_for_a_user_who_sees_no_lists(sim: Simulator, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"username": NO_LISTS.username, "password": NO_LISTS.password,
                                  "start_date": "2024-01-01", "endpoint": sim.url}))
    result = subprocess.run([sys.executable, "-m", "listrak_sync.singer", "--config", str(config)],
                            capture_output=True, text=True, env=clean_env(), cwd=tmp_path, timeout=120)
    assert result.returncode == EXIT_ACCESS, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and all(words in lines[0] for words in NO_LISTS_WORDS), result.stderr
    assert '"type": "RECORD"' not in result.stdout and '"type":"RECORD"' not in result.stdout


# -- a TOML syntax error ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "text", "where", "command"),
    [
        ("config.toml", '[sources.listrak]\nstart_date = "2024-01-01\n', "line 2, column 25", RUN),
        ("secrets.toml", '[sources.listrak]\npassword = = "x"\n', "line 2, column 12", RUN),
        ("config.toml", "[sources.listrak\n", "line 1, column 17", ["check"]),
        # The demo reads dlt's configuration only inside the pipeline, where it used to be "Unexpected".
        ("config.toml", '[runtime]\nlog_level = "WARNING\n', "line 2, column 21", ["demo", "--scale", "tiny"]),
    ],
    ids=["run-config", "run-secrets", "check-config", "demo-config"],
)
def test_a_toml_syntax_error_names_file_line_and_column_exit_2(
    sim: Simulator, tmp_path: Path, file: str, text: str, where: str, command: list[str]
) -> None:
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / file).write_text(text)
    result = cli(*command, env=cli_env(sim.url), cwd=tmp_path, timeout=120)
    assert result.returncode == EXIT_CONFIG, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"Error: .dlt/{file}, {where}: "), result.stderr
    assert "(TOML syntax)" in lines[0] and "TomlProviderReadException" not in result.stderr
    assert "Traceback" not in result.stderr


# -- a DuckDB file held by another process ---------------------------------------------------------


def hold_duckdb(db: Path) -> subprocess.Popen[str]:
    """Another program with a write connection to ``db``, started and holding it."""
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(db)!r}); print('held', flush=True); "
                               "time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def first_line_containing(process: subprocess.Popen[str], words: str, seconds: float) -> str:
    """The first line of ``process``'s stderr holding ``words``, read as it comes; fails after ``seconds``."""
    assert process.stderr is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + seconds
    seen: list[str] = []
    while time.monotonic() < deadline:
        if selector.select(timeout=deadline - time.monotonic()):
            line = process.stderr.readline()
            seen.append(line)
            if words in line:
                return line
            if not line:
                break
    raise AssertionError(f"no line with {words!r} within {seconds} s; stderr so far: {seen}")


def test_a_run_with_defaults_says_at_once_who_holds_the_duckdb_file_and_goes_on_when_it_is_free(
    sim: Simulator, tmp_path: Path
) -> None:
    db = tmp_path / "listrak_sync.duckdb"  # the default file, in a fresh directory
    holder = hold_duckdb(db)
    run = start_cli(*RUN, env=cli_env(sim.url), cwd=tmp_path)
    try:
        started = time.monotonic()
        line = first_line_containing(run, "is open in another process", seconds=30)
        said_after = time.monotonic() - started
        assert f", PID {holder.pid})" in line and "(python" in line, line  # the program, as DuckDB names it
        assert "waiting up to 60 s (lock_wait_seconds)" in line and str(db) in line, line
        assert run.poll() is None  # still waiting, as it should
    finally:
        holder.kill()
        holder.wait()
    out, err = run.communicate(timeout=120)
    print(f"the holder was named {said_after:.1f} s after the run started")
    assert run.returncode == EXIT_OK, err
    assert "Error" not in err
    for table in STREAM_NAMES:
        assert_matches_truth(table, read_duckdb(str(db), "listrak", table), sim.account.ground_truth(table, EPOCH))


def test_a_held_duckdb_file_is_named_in_the_error_after_the_wait(sim: Simulator, tmp_path: Path) -> None:
    db = tmp_path / "held.duckdb"
    holder = hold_duckdb(db)
    try:
        result = cli(*RUN, "--duckdb", str(db), env=cli_env(sim.url, LISTRAK_LOCK_WAIT_SECONDS="1"), cwd=tmp_path)
    finally:
        holder.kill()
        holder.wait()
    lines = result.stderr.strip().splitlines()
    assert result.returncode == EXIT_ERROR, result.stderr  # retryable: the same run works once the file is free
    assert len(lines) == 2 and "waiting up to 1 s" in lines[0] and lines[1].startswith("Error: "), lines
    assert "is open in another process (python" in lines[1] and f", PID {holder.pid})" in lines[1], lines
    assert os.path.getsize(db) > 0
