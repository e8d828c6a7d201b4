"""Named accounts: `[sources.listrak.accounts.<name>]` tables and SOURCES__LISTRAK__ACCOUNTS__* variables.

One simulator holds two API users who see different lists: account ``brand_a`` (configured in
``.dlt/secrets.toml``) and ``brand_b`` (configured in the environment). Each account must land
in its own dataset, equal to the ground truth of the lists its user sees; ``--account all`` runs
both, one failing account does not stop the other, and no password is ever printed.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from destination import assert_matches_truth, read_duckdb
from helpers import START, clean_env, cli, cli_env
from test_hostile_http import HostileServer
from test_redaction import echoes

from listrak_sync.errors import ConfigError
from listrak_sync.pipeline.run_settings import account_names, gather, select_accounts
from listrak_sync.simulator import Simulator, User
from listrak_sync.simulator.data import EPOCH
from listrak_sync.streams import STREAM_NAMES

BRAND_A = User("user-a", "Pw-a-Secret-1", list_ids=frozenset({310000}))
BRAND_B = User("user-b", "Pw-b-Secret-2", list_ids=frozenset({310032, 310050}))
PASSWORDS = (BRAND_A.password, BRAND_B.password)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(scale="tiny", page_size=7, users=[BRAND_A, BRAND_B]) as simulator:
        yield simulator


def project(tmp_path: Path, sim: Simulator) -> dict[str, str]:
    """brand_a in .dlt/secrets.toml, brand_b in the environment, shared keys in config.toml and LISTRAK_*.

    A shared LISTRAK_USERNAME/LISTRAK_PASSWORD that fits neither account is set too: an
    account's own keys must win over it.
    """
    dlt_dir = tmp_path / ".dlt"
    dlt_dir.mkdir(exist_ok=True)
    (dlt_dir / "config.toml").write_text(f'[sources.listrak]\nstart_date = "{START}"\n')
    (dlt_dir / "secrets.toml").write_text(
        f'[sources.listrak.accounts.brand_a]\nusername = "{BRAND_A.username}"\npassword = "{BRAND_A.password}"\n')
    return cli_env(sim.url, username="shared-user", password="shared-password",
                   SOURCES__LISTRAK__ACCOUNTS__BRAND_B__USERNAME=BRAND_B.username,
                   SOURCES__LISTRAK__ACCOUNTS__BRAND_B__PASSWORD=BRAND_B.password)


def assert_no_password(result: subprocess.CompletedProcess[str]) -> None:
    for password in PASSWORDS:
        assert password not in result.stdout + result.stderr


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], result.stderr


def assert_account_equals_truth(db: Path, dataset: str, sim: Simulator, user: User) -> None:
    for table in STREAM_NAMES:
        assert_matches_truth(table, read_duckdb(str(db), dataset, table),
                             sim.account.ground_truth(table, EPOCH, list_ids=user.list_ids))


def test_each_account_lands_in_its_own_dataset_and_all_runs_both(sim: Simulator, tmp_path: Path) -> None:
    env = project(tmp_path, sim)
    db = tmp_path / "listrak_sync.duckdb"
    one = cli("run", "--account", "brand_a", env=env, cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    assert "dataset 'brand_a'" in one.stdout and "brand_b" not in one.stdout
    assert_account_equals_truth(db, "brand_a", sim, BRAND_A)

    sim.advance(days=2)  # new messages and late events: brand_a's second run is incremental
    both = cli("run", "--account", "all", env=env, cwd=tmp_path)
    assert both.returncode == 0, both.stderr
    assert both.stdout.index("Account brand_a:") < both.stdout.index("Account brand_b:")
    assert "dataset 'brand_a'" in both.stdout and "dataset 'brand_b'" in both.stdout
    assert "incremental" in both.stdout.split("Account brand_b:")[0]
    assert_account_equals_truth(db, "brand_a", sim, BRAND_A)
    assert_account_equals_truth(db, "brand_b", sim, BRAND_B)
    for result in (one, both):
        assert_no_password(result)


def test_a_failing_account_does_not_stop_the_others_and_the_exit_code_is_the_worst(
        sim: Simulator, tmp_path: Path) -> None:
    env = project(tmp_path, sim)
    env["SOURCES__LISTRAK__ACCOUNTS__BRAND_B__PASSWORD"] = "Wrong-b-Secret-3"
    env["SOURCES__LISTRAK__ACCOUNTS__BRAND_C__ENDPOINT"] = "http://127.0.0.1:9/v31/IntegrationService.asmx"
    env["SOURCES__LISTRAK__ACCOUNTS__BRAND_C__USERNAME"] = BRAND_A.username
    env["SOURCES__LISTRAK__ACCOUNTS__BRAND_C__PASSWORD"] = BRAND_A.password
    env["LISTRAK_MAX_RETRIES"] = "0"
    result = cli("run", "--account", "all", "--tables", "lists", "--json", env=env, cwd=tmp_path)
    assert result.returncode == 3, result.stderr  # brand_b: access refused (3) is worse than brand_c's 2
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2, result.stderr
    assert errors[0].startswith("Error: account brand_b: Listrak rejected the username or password")
    assert errors[1].startswith("Error: account brand_c: ")
    summaries = json.loads(result.stdout)
    assert list(summaries) == ["brand_a", "brand_b", "brand_c"]
    assert summaries["brand_a"]["dataset"] == "brand_a" and summaries["brand_a"]["rows"] == {"lists": 1}
    assert summaries["brand_b"]["exit_code"] == 3 and summaries["brand_c"]["exit_code"] == 2
    assert_no_password(result)
    assert "Wrong-b-Secret-3" not in result.stdout + result.stderr


def test_an_unknown_account_is_one_line_naming_the_accounts(sim: Simulator, tmp_path: Path) -> None:
    env = project(tmp_path, sim)
    result = cli("run", "--account", "brand_x", env=env, cwd=tmp_path)
    assert_one_line_error(result, 2, "Unknown account 'brand_x'", "brand_a, brand_b")
    assert_no_password(result)


def test_bad_account_configuration_is_exit_2_before_any_request(sim: Simulator, tmp_path: Path) -> None:
    env = project(tmp_path, sim)
    secrets = (tmp_path / ".dlt" / "secrets.toml").read_text()
    before = sim.stats()["requests_total"]
    cases = [
        ({"SOURCES__LISTRAK__ACCOUNTS__BRAND_B__CONCURENCY": "4"}, secrets, "'concurency' for account 'brand_b'"),
        ({}, secrets + '[sources.listrak.accounts.Brand_C]\nusername = "x"\n', "Account name 'Brand_C'"),
        ({}, secrets + '[sources.listrak.accounts.all]\nusername = "x"\n', "Account name 'all'"),
        ({"SOURCES__LISTRAK__ACCOUNTS__BRAND_B__DATASET": "brand_a"}, secrets,
         "Accounts 'brand_b' and 'brand_a' would both load into dataset 'brand_a'"),
        ({"SOURCES__LISTRAK__ACCOUNTS__BRAND_B__PASSWORD": ""}, secrets, "No Listrak password for account 'brand_b'"),
    ]
    for extra, toml, needle in cases:
        (tmp_path / ".dlt" / "secrets.toml").write_text(toml)
        result = cli("run", "--account", "brand_b", env={**env, **extra}, cwd=tmp_path)
        assert_one_line_error(result, 2, needle)
        assert_no_password(result)
    (tmp_path / ".dlt" / "secrets.toml").write_text(secrets)
    result = cli("run", "--account", "all", "--dataset", "one", env=env, cwd=tmp_path)
    assert_one_line_error(result, 2, "--dataset would apply to every account")
    assert sim.stats()["requests_total"] == before


def test_without_accounts_account_flag_says_how_to_configure_them(tmp_path: Path) -> None:
    result = cli("run", "--account", "all", env=clean_env(), cwd=tmp_path)
    assert_one_line_error(result, 2, "No accounts are configured", "[sources.listrak.accounts.<name>]")


def test_check_runs_for_one_account_or_all(sim: Simulator, tmp_path: Path) -> None:
    env = project(tmp_path, sim)
    result = cli("check", "--account", "all", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "OK: account brand_a:" in result.stdout and "OK: account brand_b:" in result.stdout
    assert "310000" in result.stdout.split("OK: account brand_b:")[0]
    assert "310000" not in result.stdout.split("OK: account brand_b:")[1]
    assert_no_password(result)


ECHOED = ("Canary7pw_AccountA", "Canary7pw_AccountB")


@pytest.fixture
def echo_server() -> Iterator[HostileServer]:
    answer = echoes("fault_text")

    def respond(handler: BaseHTTPRequestHandler, stopping: threading.Event) -> None:
        status, body, headers = answer(handler, server.bodies[-1])
        handler.send_response(status)
        handler.send_header("Content-Type", "text/xml; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    server = HostileServer(respond)
    yield server
    server.close()


def test_every_accounts_password_is_redacted_even_when_a_server_echoes_it(
        echo_server: HostileServer, tmp_path: Path) -> None:
    env = clean_env(LISTRAK_ENDPOINT=echo_server.url, LISTRAK_START_DATE=START, LISTRAK_MAX_RETRIES="1",
                    LISTRAK_BACKOFF_BASE="0.01", LISTRAK_BACKOFF_MAX="0.02")
    for name, password in zip(("brand_a", "brand_b"), ECHOED, strict=True):
        env[f"SOURCES__LISTRAK__ACCOUNTS__{name.upper()}__USERNAME"] = f"user-{name}"
        env[f"SOURCES__LISTRAK__ACCOUNTS__{name.upper()}__PASSWORD"] = password
    result = cli("--debug", "run", "--account", "all", env=env, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    for password in ECHOED:
        assert any(password.encode() in body for body in echo_server.bodies)  # sent, and echoed back
        assert password not in output, output
    assert "Traceback" in output and "********" in output


# ---- the settings resolution itself, in-process (environment variables only: dlt reads them live)


@pytest.fixture
def accounts_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """The shared and per-account keys below, in an environment without the developer's (conftest)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LISTRAK_CONCURRENCY", "3")
    monkeypatch.setenv("LISTRAK_DATASET", "shared")
    monkeypatch.setenv("SOURCES__LISTRAK__ACCOUNTS__SHOP_EU__CONCURRENCY", "5")
    monkeypatch.setenv("SOURCES__LISTRAK__ACCOUNTS__SHOP_US__USERNAME", "us")
    return monkeypatch


