"""The manual's Meltano project, run as written with Meltano 4 against the simulator.

The ``meltano.yml`` and the ``meltano ...`` commands are taken from docs/singer.md's "Meltano"
section, with only the documented placeholder ``/path/to/listrak-sync`` replaced by this
checkout and ``api-user`` by the simulator's user; the password comes from ``LISTRAK_PASSWORD``
and the endpoint from ``TAP_LISTRAK_ENDPOINT``, as the page says. Meltano lives in its own
virtualenv (``make test`` installs it at ``.venv/targets/meltano``); it installs both plugins
from this checkout and PyPI, and the JSONL files target-jsonl writes are compared with the
simulator's ground truth.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from helpers import REPO, clean_env, installed_tool
from tap_helpers import TAP_LISTRAK_2X, TAP_LISTRAK_KEYS, TEXT_DATES, assert_records_match, assert_rest_records_match

from listrak_sync.engine.state import BOOKMARK_FIELDS
from listrak_sync.simulator import DEFAULT_PASSWORD, DEFAULT_USERNAME, Simulator
from listrak_sync.simulator.render import format_datetime
from listrak_sync.streams import STREAM_NAMES

DEFAULT_MELTANO = REPO / ".venv" / "targets" / "meltano" / "bin" / "meltano"
PLACEHOLDER = "/path/to/listrak-sync"


def meltano_executable() -> Path:
    """Meltano in its own virtualenv; a test skips without it."""
    return installed_tool(DEFAULT_MELTANO, "LISTRAK_TEST_MELTANO", f"make {DEFAULT_MELTANO.relative_to(REPO)}")


def readme_meltano_section() -> tuple[str, list[str]]:
    """docs/singer.md's meltano.yml and its ``meltano ...`` command lines, as written."""
    singer = (REPO / "docs" / "singer.md").read_text(encoding="utf-8")
    section = singer[singer.index("## Meltano\n"):]
    section = section[:section.index("\n## ", 1)]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, flags=re.DOTALL)
    meltano_yml = next(text for lang, text in blocks if lang == "yaml")
    shell = next(text for lang, text in blocks if lang == "sh")
    commands = [line for line in shell.splitlines() if line.startswith("meltano ")]
    return meltano_yml, commands


def meltano_env(meltano: Path, sim: Simulator) -> dict[str, str]:
    env = clean_env()
    env.pop("VIRTUAL_ENV", None)  # Meltano runs from its own virtualenv, not this checkout's
    return env | {
        "PATH": f"{meltano.parent}{os.pathsep}{env.get('PATH', '')}",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "LISTRAK_PASSWORD": DEFAULT_PASSWORD,
        "TAP_LISTRAK_ENDPOINT": sim.url,
    }


