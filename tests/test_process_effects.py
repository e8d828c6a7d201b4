"""A library call leaves the process as it found it: the caller may be a Dagster code location
running other dlt pipelines. Process-wide tuning (gc, malloc, signals, logging) is the CLI's own.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest
from helpers import settings_for

from listrak_sync.pipeline.runner import replicate
from listrak_sync.simulator import Simulator

OUR_DEFAULTS = ("EXTRACT__NEXT_ITEM_MODE", "LOAD__TRUNCATE_STAGING_DATASET")


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(scale="tiny") as simulator:
        yield simulator


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in OUR_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def process_state() -> dict[str, Any]:
    root, dlt_logger = logging.getLogger(), logging.getLogger("dlt")
    return {
        "environ": dict(os.environ),
        "gc": (gc.get_threshold(), gc.get_freeze_count()),
        "signals": {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)},
        "root logger": (root.level, list(root.handlers)),
        # (its handlers are dlt's own: dlt adds one at the first pipeline of a process, ours or not)
        "dlt logger": (dlt_logger.level, list(dlt_logger.filters)),
        "hooks": (sys.excepthook, threading.excepthook),
    }


def staged_rows(db: Path) -> int | None:
    """Rows left in the staging copy of ``messages``; None where the staging dataset is gone."""
    with duckdb.connect(str(db)) as con:
        query = "SELECT 1 FROM information_schema.schemata WHERE schema_name = 'listrak_staging'"
        if not con.execute(query).fetchall():
            return None
        ((count,),) = con.execute("SELECT count(*) FROM listrak_staging.messages").fetchall()
    return int(count)


def run_reporting_dlt_settings(sim: Simulator, db: Path) -> dict[str, tuple[Any, str]]:
    """A run through ``run_pipeline`` (as the Dagster assets run), with the dlt settings it used."""
    used: dict[str, tuple[Any, str]] = {}

    def run_pipeline(pipeline: dlt.Pipeline, source: Any) -> None:
        pipeline.run(source)
        trace = pipeline.last_trace
        used.update({v.key: (v.value, v.provider_name) for v in trace.resolved_config_values
                     if v.key in ("next_item_mode", "truncate_staging_dataset")})

    replicate(settings_for(sim), duckdb_path=str(db), run_pipeline=run_pipeline)
    return used


def test_a_run_leaves_the_environment_and_the_process_as_they_were(
        sim: Simulator, tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    before = process_state()
    replicate(settings_for(sim), duckdb_path=str(tmp_path / "plain.duckdb"))
    assert process_state() == before
    assert staged_rows(tmp_path / "plain.duckdb") is None  # our default: emptied, then removed as empty

    used = run_reporting_dlt_settings(sim, tmp_path / "dagster-like.duckdb")
    assert used == {"next_item_mode": ("fifo", "listrak-sync run defaults"),
                    "truncate_staging_dataset": (True, "listrak-sync run defaults")}
    assert process_state() == before


def test_a_users_own_dlt_settings_are_kept_and_used(sim: Simulator, tmp_path: Path,
                                                    clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("EXTRACT__NEXT_ITEM_MODE", "round_robin")
    clean_env.setenv("LOAD__TRUNCATE_STAGING_DATASET", "false")
    before = dict(os.environ)
    used = run_reporting_dlt_settings(sim, tmp_path / "theirs.duckdb")
    assert dict(os.environ) == before
    assert {key: value for key, (value, _) in used.items()} == {"next_item_mode": "round_robin",
                                                                "truncate_staging_dataset": "false"}
    assert staged_rows(tmp_path / "theirs.duckdb") > 0


def test_another_pipeline_in_the_process_keeps_dlts_own_defaults(sim: Simulator, tmp_path: Path,
                                                                 clean_env: pytest.MonkeyPatch) -> None:
    replicate(settings_for(sim), duckdb_path=str(tmp_path / "ours.duckdb"))
    other = dlt.pipeline(pipeline_name="someone_elses", destination=dlt.destinations.duckdb(str(tmp_path / "o.duckdb")),
                         pipelines_dir=str(tmp_path / "work"))
    other.run([{"id": 1}], table_name="things", write_disposition="merge", primary_key="id")
    trace = other.last_trace
    assert trace is not None
    used = {v.key: v.value for v in trace.resolved_config_values if v.key in ("next_item_mode",
                                                                               "truncate_staging_dataset")}
    assert used == {}  # nothing configured them: dlt's defaults (round_robin, keep the staging rows)


def test_importing_the_package_only_keeps_dlts_telemetry_off_unless_the_user_turned_it_on() -> None:
    """The one environment change of an import: dlt phones home unless told not to, reads this once
    per process, and a user who wants it on says so (their value is kept)."""
    code = "import os, listrak_sync; print(os.environ.get('RUNTIME__DLTHUB_TELEMETRY'))"
    env = {k: v for k, v in os.environ.items() if k != "RUNTIME__DLTHUB_TELEMETRY"}
    off = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    on = subprocess.run([sys.executable, "-c", code], env={**env, "RUNTIME__DLTHUB_TELEMETRY": "true"},
                        capture_output=True, text=True, check=True)
    assert (off.stdout.strip(), on.stdout.strip()) == ("false", "true")
