"""What the tests share: a clean environment, the start date, client settings, the CLI as a
subprocess, PostgreSQL's address, and tools installed in their own virtualenvs.

Singer output lives in ``tap_helpers``, reading destinations back in ``destination``; the
simulator fixtures, the strict-skip switch and the PostgreSQL skip in ``conftest``.
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from subprocess import PIPE
from typing import IO, Any

import pytest

from listrak_sync.settings import Settings
from listrak_sync.simulator import DEFAULT_PASSWORD, DEFAULT_USERNAME, Simulator
from listrak_sync.simulator.data import EPOCH

REPO = Path(__file__).resolve().parent.parent
START = EPOCH.strftime("%m/%d/%Y")  # the simulator's first day, as a user types a start date
CLI = [sys.executable, "-m", "listrak_sync"]
RUN = ["run", "--start-date", START]  # `listrak-sync run` of everything since START
POSTGRES_HOST, POSTGRES_PORT = "127.0.0.1", 5432
POSTGRES_DSN = f"postgresql://postgres:trust@{POSTGRES_HOST}:{POSTGRES_PORT}/test"  # trust auth; dlt wants a password

# Variables a developer may have set that the product, dlt, Meltano or the Singer target read:
# any of them would change what a test runs. The LISTRAK_TEST_* tool paths and the strict-skip
# switch steer the tests themselves and are kept.
DEVELOPER_SETTINGS = ("LISTRAK_", "SOURCES__", "DESTINATION__", "DLT_", "MELTANO_", "TAP_LISTRAK_", "TARGET_JSONL_")
TEST_CONTROLS = ("LISTRAK_TEST_", "LISTRAK_SYNC_STRICT_SKIPS")


def is_developer_setting(name: str) -> bool:
    """Whether the environment variable ``name`` would change what a run under test does."""
    return name.startswith(DEVELOPER_SETTINGS) and not name.startswith(TEST_CONTROLS)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any developer setting, plus ``extra``.

    The environment for every subprocess a test starts (the CLI, the tap, Meltano, Dagster).
    """
    return {k: v for k, v in os.environ.items() if not is_developer_setting(k)} | extra


def cli_env(endpoint: str, *, username: str = DEFAULT_USERNAME, password: str = DEFAULT_PASSWORD,
            **extra: str) -> dict[str, str]:
    """A clean environment that points ``listrak-sync`` at ``endpoint`` as the given user, plus ``extra``."""
    return clean_env(LISTRAK_USERNAME=username, LISTRAK_PASSWORD=password, LISTRAK_ENDPOINT=endpoint, **extra)


def settings_for(service: Simulator | str, **options: Any) -> Settings:
    """Client settings for the simulator (or an endpoint URL) as its default user, from EPOCH.

    Backoff is milliseconds, so retries cost no test time; ``options`` override any key.
    """
    endpoint = service.url if isinstance(service, Simulator) else service
    values = {"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD, "start_date": EPOCH,
              "endpoint": endpoint, "backoff_base": 0.001, "backoff_max": 0.01, **options}
    return Settings.from_mapping(values)


def cli(*args: str, env: Mapping[str, str], cwd: Path | str | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``listrak-sync ARGS`` as a subprocess with no standard input; its output as text."""
    return subprocess.run([*CLI, *args], env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def start_cli(*args: str, env: Mapping[str, str], cwd: Path | str | None = None, stdout: int | IO[Any] = PIPE,
              stderr: int | IO[Any] = PIPE) -> subprocess.Popen[str]:
    """``listrak-sync ARGS`` started and not waited for, with no standard input; output piped as text."""
    return subprocess.Popen([*CLI, *args], env=dict(env), cwd=cwd, stdout=stdout, stderr=stderr, text=True,
                            stdin=subprocess.DEVNULL)


@functools.cache
def postgres_is_up() -> bool:
    """Whether a server accepts connections at PostgreSQL's address (asked once per session)."""
    try:
        socket.create_connection((POSTGRES_HOST, POSTGRES_PORT), timeout=2).close()
    except OSError:
        return False
    return True


def installed_tool(default: Path, variable: str, install: str) -> Path:
    """A tool the Makefile installs in its own virtualenv (``variable`` names another path).

    Skips the test when it is missing (under ``LISTRAK_SYNC_STRICT_SKIPS``, as on CI, the skip
    fails it: ``make test`` installs every tool).
    """
    path = Path(os.environ.get(variable) or default)
    if not path.exists():
        pytest.skip(f"{path} is missing. Install it: {install} (or set {variable}).")
    return path


def wait_until(condition: Callable[[], bool], poll: float = 0.01) -> None:
    """Poll until ``condition()`` holds.

    No deadline of its own: a test waits for an event, not for a time; pytest's timeout ends a
    wait for something that never happens.
    """
    while not condition():
        time.sleep(poll)
