"""``listrak-sync verify`` as a Dagster asset check: one check per activity table.

The check runs :func:`listrak_sync.pipeline.verify.verify` for each account (each partition, or
the shared settings), as ``listrak-sync verify --account`` would, and reports one result per
activity table: passed when no message of that table is off (docs/verify.md), with the counts
and the worst offenders as metadata. It reads the service's lists and messages once per
account and no activity report; it appends to the dataset's ``verify_history`` table.
"""

# No `from __future__ import annotations`: Dagster reads the check function's annotations.
from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    Failure,
    MetadataValue,
    multi_asset_check,
)

from listrak_sync.engine.verify import AGREES, BEHIND, CHECKS, OFF, UNCHECKED, worst
from listrak_sync.errors import ListrakSyncError, TransientError
from listrak_sync.pipeline.verify import VerifyReport, verify
from listrak_sync.soap.client import ListrakClient, unreachable_is_config

CHECK_NAME = "verify_against_counters"
TABLES = tuple(sorted({check.table for check in CHECKS} | {check.minus for check in CHECKS if check.minus}))


def build_verify_check(account_names: list[str], asset_key: Any, account_settings: Any, redact: Any) -> Any:
    """The asset check of every activity table (``asset_key`` and ``account_settings`` are
    :mod:`listrak_sync.integrations.dagster`'s, handed in to keep the modules apart)."""
    specs = [AssetCheckSpec(CHECK_NAME, asset=asset_key(table), blocking=False,
                            description="Rows and distinct contacts per message against the service's counters.")
             for table in TABLES]

    @multi_asset_check(specs=specs, name="listrak_verify")
    def listrak_verify(context: AssetCheckExecutionContext) -> Iterator[AssetCheckResult]:
        reports: dict[str, VerifyReport] = {}
        try:
            accounts: list[str | None] = list(account_names) or [None]
            for account in accounts:
                settings, target = account_settings(account)
                with ListrakClient(settings) as client, unreachable_is_config(client):
                    reports[account or ""] = verify(
                        settings, destination=target.destination, duckdb_path=target.duckdb, dataset=target.dataset,
                        client=client, lock_wait_seconds=target.lock_wait_seconds,
                        duckdb_memory_limit=target.duckdb_memory_limit)
        except ListrakSyncError as exc:
            raise Failure(description=redact(str(exc)), allow_retries=isinstance(exc, TransientError)) from None
        for account, report in reports.items():
            context.log.info(f"Account {account or '(shared settings)'}:\n{report.render()}")
        for table in TABLES:
            yield result_for(table, reports, asset_key)

    return listrak_verify


def result_for(table: str, reports: dict[str, VerifyReport], asset_key: Any) -> AssetCheckResult:
    """One table's check result over every account's report."""
    results = [r for report in reports.values() for r in report.verification.results
               if r.table == table or any(c.minus == table and c.table == r.table and c.counter == r.counter
                                          for c in CHECKS)]
    counts = {status: sum(1 for r in results if r.status == status) for status in (AGREES, BEHIND, OFF, UNCHECKED)}
    offenders = [f"{r.counter} message {r.msg_id} (list {r.list_id}): {r.difference:+}"
                 for r in worst((r for r in results if r.status == OFF), 10)]
    return AssetCheckResult(
        asset_key=asset_key(table), check_name=CHECK_NAME, passed=counts[OFF] == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={**{status.replace(" ", "_"): MetadataValue.int(n) for status, n in counts.items()},
                  "worst_off": MetadataValue.json(offenders),
                  "accounts": MetadataValue.json(sorted(reports))})


__all__ = ["CHECK_NAME", "build_verify_check", "result_for"]