def test_an_accounts_own_keys_win_over_shared_ones_and_flags_over_both(accounts_env: pytest.MonkeyPatch) -> None:
    assert account_names() == ["shop_eu", "shop_us"]
    values, target = gather({}, "shop_eu")
    assert values["concurrency"] == "5" and target.dataset == "shop_eu"  # the shared dataset is never inherited
    values, target = gather({}, "shop_us")
    assert values["concurrency"] == "3" and values["username"] == "us" and target.dataset == "shop_us"
    values, target = gather({"concurrency": "7", "dataset": "mine"}, "shop_eu")
    assert values["concurrency"] == "7" and target.dataset == "mine"
    values, target = gather({})  # no account: the shared settings, as before
    assert values["concurrency"] == "3" and target.dataset == "shared"


def test_account_selection(accounts_env: pytest.MonkeyPatch) -> None:
    assert select_accounts("all") == ["shop_eu", "shop_us"]
    assert select_accounts("shop_us") == ["shop_us"]
    with pytest.raises(ConfigError, match="Unknown account 'shop'. Configured accounts: shop_eu, shop_us"):
        select_accounts("shop")
    accounts_env.setenv("SOURCES__LISTRAK__ACCOUNTS__SHOP__EU__USERNAME", "x")
    with pytest.raises(ConfigError, match="names no account setting"):
        account_names()


