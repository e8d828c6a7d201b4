"""The manual's Airflow DAG, run as written with Airflow 2 against the simulator.

The DAG file and the shell block that tries it are taken from docs/orchestrators.md's "Airflow"
section, with only the documented placeholder ``PROJECT = "/srv/listrak"`` replaced by the
test's folder. That folder holds the two files of docs/accounts.md's "Many accounts" (accounts
``brand_a`` and ``brand_b``, the DAG's ``ACCOUNTS``), as written, and the simulator serves those
accounts' users. Airflow lives in its own virtualenv (``make test`` installs it at
``.venv/targets/airflow``), with SQLite metadata in a temporary ``AIRFLOW_HOME``; its tasks call
this checkout's ``listrak-sync`` from the ``PATH``. Both accounts' datasets are compared with
the simulator's ground truth.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from helpers import REPO, clean_env, installed_tool
from test_accounts import assert_manual_accounts_equal_truth, manual_accounts_project

from listrak_sync.simulator import Simulator, User

DEFAULT_AIRFLOW = REPO / ".venv" / "targets" / "airflow" / "bin" / "airflow"
PLACEHOLDER = 'PROJECT = "/srv/listrak"'
DAG_FILE = "dags/listrak.py"


def airflow_executable() -> Path:
    """Airflow in its own virtualenv; a test skips without it."""
    return installed_tool(DEFAULT_AIRFLOW, "LISTRAK_TEST_AIRFLOW", f"make {DEFAULT_AIRFLOW.relative_to(REPO)}")


def docs_airflow_section() -> tuple[str, str]:
    """docs/orchestrators.md's DAG file and the shell block that tries it, as written."""
    page = (REPO / "docs" / "orchestrators.md").read_text(encoding="utf-8")
    section = page[page.index("## Airflow\n"):]
    section = section[:section.index("\n## ", 1)]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, flags=re.DOTALL)
    dag = next(text for lang, text in blocks if lang == "python" and text.startswith(f"# {DAG_FILE}"))
    shell = next(text for lang, text in blocks if lang == "sh" and "airflow dags test" in text)
    return dag, shell


def airflow_env(airflow: Path, sim: Simulator) -> dict[str, str]:
    """A user's shell: Airflow's and listrak-sync's programs on the PATH, the simulator's endpoint."""
    env = {k: v for k, v in clean_env().items() if not k.startswith("AIRFLOW")}
    env.pop("VIRTUAL_ENV", None)
    path = os.pathsep.join([str(airflow.parent), str(Path(sys.executable).parent), env.get("PATH", "")])
    return env | {"PATH": path, "LISTRAK_ENDPOINT": sim.url}


def run_shell(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``bash -e -o pipefail -c script``, as the manual's other shell blocks run."""
    return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=600)


def try_the_dag(project: Path, sim_users: list[User],
                check: Callable[[Simulator], None]) -> tuple[subprocess.CompletedProcess[str], list[tuple[Any, ...]]]:
    """Write the manual's DAG into ``project``, run its shell block against a simulator of
    ``sim_users``, then ``check`` the destination while the simulator is there.

    Returns:
        The shell block's result, and Airflow's record of the run's tasks (id, map index, state, try).
    """
    airflow = airflow_executable()
    dag, shell = docs_airflow_section()
    assert dag.count(PLACEHOLDER) == 1 and 'ACCOUNTS = ["brand_a", "brand_b"]' in dag
    assert "AIRFLOW_HOME=" in shell and "airflow db migrate" in shell
    (project / DAG_FILE).parent.mkdir()
    (project / DAG_FILE).write_text(dag.replace(PLACEHOLDER, f"PROJECT = {str(project)!r}"), encoding="utf-8")
    with Simulator(scale="tiny", page_size=7, users=sim_users) as sim:
        started = time.monotonic()
        tried = run_shell(shell, project, airflow_env(airflow, sim))
        print(f"airflow db migrate + dags test: {time.monotonic() - started:.1f} s")
        check(sim)
    with closing(sqlite3.connect(project / "airflow-home" / "airflow.db")) as metadata:
        assert metadata.execute("SELECT dag_id FROM dag_run").fetchall() == [("listrak_sync",)]
        tasks = metadata.execute("SELECT task_id, map_index, state, try_number FROM task_instance "
                                 "ORDER BY map_index").fetchall()
    return tried, tasks


def test_the_manuals_airflow_dag_replicates_every_account(tmp_path: Path) -> None:
    shared, users = manual_accounts_project(tmp_path)
    db = tmp_path / "listrak_sync.duckdb"
    tried, tasks = try_the_dag(tmp_path, list(users.values()),
                               lambda sim: assert_manual_accounts_equal_truth(db, shared, users, sim))
    assert tried.returncode == 0, f"{tried.stdout[-3000:]}\n{tried.stderr[-5000:]}"
    # One task per account, each done at its first try, and it printed the run's summary.
    assert tasks == [("replicate", index, "success", 1) for index in range(len(users))]
    for account in users:
        dataset = shared["accounts"][account].get("dataset", account)
        assert f"dataset {dataset!r}" in tried.stdout, tried.stdout[-5000:]
    assert "Traceback" not in tried.stdout + tried.stderr, tried.stdout[-5000:]


def test_an_account_refused_access_fails_its_task_without_a_retry(tmp_path: Path) -> None:
    shared, users = manual_accounts_project(tmp_path)
    # brand_b's password, as the page writes it, is not the one the service holds: exit 3.
    refused = dataclasses.replace(users["brand_b"], password="another-password")
    db = tmp_path / "listrak_sync.duckdb"
    tried, tasks = try_the_dag(tmp_path, [users["brand_a"], refused],
                               lambda sim: assert_manual_accounts_equal_truth(db, shared, {"brand_a": users["brand_a"]},
                                                                              sim))
    assert tried.returncode != 0 or "failed" in tried.stdout
    # brand_a is loaded; brand_b failed at once (the DAG retries twice, 10 minutes apart, otherwise).
    assert tasks == [("replicate", 0, "success", 1), ("replicate", 1, "failed", 1)]
    output = tried.stdout + tried.stderr
    assert "AirflowFailException: listrak-sync run --account brand_b exited 3" in output, output[-5000:]
    assert "Error: Listrak rejected the username or password for user 'api-user-b'" in output, output[-5000:]
