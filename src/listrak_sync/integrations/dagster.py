"""Dagster assets: one per table, loaded through dagster-dlt, partitioned by named account.

    dagster asset materialize -m listrak_sync.integrations.dagster --select '*'
    dagster asset materialize -m listrak_sync.integrations.dagster --select '*' --partition brand_a

``defs`` is built when Dagster loads the definitions (``@dagster.definitions``), not when this
module is imported: importing it reads no setting and no credential. It comes from the same
settings as ``listrak-sync run``, read by :func:`listrak_sync.pipeline.run_settings.gather` in
the directory Dagster runs in: ``LISTRAK_*``, ``SOURCES__LISTRAK__*``, ``[sources.listrak]`` and
its named accounts in ``.dlt/*.toml``, and the destination's credentials the dlt way
(``DESTINATION__POSTGRES__CREDENTIALS``). With named
accounts the assets are partitioned by account, one run per account; without, they are not
partitioned at all, so that the first command above needs no ``--partition``.

Every materialization is :func:`listrak_sync.pipeline.runner.replicate`'s run, with every guarantee of
``listrak-sync run`` (tables swapped in transactions, a fresh working folder, one writer per
dataset, the plan read back from the destination): the runner builds the pipeline and the
source, and hands both to dagster-dlt's ``DagsterDltResource.run`` in place of its own
extract, normalize and load steps. The run's summary (rows, requests, retries, skipped lists
and messages, mode) is each asset's metadata, next to dagster-dlt's own.
"""

# No `from __future__ import annotations`: Dagster reads the asset function's annotations at
# definition time (the context's type, and the resource's) and refuses them as strings.
import dataclasses
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import dlt
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Definitions,
    Failure,
    MaterializeResult,
    MetadataValue,
    StaticPartitionsDefinition,
    definitions,
    in_process_executor,
)
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData
from dlt import Pipeline
from dlt.extract import DltSource

from listrak_sync.errors import ConfigError, ListrakSyncError, TransientError
from listrak_sync.integrations.dagster_verify import build_verify_check
from listrak_sync.logs import RedactingFilter
from listrak_sync.pipeline.display import display
from listrak_sync.pipeline.run_settings import RunTarget, account_names, gather, where_to_set
from listrak_sync.pipeline.runner import RunSummary, replicate
from listrak_sync.pipeline.source import build_source
from listrak_sync.progress import RunProgress
from listrak_sync.settings import Settings
from listrak_sync.soap.client import ListrakClient, unreachable_is_config
from listrak_sync.streams import STREAM_NAMES, STREAMS_BY_NAME

GROUP = "listrak"
REDACT = RedactingFilter()  # every password a run used: no failure Dagster records may show one


def asset_key(table: str) -> AssetKey:
    """The asset of one table: ``listrak/<table>``."""
    return AssetKey([GROUP, table])


class ListrakTranslator(DagsterDltTranslator):
    """Asset keys, lineage (parent table to child) and descriptions from the stream table."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> AssetSpec:
        stream = STREAMS_BY_NAME[data.resource.name]
        return super().get_asset_spec(data).replace_attributes(
            key=asset_key(stream.name),
            deps=[asset_key(stream.parent)] if stream.parent else [],
            description=stream.description,
            group_name=GROUP,
            # An account may replicate only some tables (its `tables` setting): the others are
            # skipped, not failed, when every asset is selected.
            skippable=True,
        )


def build_defs() -> Definitions:
    """The definitions for the settings in force: the current directory's ``.dlt``, the environment.

    Raises:
        ConfigError: the configuration has an unknown key or an unusable account name.
    """
    names = account_names()
    source, pipeline = _asset_shape()

    @dlt_assets(
        dlt_source=source,
        dlt_pipeline=pipeline,
        name="listrak",
        dagster_dlt_translator=ListrakTranslator(),
        partitions_def=StaticPartitionsDefinition(names) if names else None,
    )
    def listrak_tables(context: AssetExecutionContext, dlt: DagsterDltResource) -> Iterator[MaterializeResult]:
        """Replicate the partition's account (or, unpartitioned, the shared settings)."""
        yield from materialize(context, dlt)

    # One step per run (all nine tables load together, in one dlt pipeline), so the default
    # multiprocess executor would only add a child process that imports everything again (~10 s).
    verify_check = build_verify_check(names, asset_key, account_settings, REDACT.redact)  # docs/verify.md
    return Definitions(assets=[listrak_tables], asset_checks=[verify_check], resources={"dlt": DagsterDltResource()},
                       executor=in_process_executor)


def _asset_shape() -> tuple[DltSource, Pipeline]:
    """A source and pipeline that only describe the assets: dagster-dlt reads their resources when
    the definitions load. No run uses them, and nothing is sent: each run builds its own from its
    account's settings."""
    placeholder = Settings.from_mapping({"username": "-", "password": "-", "start_date": "2000-01-01"})
    with ListrakClient(placeholder) as client:
        source = build_source(placeholder, client)
    workdir = tempfile.mkdtemp(prefix="listrak-sync-defs-")
    try:
        pipeline = dlt.pipeline(pipeline_name="listrak_sync_assets", pipelines_dir=workdir)
        pipeline.deactivate()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return source, pipeline