# ---- the manual's many-accounts example, as written


def readme_subsection(title: str) -> str:
    page = (Path(__file__).parent.parent / "docs" / "accounts.md").read_text()
    start = page.index(f"## {title}\n")
    end = page.find("\n## ", start + 1)
    return page[start:end if end > 0 else None]


def manual_accounts_project(folder: Path) -> tuple[dict[str, Any], dict[str, User]]:
    """Write "Many accounts"' two files into ``folder/.dlt`` as written.

    Returns:
        The shared ``[sources.listrak]`` table of config.toml, and each account's simulator user
        (the page's own credentials; each user sees other lists).
    """
    import tomlkit
    from test_readme_as_written import code_blocks

    files = {}
    for block in code_blocks(readme_subsection("Many accounts"), "toml"):
        name = block.splitlines()[0].lstrip("# ").strip()
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(block)
        files[name] = tomlkit.parse(block).unwrap()["sources"]["listrak"]
    shared, secrets = files[".dlt/config.toml"], files[".dlt/secrets.toml"]["accounts"]
    assert list(secrets) == ["brand_a", "brand_b"]
    users = {"brand_a": User(secrets["brand_a"]["username"], secrets["brand_a"]["password"], frozenset({310000})),
             "brand_b": User(secrets["brand_b"]["username"], secrets["brand_b"]["password"],
                             frozenset({310032, 310050}))}
    return shared, users


def assert_manual_accounts_equal_truth(db: Path, shared: dict[str, Any], users: dict[str, User],
                                       sim: Simulator) -> None:
    """Each account's dataset in ``db`` holds its tables as the simulator's ground truth for its user."""
    from listrak_sync.settings import parse_start_date

    for name, user in users.items():
        own = shared["accounts"][name]
        start = parse_start_date(own.get("start_date", shared["start_date"]))
        tables = own["tables"].split(",") if "tables" in own else STREAM_NAMES
        for table in tables:
            assert_matches_truth(table, read_duckdb(str(db), own.get("dataset", name), table),
                                 sim.account.ground_truth(table, start, list_ids=user.list_ids))


def test_the_manuals_many_accounts_example_works_as_written(tmp_path: Path) -> None:
    from test_readme_as_written import commands, sh, user_env

    shared, users = manual_accounts_project(tmp_path)
    text = readme_subsection("Many accounts")
    lines = commands(text)
    assert [line.split()[1:] for line in lines] == [["check", "--account", "all"], ["run", "--account", "brand_a"],
                                                    ["run", "--account", "all"]]
    with Simulator(scale="tiny", page_size=7, users=list(users.values())) as simulator:
        for line in lines:
            result = sh(line, tmp_path, user_env(simulator))
            assert result.returncode == 0, (line, result.stderr)
            assert "Traceback" not in result.stderr and "WARNING" not in result.stderr, result.stderr
        assert_manual_accounts_equal_truth(tmp_path / "listrak_sync.duckdb", shared, users, simulator)
