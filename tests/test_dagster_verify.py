"""`listrak-sync verify` as a Dagster asset check (integrations/dagster_verify.py), against the simulator."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from helpers import START

from listrak_sync.simulator import Simulator

dagster = pytest.importorskip("dagster", reason="the Dagster extra is not installed (make .venv/.dagster-installed)")
from listrak_sync.integrations.dagster import build_defs  # noqa: E402  (needs dagster)
from listrak_sync.integrations.dagster_verify import CHECK_NAME, TABLES  # noqa: E402


def test_the_check_passes_after_a_materialization_and_fails_on_the_damaged_table(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    with Simulator(scale="tiny") as sim:
        monkeypatch.setenv("LISTRAK_ENDPOINT", sim.url)
        monkeypatch.setenv("LISTRAK_START_DATE", START)
        monkeypatch.setenv("LISTRAK_USERNAME", "demo")
        monkeypatch.setenv("LISTRAK_PASSWORD", "demo-password")
        defs = build_defs()
        everything = [*(defs.assets or []), *(defs.asset_checks or [])]
        result = dagster.materialize(everything, resources=defs.resources,
                                     instance=dagster.DagsterInstance.ephemeral())
        evaluations = {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}
        assert set(evaluations) == set(TABLES)
        assert all(e.passed and e.check_name == CHECK_NAME for e in evaluations.values())

        with duckdb.connect(str(tmp_path / "listrak_sync.duckdb")) as con:
            (msg_id,) = con.execute("SELECT msg_id FROM listrak.message_reads GROUP BY msg_id "
                                    "ORDER BY count(*) DESC LIMIT 1").fetchone() or (None,)
            con.execute("DELETE FROM listrak.message_reads WHERE msg_id = ?", [msg_id])
        checks = list(defs.asset_checks or [])
        result = dagster.materialize(checks, resources=defs.resources, instance=dagster.DagsterInstance.ephemeral(),
                                     selection=dagster.AssetSelection.all_asset_checks())
        evaluations = {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}
        assert {table for table, e in evaluations.items() if not e.passed} == {"message_reads"}
        assert str(msg_id) in str(evaluations["message_reads"].metadata["worst_off"].value)