def materialize(context: AssetExecutionContext, runner: DagsterDltResource) -> Iterator[MaterializeResult]:
    """Replicate the selected tables of one account, as ``listrak-sync run --account`` would.

    Args:
        context: the asset context: its partition is the account, its selection the tables.
        runner: dagster-dlt's resource, which runs the pipeline and reports dlt's metadata.

    Yields:
        One materialization per table replicated, with the run's summary as metadata.

    Raises:
        Failure: the run failed; the description is the CLI's one-line error, no password in it.
    """
    account = context.partition_key if context.has_partition_key else None
    materialized: list[MaterializeResult] = []

    def run_pipeline(pipeline: Pipeline, source: DltSource) -> None:
        materialized.extend(result for result in runner.run(context=context, dlt_source=source, dlt_pipeline=pipeline)
                            if isinstance(result, MaterializeResult))

    try:
        settings, target = account_settings(account)
        tables = _tables(context, settings, account)
        if not tables:
            return
        settings = dataclasses.replace(settings, tables=tables)
        progress = RunProgress()
        with ListrakClient(settings) as client, unreachable_is_config(client), \
                display(progress, client.stats.as_dict, interactive=False):
            summary = replicate(settings, destination=target.destination, duckdb_path=target.duckdb,
                                dataset=target.dataset, client=client, progress=progress,
                                lock_wait_seconds=target.lock_wait_seconds, run_pipeline=run_pipeline,
                                duckdb_memory_limit=target.duckdb_memory_limit)
    except ListrakSyncError as exc:
        raise Failure(description=REDACT.redact(str(exc)), allow_retries=isinstance(exc, TransientError)) from None
    context.log.info(f"Account {account or '(shared settings)'}:\n{summary.render()}")
    for result in materialized:
        table = result.asset_key.path[-1] if result.asset_key else ""
        yield MaterializeResult(asset_key=result.asset_key,
                                metadata={**(result.metadata or {}), **summary_metadata(summary, table, account)})


def account_settings(account: str | None) -> tuple[Settings, RunTarget]:
    """One account's settings (the shared ones for None), as ``listrak-sync run`` resolves them.

    Raises:
        ConfigError: a setting is missing (there is no prompt here) or malformed.
    """
    values, run_target = gather({}, account)
    for secret in ("password", "client_secret"):
        if values.get(secret):
            REDACT.secrets.add(str(values[secret]))
    rest_only = bool(values.get("client_id")) and bool(values.get("client_secret")) and not (
        values.get("username") or values.get("password"))
    for name in ("start_date",) if rest_only else ("username", "password", "start_date"):
        if not values.get(name):
            owner = f" for account {account!r}" if account else ""
            raise ConfigError(f"No Listrak {name}{owner}. Set {where_to_set(name, account)}.")
    return Settings.from_mapping(values), run_target


def _tables(context: AssetExecutionContext, settings: Settings, account: str | None) -> tuple[str, ...]:
    selected = {key.path[-1] for key in context.selected_asset_keys}
    tables = tuple(t for t in STREAM_NAMES if t in selected and (not settings.tables or t in settings.tables))
    left_out = sorted(selected - set(tables))
    if left_out:
        context.log.info(f"Account {account or '(shared settings)'} does not replicate {', '.join(left_out)} "
                         "(its tables setting): skipped.")
    return tables


def summary_metadata(summary: RunSummary, table: str, account: str | None) -> dict[str, Any]:
    """The run's summary as one table's asset metadata."""
    return {
        "rows": MetadataValue.int(summary.rows.get(table, 0)),
        "requests": MetadataValue.int(summary.total_requests),
        "table_requests": MetadataValue.int(summary.requests.get(STREAMS_BY_NAME[table].operation, 0)),
        "requests_by_operation": MetadataValue.json(summary.requests),
        "retries": MetadataValue.int(summary.retries),
        "skipped": MetadataValue.json(summary.skipped),
        "incomplete": MetadataValue.json(summary.incomplete),
        "mode": MetadataValue.text(summary.mode),
        "account": MetadataValue.text(account or ""),
        "dataset": MetadataValue.text(summary.dataset),
        "location": MetadataValue.text(summary.location),
        "seconds": MetadataValue.float(round(summary.seconds, 3)),
    }


defs = definitions(build_defs)
"""The definitions Dagster loads (``dagster ... -m listrak_sync.integrations.dagster``): built by
:func:`build_defs` when Dagster asks for them. Call ``defs()`` for the ``Definitions``."""

__all__ = ["ListrakTranslator", "account_settings", "asset_key", "build_defs", "defs", "materialize",
           "summary_metadata"]
