"""The README and every page of docs/, run as written, the way a new user would.

Each page runs in a fresh directory with a fresh ``HOME``, against a simulator whose users are
the pages' own example users, with its endpoint and credentials in the environment
(``LISTRAK_ENDPOINT``, ``LISTRAK_USERNAME``, ``LISTRAK_PASSWORD``) and nothing else isolated:
no file or dataset a block does not name (``DLT_DATA_DIR`` only as root, whose dlt pipelines
are otherwise shared machine-wide in ``/var/dlt``: it points where a user's are, ``~/.dlt``).
The blocks run in page order:

- ``sh``: ``bash -e -o pipefail -c <block>`` (every command, and every command of a pipe, must
  succeed), with no traceback. A block that opens
  with ``# In one terminal`` is a server: it runs in the background until the page is done and
  is then stopped with Ctrl-C (SIGINT), as its user would.
- ``python``: run as a script; one that opens with a file name (``# orchestration.py``) is
  written to that file instead, and a later shell block must run it.
- ``toml``/``yaml`` opening with a path comment (``# .dlt/config.toml``) and a ``json`` block
  whose paragraph above names a file (``config.json``): written to that file (a ``json`` config's
  ``endpoint`` set to the simulator's, as a user points it there).
- A block whose first lines say ``# Not run by the tests: <why>`` is skipped; so is one that
  :data:`RUN_ELSEWHERE` names, after checking that its test runs exactly that block.

Every ``sh``, ``python`` and ``crontab`` block must run or be marked. Some pages have further
checks against the simulator's ground truth after their blocks ran (:data:`AFTER_PAGE`).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from destination import assert_matches_truth, read_duckdb

from listrak_sync.settings import parse_start_date
from listrak_sync.simulator import (
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    EPOCH,
    Simulator,
    User,
)
from listrak_sync.streams import REST_TABLE_NAMES

REPO = Path(__file__).parent.parent
README = (REPO / "README.md").read_text()
PAGES = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
NOT_RUN = "# Not run by the tests:"
SERVER = "# In one terminal"
RUNNABLE = {"sh", "python", "crontab"}
DATA = {"toml", "yaml", "json", "text", "xml"}
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", flags=re.S | re.M)
# Blocks another test runs as written, because they need a tool installed only for it.
RUN_ELSEWHERE = {("docs/singer.md", "meltano install"): "test_meltano.py",
                 ("docs/orchestrators.md", "# dags/listrak.py"): "test_airflow.py",
                 ("docs/orchestrators.md", "export AIRFLOW_HOME="): "test_airflow.py"}
# The pages' example users: README and singer.md's, accounts.md's two accounts.
README_USER = User("api-user", "...")
PAGE_USERS = [User(DEFAULT_USERNAME, DEFAULT_PASSWORD), README_USER,
              User("api-user-a", "...", frozenset({310000})), User("api-user-b", "...", frozenset({310032, 310050}))]


@dataclass
class Block:
    """One fenced block of a page."""

    page: str
    lang: str
    text: str
    line: int
    offset: int

    @property
    def marked(self) -> bool:
        return any(line.startswith(NOT_RUN) for line in self.text.splitlines()[:3])

    @property
    def file_name(self) -> str | None:
        """The file a block opens by naming (``# .dlt/config.toml``, ``# orchestration.py: ...``)."""
        match = re.match(r"# ([\w./-]+\.(?:py|toml|ya?ml))\b", self.text)
        return match.group(1) if match else None

    def __str__(self) -> str:
        return f"{self.page}:{self.line} ({self.lang})"


def page_blocks(page: str) -> list[Block]:
    """Every fenced block of ``page``, in order."""
    text = (REPO / page).read_text(encoding="utf-8")
    return [Block(page, m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1, m.start())
            for m in FENCE.finditer(text)]


def section(title: str, text: str = README) -> str:
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def code_blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def commands(text: str, program: str = "listrak-sync") -> list[str]:
    """The command lines for ``program`` in the ``sh`` blocks of ``text``, comments removed."""
    lines = [line.split("  #")[0].strip() for block in code_blocks(text, "sh") for line in block.splitlines()]
    return [line for line in lines if line.startswith(program + " ")]


def user_env(sim: Simulator, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LISTRAK_", "DESTINATION__", "SOURCES__", "DLT_", "DAGSTER_", "TAP_LISTRAK_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(LISTRAK_ENDPOINT=sim.url, **extra)
    return env


def sh(line: str, cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", line], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


# ---- running a page


@dataclass
class PageRun:
    """What running one page's blocks did."""

    work: Path
    env: dict[str, str]
    sim: Simulator
    outputs: dict[int, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    ran: list[Block] = field(default_factory=list)


def serve_in_background(block: Block, run: PageRun) -> subprocess.Popen[str]:
    port = int(re.search(r"--port (\d+)", block.text).group(1))  # type: ignore[union-attr]
    log = run.work.parent / f"server-{block.line}.log"
    with log.open("w") as output:  # a file, not a pipe: a chatty server never blocks on it
        server = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", block.text], cwd=run.work, env=run.env,
                                  text=True, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.1)
    server.kill()
    pytest.fail(f"{block}: the server never listened on port {port}:\n{log.read_text()}")


def stop_server(block: Block, server: subprocess.Popen[str], run: PageRun) -> None:
    # Ctrl-C signals the terminal's whole foreground job: here, the block's process group.
    os.killpg(server.pid, signal.SIGINT)
    server.wait(timeout=60)
    output = (run.work.parent / f"server-{block.line}.log").read_text()
    assert server.returncode in (0, 130, -signal.SIGINT), (str(block), server.returncode, output[-3000:])
    assert "Traceback" not in output, output


def write_data_file(block: Block, run: PageRun, text_before: str) -> bool:
    name = block.file_name
    content = block.text
    if block.lang == "json":
        paragraph = text_before.rstrip().rsplit("\n\n", 1)[-1]  # the one right above the block
        mentioned = re.findall(r"`([\w./-]+\.json)`", paragraph)
        if not mentioned:
            return False
        name = mentioned[-1]
        config = json.loads(content)
        if "endpoint" in config:
            config["endpoint"] = run.sim.url
        content = json.dumps(config, indent=2)
    if name is None:
        return False
    path = run.work / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    return True


def run_page(page: str, run: PageRun) -> None:
    """Run every block of ``page`` in order; fail on one that neither ran nor says why not."""
    text = (REPO / page).read_text(encoding="utf-8")
    python_files: dict[str, Block] = {}
    servers: list[tuple[Block, subprocess.Popen[str]]] = []
    unrun: list[str] = []
    try:
        for number, block in enumerate(page_blocks(page)):
            before = text[:block.offset]
            if block.marked:
                continue
            if block.lang in DATA:
                if write_data_file(block, run, before):
                    run.ran.append(block)
                continue
            elsewhere = [test for (where, start), test in RUN_ELSEWHERE.items()
                         if where == page and block.text.startswith(start)]
            if elsewhere:
                check_run_elsewhere(block, elsewhere[0])
                run.ran.append(block)
                continue
            if block.lang == "python" and block.file_name:
                (run.work / block.file_name).write_text(block.text, encoding="utf-8")
                python_files[block.file_name] = block
                continue
            if block.lang == "python":
                script = run.work.parent / f"block-{number}.py"
                script.write_text(block.text, encoding="utf-8")
                result = subprocess.run([sys.executable, str(script)], cwd=run.work, env=run.env,
                                        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
            elif block.lang == "sh" and block.text.startswith(SERVER):
                servers.append((block, serve_in_background(block, run)))
                run.ran.append(block)
                continue
            elif block.lang == "sh":
                result = sh(block.text, run.work, run.env)
                for name in [name for name in python_files if name in block.text and result.returncode == 0]:
                    run.ran.append(python_files.pop(name))
            else:
                unrun.append(f"{block}: a {block.lang} block the tests cannot run needs `{NOT_RUN} <why>`")
                continue
            assert result.returncode == 0, \
                f"{block} failed:\n{block.text}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
            assert "Traceback" not in result.stderr, f"{block}:\n{result.stderr[-5000:]}"
            run.outputs[block.line] = result
            run.ran.append(block)
    finally:
        for block, server in servers:
            stop_server(block, server, run)
    unrun += [f"{block}: the file {name} is never run by a later block" for name, block in python_files.items()]
    assert not unrun, "\n".join(unrun)
    for block in page_blocks(page):
        if block.lang in RUNNABLE:
            assert block.marked or block in run.ran, f"{block} neither ran nor says why not"


def check_run_elsewhere(block: Block, test_file: str) -> None:
    if test_file == "test_meltano.py":
        from test_meltano import readme_meltano_section, switching_commands

        _, meltano_commands = readme_meltano_section()
        lines = [line for line in block.text.splitlines() if line.strip()]
        assert lines in (meltano_commands, switching_commands()), f"{block} is not what {test_file} runs"
    elif test_file == "test_airflow.py":
        from test_airflow import docs_airflow_section

        assert block.text in docs_airflow_section(), f"{block} is not what {test_file} runs"
    else:
        raise AssertionError(f"{block}: no check that {test_file} runs it")


# ---- checks after a page ran


def after_readme(run: PageRun) -> None:
    # The quick start's run loaded the README user's account, as the simulator holds it.
    db = run.work / "listrak_sync.duckdb"
    run_line = next(line for line in commands(section("Quick start")) if line.startswith("listrak-sync run"))
    start = parse_start_date(shlex.split(run_line)[shlex.split(run_line).index("--start-date") + 1])
    for table in ("lists", "messages", "message_clicks", "subscribed_contacts"):
        assert_matches_truth(table, read_duckdb(str(db), "listrak", table), run.sim.account.ground_truth(table, start))
    for result in run.outputs.values():
        assert "WARNING" not in result.stderr, result.stderr
    # The demo loads both APIs: its REST tables equal the REST truth of the account it served.
    demo_line = next(line for line in commands(section("Quick start")) if line.startswith("listrak-sync demo"))
    scale = shlex.split(demo_line.split("#")[0])[shlex.split(demo_line.split("#")[0]).index("--scale") + 1]
    served = Simulator(scale=scale, client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET)
    for table in REST_TABLE_NAMES:
        assert_matches_truth(table, read_duckdb(str(run.work / "demo.duckdb"), "listrak", table),
                             served.account.rest_ground_truth(table, EPOCH))
    # The demo's hint, and its example queries pasted into it, work in the directory it ran in.
    demo_output = next(result.stdout for result in run.outputs.values() if "Run any query yourself" in result.stdout)
    hint = demo_output.split("Run any query yourself", 1)[1].splitlines()[1].strip()
    queries = re.findall(r"^(SELECT .*);$", demo_output, flags=re.M)
    assert len(queries) >= 5
    for query in [None, *queries]:
        line = hint if query is None else shlex.join([*shlex.split(hint)[:-1], query])
        result = sh(line, run.work, run.env)
        assert result.returncode == 0 and "┌" in result.stdout, (line, result.stderr)


def after_singer(run: PageRun) -> None:
    state = json.loads((run.work / "state.json").read_text())
    assert set(state["bookmarks"]) >= {"message_opens", "message_sends"}, state


AFTER_PAGE: dict[str, Callable[[PageRun], None]] = {"README.md": after_readme, "docs/singer.md": after_singer}
POSTGRES_PAGES = {"docs/destinations.md", "docs/accounts.md"}
DAGSTER_PAGES = {"docs/orchestrators.md"}
TARGET_PAGES = {"docs/singer.md"}


@pytest.fixture
def analytics_database() -> Iterator[None]:
    """The PostgreSQL the pages' examples name: role ``loader``, database ``analytics``, emptied."""
    import psycopg2

    con = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test")
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = 'loader'")
        if cur.fetchone() is None:
            cur.execute("CREATE ROLE loader LOGIN PASSWORD 'secret'")
        cur.execute("DROP DATABASE IF EXISTS analytics WITH (FORCE)")
        cur.execute("CREATE DATABASE analytics OWNER loader")
    yield
    with con.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS analytics WITH (FORCE)")
    con.close()


def page_params() -> list[object]:
    params: list[object] = []
    for page in PAGES:
        marks = [pytest.mark.postgres] if page in POSTGRES_PAGES else []
        params.append(pytest.param(page, marks=marks, id=page))
    return params


@pytest.mark.parametrize("page", page_params())
def test_every_block_of_the_page_runs_as_written(page: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if page in POSTGRES_PAGES:
        request.getfixturevalue("analytics_database")
    if page in DAGSTER_PAGES:
        pytest.importorskip("dagster", reason="the Dagster extra (make test installs it)")
    path = os.environ.get("PATH", "")
    if page in TARGET_PAGES:  # the Singer target, in its own virtualenv as the page advises
        from tap_helpers import singer_target

        path = f"{singer_target().parent}{os.pathsep}{path}"
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    with Simulator(scale="tiny", page_size=7, users=PAGE_USERS) as sim:
        env = user_env(sim, LISTRAK_USERNAME=DEFAULT_USERNAME, LISTRAK_PASSWORD=DEFAULT_PASSWORD, HOME=str(home))
        if os.geteuid() == 0:  # dlt keeps root's pipelines in /var/dlt, shared by every run on the machine
            env["DLT_DATA_DIR"] = str(home / ".dlt")  # where a user's are: ~/.dlt
        env["PATH"] = f"{BIN}{os.pathsep}{path}"
        run = PageRun(work, env, sim)
        run_page(page, run)
        if page in AFTER_PAGE:
            AFTER_PAGE[page](run)


def test_every_block_has_a_language_the_tests_know() -> None:
    for page in PAGES:
        text = (REPO / page).read_text(encoding="utf-8")
        assert text.count("```") % 2 == 0, page
        assert not re.search(r"^[ \t]+```", text, flags=re.M), f"{page}: an indented block is not run; unindent it"
        for block in page_blocks(page):
            assert block.lang in RUNNABLE | DATA, f"{block}: give the block a language ({sorted(RUNNABLE | DATA)})"
            if block.marked:
                why = next(line for line in block.text.splitlines() if line.startswith(NOT_RUN))
                assert len(why) > len(NOT_RUN) + 10, f"{block}: say why it is not run"


# ---- deeper checks of single examples


def test_configuration_files_as_written_need_no_flags(sim: Simulator, tmp_path: Path) -> None:
    blocks = code_blocks(section("Settings files", (REPO / "docs" / "configuration.md").read_text()), "toml")
    assert len(blocks) == 2
    for block in blocks:
        name = block.splitlines()[0].lstrip("# ").strip()
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(block)
    result = sh("listrak-sync run", tmp_path, user_env(sim))
    assert result.returncode == 0, result.stderr
    assert "'listrak_opens'" in result.stdout
    start = parse_start_date("01/01/2024")
    db = str(tmp_path / "listrak_sync.duckdb")
    for table in ("lists", "messages", "message_opens"):
        assert_matches_truth(table, read_duckdb(db, "listrak_opens", table), sim.account.ground_truth(table, start))
    import duckdb

    with duckdb.connect(db, read_only=True) as con:
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'listrak_opens'").fetchall()}
    assert "message_clicks" not in tables, "tables from config.toml were honoured"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(scale="tiny", page_size=7, users=[README_USER]) as simulator:
        yield simulator


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