def run_meltano(command: str, project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Through the shell, as a user types it ("$LISTRAK_PASSWORD" expands there).
    result = subprocess.run(["bash", "-c", command], cwd=project, env=env, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=600)
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_readme_meltano_project_runs_tap_listrak_into_target_jsonl(tmp_path: Path) -> None:
    meltano = meltano_executable()
    meltano_yml, commands = readme_meltano_section()
    assert PLACEHOLDER in meltano_yml
    project_file = yaml.safe_load(meltano_yml)
    assert project_file["send_anonymous_usage_stats"] is False
    extractor = project_file["plugins"]["extractors"][0]
    loader = project_file["plugins"]["loaders"][0]
    assert (extractor["name"], loader["name"]) == ("tap-listrak", "target-jsonl")
    start_date = datetime.fromisoformat(extractor["config"]["start_date"])
    assert [c.split()[:2] for c in commands] == [["meltano", "install"], ["meltano", "config"], ["meltano", "config"],
                                                 ["meltano", "invoke"], ["meltano", "run"]]
    assert all("api-user" in c for c in commands if " username " in c)

    project = tmp_path / "meltano-project"
    project.mkdir()
    (project / "meltano.yml").write_text(meltano_yml.replace(PLACEHOLDER, str(REPO)), encoding="utf-8")
    with Simulator(scale="tiny", page_size=7) as sim:
        env = meltano_env(meltano, sim)
        timings = {}
        for command in commands:
            started = time.monotonic()
            result = run_meltano(command.replace("api-user", shlex.quote(DEFAULT_USERNAME)), project, env)
            timings[command.split("#")[0].strip()] = round(time.monotonic() - started, 1)
            if command.startswith("meltano invoke tap-listrak --test"):
                assert "Connection OK" in result.stdout + result.stderr
        state = run_meltano("meltano state get dev:tap-listrak-to-target-jsonl", project, env).stdout
        truth = {table: sim.account.ground_truth(table, start_date) for table in STREAM_NAMES}
    print(f"meltano timings (s): {timings}")

    # The password went to .env, never to meltano.yml.
    assert DEFAULT_PASSWORD not in (project / "meltano.yml").read_text(encoding="utf-8")
    assert DEFAULT_PASSWORD in (project / ".env").read_text(encoding="utf-8")
    out = project / loader["config"]["destination_path"]
    for table in STREAM_NAMES:
        records = read_jsonl(out / f"{table}.jsonl")
        assert len(records) == len(truth[table]), table
        keys = TAP_LISTRAK_KEYS[table]
        assert Counter(tuple(r[k] for k in keys) for r in records) == Counter(
            tuple(row[k] for k in keys) for row in truth[table]), table
        assert_records_match(table, records, truth[table])
        field = TEXT_DATES.get(table)
        if field:  # as the service sent them, by default
            assert Counter(r[field] for r in records) == Counter(format_datetime(row[field]) for row in truth[table])
    # Meltano kept the tap's final STATE for the next run: every bookmark, in tap-listrak's shape.
    bookmarks = json.loads(state[state.index("{"):])["singer_state"]["bookmarks"]
    assert set(bookmarks) == set(BOOKMARK_FIELDS)
    for stream, date_field in BOOKMARK_FIELDS.items():
        assert date_field in bookmarks[stream] and "progress" not in bookmarks[stream]


def switching_commands() -> list[str]:
    """docs/singer.md's "Switching from tap-listrak 2.x" ``meltano ...`` lines, as written."""
    singer = (REPO / "docs" / "singer.md").read_text(encoding="utf-8")
    section = singer[singer.index("## Switching from tap-listrak 2.x\n"):]
    section = section[:section.index("\n## ", 1)]
    shell = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)[0]
    return [line for line in shell.splitlines() if line.startswith("meltano ")]


def test_meltano_runs_the_tap_in_its_2x_mode_into_target_jsonl(tmp_path: Path) -> None:
    meltano = meltano_executable()
    meltano_yml, _ = readme_meltano_section()
    commands = switching_commands()
    assert [c.split()[:2] for c in commands] == [["meltano", "install"], ["meltano", "config"], ["meltano", "config"],
                                                 ["meltano", "run"]]
    start_date = datetime.fromisoformat(yaml.safe_load(meltano_yml)["plugins"]["extractors"][0]["config"]["start_date"])
    project = tmp_path / "meltano-2x"
    project.mkdir()
    (project / "meltano.yml").write_text(meltano_yml.replace(PLACEHOLDER, str(REPO)), encoding="utf-8")
    client_id, secret = "meltano-2x", "meltano-2x-secret-not-shown"
    with Simulator(scale="tiny", client_id=client_id, client_secret=secret) as sim:
        env = meltano_env(meltano, sim) | {
            "LISTRAK_CLIENT_ID": client_id, "LISTRAK_CLIENT_SECRET": secret,
            "TAP_LISTRAK_REST_ENDPOINT": sim.rest_url, "TAP_LISTRAK_TOKEN_ENDPOINT": sim.token_url}
        env.pop("LISTRAK_PASSWORD")
        output = "".join(run_meltano(command, project, env).stderr for command in commands)
        truth = {name: sim.account.rest_ground_truth(table, start_date) for name, (table, _) in TAP_LISTRAK_2X.items()}
        assert sum(sim.stats()["requests"].values()) == 0  # REST only
    assert secret not in (project / "meltano.yml").read_text(encoding="utf-8") + output
    out = project / "output"
    for name, (table, _) in TAP_LISTRAK_2X.items():
        assert_rest_records_match(table, read_jsonl(out / f"{name}.jsonl") if truth[name] else [], truth[name])
