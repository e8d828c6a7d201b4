"""The Dagster assets (`listrak_sync.integrations.dagster`) against the simulator: every asset materialized
equals the ground truth in DuckDB, per account partition too, with the run summary as metadata.

Most tests materialize in-process (``dagster.materialize``) with settings from the environment
(dlt reads environment variables live; ``.dlt`` files only once per process). One runs the
command docs/orchestrators.md shows, ``dagster asset materialize -m listrak_sync.integrations.dagster --select '*'``,
as a subprocess with its own DAGSTER_HOME, and compares its wall time with ``listrak-sync run``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from destination import assert_matches_truth, read_duckdb
from helpers import START, clean_env, cli

from listrak_sync.simulator import Simulator, User
from listrak_sync.simulator.data import EPOCH
from listrak_sync.streams import STREAM_NAMES, STREAMS_BY_NAME

dagster = pytest.importorskip("dagster", reason="the Dagster extra is not installed (make .venv/.dagster-installed)")
from listrak_sync.integrations.dagster import asset_key, build_defs, defs  # noqa: E402  (needs dagster)

BIN = Path(sys.executable).parent
BRAND_A = User("user-a", "Dagster-a-Secret-1", list_ids=frozenset({310000}))
BRAND_B = User("user-b", "Dagster-b-Secret-2", list_ids=frozenset({310032, 310050}))
EVERYONE = User("user-all", "Dagster-all-Secret-3")


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(scale="tiny", page_size=7, users=[BRAND_A, BRAND_B, EVERYONE]) as simulator:
        yield simulator


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sim: Simulator) -> pytest.MonkeyPatch:
    """The shared settings in an environment without the developer's (conftest), in a fresh current directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LISTRAK_ENDPOINT", sim.url)
    monkeypatch.setenv("LISTRAK_START_DATE", START)
    return monkeypatch


def with_accounts(env: pytest.MonkeyPatch, **users: User) -> None:
    for name, user in users.items():
        env.setenv(f"SOURCES__LISTRAK__ACCOUNTS__{name.upper()}__USERNAME", user.username)
        env.setenv(f"SOURCES__LISTRAK__ACCOUNTS__{name.upper()}__PASSWORD", user.password)


def materialize(defs: dagster.Definitions, **options: Any) -> dagster.ExecuteInProcessResult:
    assets = list(defs.assets or [])
    return dagster.materialize(assets, resources=defs.resources, instance=dagster.DagsterInstance.ephemeral(),
                               **options)


def metadata(result: dagster.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    """Each materialized table's metadata values."""
    return {event.materialization.asset_key.path[-1]: {k: getattr(v, "value", v)
                                                       for k, v in event.materialization.metadata.items()}
            for event in result.get_asset_materialization_events()}


def assert_equals_truth(db: Path, dataset: str, sim: Simulator, user: User,
                        tables: tuple[str, ...] = STREAM_NAMES) -> None:
    for table in tables:
        assert_matches_truth(table, read_duckdb(str(db), dataset, table),
                             sim.account.ground_truth(table, EPOCH, list_ids=user.list_ids))


def test_one_asset_per_table_with_lineage_and_no_partitions_without_accounts(settings_env: pytest.MonkeyPatch) -> None:
    (assets,) = build_defs().assets or []
    assert isinstance(assets, dagster.AssetsDefinition)
    assert set(assets.keys) == {asset_key(name) for name in STREAM_NAMES}
    assert assets.partitions_def is None  # so `dagster asset materialize --select '*'` needs no --partition
    for name in STREAM_NAMES:
        spec = assets.specs_by_key[asset_key(name)]
        stream = STREAMS_BY_NAME[name]
        assert spec.description == stream.description
        assert {dep.asset_key for dep in spec.deps} == ({asset_key(stream.parent)} if stream.parent else set())
        assert "dlt" in spec.kinds


def test_importing_the_module_reads_no_settings_dagster_builds_defs_when_it_loads(
        settings_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A configuration build_defs() refuses: the import must not look at it, loading must.
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text('[sources.listrak.accounts.Not-A-Name]\nusername = "x"\n')
    imported = subprocess.run([sys.executable, "-c", "import listrak_sync.integrations.dagster as d; print(d.defs)"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert imported.returncode == 0, imported.stderr[-2000:]
    loaded = subprocess.run([str(BIN / "dagster"), "asset", "list", "-m", "listrak_sync.integrations.dagster"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert loaded.returncode != 0 and "Account name 'Not-A-Name'" in loaded.stdout + loaded.stderr
    assert isinstance(defs(), dagster.Definitions)  # in this test's directory: no configuration, no partitions


def test_materializing_every_asset_equals_the_ground_truth_with_the_summary_as_metadata(
        settings_env: pytest.MonkeyPatch, sim: Simulator, tmp_path: Path) -> None:
    settings_env.setenv("LISTRAK_USERNAME", EVERYONE.username)
    settings_env.setenv("LISTRAK_PASSWORD", EVERYONE.password)
    result = materialize(build_defs())
    assert result.success
    assert_equals_truth(tmp_path / "listrak_sync.duckdb", "listrak", sim, EVERYONE)
    found = metadata(result)
    assert set(found) == set(STREAM_NAMES)
    for table, values in found.items():
        assert values["rows"] == len(sim.account.ground_truth(table, EPOCH)), table
        assert values["table_requests"] > 0 and values["requests"] >= values["table_requests"], table
        assert values["requests_by_operation"][STREAMS_BY_NAME[table].operation] == values["table_requests"]
        assert values["skipped"] == [] and values["mode"] == "full refresh: first run"
        assert values["dataset"] == "listrak" and values["location"] == str(tmp_path / "listrak_sync.duckdb")

    sim.advance(days=2)  # a second materialization continues from what the destination holds
    again = materialize(build_defs())
    assert again.success
    assert metadata(again)["lists"]["mode"] == "incremental"
    assert_equals_truth(tmp_path / "listrak_sync.duckdb", "listrak", sim, EVERYONE)

    sim.advance(days=1)  # and the CLI takes its turn on the same dataset, from the same plan
    result = cli("run", env=os.environ, cwd=tmp_path)  # the settings above, from the environment
    assert result.returncode == 0 and "(incremental)" in result.stdout, result.stderr
    assert_equals_truth(tmp_path / "listrak_sync.duckdb", "listrak", sim, EVERYONE)


def test_partitions_are_the_named_accounts_each_into_its_own_dataset(
        settings_env: pytest.MonkeyPatch, sim: Simulator, tmp_path: Path) -> None:
    with_accounts(settings_env, brand_a=BRAND_A, brand_b=BRAND_B)
    # brand_b replicates three tables only: the other assets are skipped for it, not failed
    picked = ("lists", "messages", "message_clicks")
    settings_env.setenv("SOURCES__LISTRAK__ACCOUNTS__BRAND_B__TABLES", ",".join(picked))
    defs = build_defs()
    (assets,) = defs.assets or []
    assert isinstance(assets, dagster.AssetsDefinition) and assets.partitions_def is not None
    assert assets.partitions_def.get_partition_keys() == ["brand_a", "brand_b"]
    for account, user, tables in (("brand_a", BRAND_A, STREAM_NAMES), ("brand_b", BRAND_B, picked)):
        result = materialize(defs, partition_key=account)
        assert result.success, account
        assert set(metadata(result)) == set(tables)
        assert {values["account"] for values in metadata(result).values()} == {account}
        assert_equals_truth(tmp_path / "listrak_sync.duckdb", account, sim, user, tables)
    # a subset of the assets replicates only those tables (dlt still reads their parents)
    subset = materialize(defs, partition_key="brand_a", selection=[asset_key("message_opens")])
    assert subset.success and set(metadata(subset)) == {"message_opens"}
    assert_equals_truth(tmp_path / "listrak_sync.duckdb", "brand_a", sim, BRAND_A, ("message_opens",))


def test_a_failed_run_is_a_one_line_failure_without_the_password(settings_env: pytest.MonkeyPatch) -> None:
    with_accounts(settings_env, brand_a=User(BRAND_A.username, "Wrong-Dagster-Secret-4"))
    result = materialize(build_defs(), partition_key="brand_a", raise_on_error=False)
    assert not result.success
    (failure,) = result.get_step_failure_events()
    error = failure.step_failure_data.error
    assert error is not None
    assert error.message.startswith("dagster._core.definitions.events.Failure: Listrak rejected the username")
    assert error.cause is None  # the chain is cut: nothing below the one line can quote the service
    everything = "\n".join(str(event) for event in result.all_events)
    assert "Wrong-Dagster-Secret-4" not in everything


def test_the_dagster_command_as_written_fills_the_destination(sim: Simulator, tmp_path: Path) -> None:
    """`dagster asset materialize -m listrak_sync.integrations.dagster --select '*'`, and its overhead over the CLI."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = clean_env(DAGSTER_HOME=str(home), LISTRAK_ENDPOINT=sim.url, LISTRAK_START_DATE=START,
                    LISTRAK_USERNAME=EVERYONE.username, LISTRAK_PASSWORD=EVERYONE.password)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    seconds = {}
    for name, command in (("dagster", "dagster asset materialize -m listrak_sync.integrations.dagster --select '*'"),
                          ("cli", "listrak-sync run")):
        where = tmp_path / name
        where.mkdir()
        started = time.monotonic()
        result = subprocess.run(["bash", "-c", command], cwd=where, env=env, capture_output=True, text=True,
                                timeout=300, stdin=subprocess.DEVNULL)
        seconds[name] = time.monotonic() - started
        assert result.returncode == 0, result.stderr[-3000:]
        assert EVERYONE.password not in result.stdout + result.stderr
        assert_equals_truth(where / "listrak_sync.duckdb", "listrak", sim, EVERYONE)
    print(f"\nwall time, same account, fresh destination: dagster {seconds['dagster']:.1f}s, "
          f"listrak-sync run {seconds['cli']:.1f}s, overhead {seconds['dagster'] - seconds['cli']:.1f}s")


def test_the_manuals_schedule_asks_for_one_run_per_account(settings_env: pytest.MonkeyPatch) -> None:
    import re

    page = (Path(__file__).parent.parent / "docs" / "orchestrators.md").read_text()
    (code,) = [block for block in re.findall(r"```python\n(.*?)```", page, flags=re.S)
               if block.startswith("# orchestration.py")]
    with_accounts(settings_env, brand_a=BRAND_A, brand_b=BRAND_B)
    namespace: dict[str, Any] = {}
    exec(compile(code, "orchestration.py", "exec"), namespace)
    defs = namespace["defs"]()  # as Dagster loads the code location, with the settings in force then
    job = defs.resolve_job_def("listrak_nightly")
    assert set(job.asset_layer.executable_asset_keys) == {asset_key(name) for name in STREAM_NAMES}
    schedule = defs.resolve_schedule_def("listrak_nightly")
    from datetime import datetime, timezone

    night = datetime(2024, 3, 1, 3, 15, tzinfo=timezone.utc)
    with dagster.build_schedule_context(scheduled_execution_time=night,
                                        repository_def=defs.get_repository_def()) as context:
        tick = schedule.evaluate_tick(context)
    requests = tick.run_requests or []
    assert [(r.partition_key, r.run_key) for r in requests] == [("brand_a", "brand_a-2024-03-01"),
                                                               ("brand_b", "brand_b-2024-03-01")]
