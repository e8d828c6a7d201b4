"""Dagster assets: one per table, loaded through dagster-dlt, partitioned by named account.

    dagster asset materialize -m listrak_sync.dagster --select '*'
    dagster asset materialize -m listrak_sync.dagster --select '*' --partition brand_a

``defs`` comes from the same settings as ``listrak-sync run``, read by
:func:`listrak_sync.run_settings.gather` in the directory Dagster runs in: ``LISTRAK_*``,
``SOURCES__LISTRAK__*``, ``[sources.listrak]`` and its named accounts in ``.dlt/*.toml``, and
the destination's credentials the dlt way (``DESTINATION__POSTGRES__CREDENTIALS``). With named
accounts the assets are partitioned by account, one run per account; without, they are not
partitioned at all, so that the first command above needs no ``--partition``.

Every materialization keeps what :func:`listrak_sync.runner.replicate` guarantees. dagster-dlt's
``DagsterDltResource.run`` drives a pipeline built here the way the runner builds it: the
atomic destination of :func:`~listrak_sync.destinations.resolve_target`, a private temporary
working folder per run, :func:`~listrak_sync.destinations.dataset_lock`, and the incremental
plan restored from the destination (dlt's ``restore_from_destination``, on by default, makes
``pipeline.run`` read the state back before it extracts; dagster-dlt's ``pipeline.drop()``
before it empties a folder that is empty anyway). The run's summary (rows, requests, retries,
skipped lists and messages, mode) is each asset's metadata, next to dagster-dlt's own.
"""

# No `from __future__ import annotations`: Dagster reads the asset function's annotations at
# definition time (the context's type, and the resource's) and refuses them as strings.
import dataclasses
import os
import shutil
import tempfile
import time
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
    in_process_executor,
)
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData
from dlt.extract.source import DltSource
from dlt.pipeline.pipeline import Pipeline

from listrak_sync.config import Settings
from listrak_sync.destinations import Target, check_dataset_name, dataset_lock, resolve_target
from listrak_sync.engine import RunMode
from listrak_sync.errors import ConfigError, ListrakSyncError, TransientError
from listrak_sync.extract import Extractor
from listrak_sync.logs import RedactingFilter
from listrak_sync.progress import RunProgress, display
from listrak_sync.run_settings import RunTarget, account_names, gather, where_to_set
from listrak_sync.runner import RunSummary, pipeline_name_for, quiet_dlt, user_error
from listrak_sync.soap.client import ListrakClient, unreachable_is_config
from listrak_sync.source import build_source
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
    return Definitions(assets=[listrak_tables], resources={"dlt": DagsterDltResource()},
                       executor=in_process_executor)


def _asset_shape() -> tuple[DltSource, Pipeline]:
    """A source and pipeline that only describe the assets: dagster-dlt reads their resources when
    the definitions load. No run uses them; each builds its own from its account's settings."""
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
    try:
        settings, run_target = account_settings(account)
        tables = _tables(context, settings, account)
        if not tables:
            return
        results, summary = _replicate(context, runner, dataclasses.replace(settings, tables=tables), run_target)
    except ListrakSyncError as exc:
        raise Failure(description=REDACT.redact(str(exc)), allow_retries=isinstance(exc, TransientError)) from None
    context.log.info(f"Account {account or '(shared settings)'}:\n{summary.render()}")
    for result in results:
        table = result.asset_key.path[-1] if result.asset_key else ""
        yield MaterializeResult(asset_key=result.asset_key,
                                metadata={**(result.metadata or {}), **summary_metadata(summary, table, account)})


def account_settings(account: str | None) -> tuple[Settings, RunTarget]:
    """One account's settings (the shared ones for None), as ``listrak-sync run`` resolves them.

    Raises:
        ConfigError: a setting is missing (there is no prompt here) or malformed.
    """
    values, run_target = gather({}, account)
    for name in ("username", "password", "start_date"):
        if not values.get(name):
            owner = f" for account {account!r}" if account else ""
            raise ConfigError(f"No Listrak {name}{owner}. Set {where_to_set(name, account)}.")
    REDACT.secrets.add(str(values["password"]))
    return Settings.from_mapping(values), run_target


def _tables(context: AssetExecutionContext, settings: Settings, account: str | None) -> tuple[str, ...]:
    selected = {key.path[-1] for key in context.selected_asset_keys}
    tables = tuple(t for t in STREAM_NAMES if t in selected and (not settings.tables or t in settings.tables))
    left_out = sorted(selected - set(tables))
    if left_out:
        context.log.info(f"Account {account or '(shared settings)'} does not replicate {', '.join(left_out)} "
                         "(its tables setting): skipped.")
    return tables


def _replicate(context: AssetExecutionContext, runner: DagsterDltResource, settings: Settings,
               run_target: RunTarget) -> tuple[list[MaterializeResult], RunSummary]:
    """``runner.replicate``'s run, with dagster-dlt driving the pipeline."""
    started = time.monotonic()
    dataset = check_dataset_name(run_target.dataset)
    target = resolve_target(run_target.destination, duckdb_path=run_target.duckdb,
                            lock_wait_seconds=run_target.lock_wait_seconds)
    # As the runner does: no usage reports to dlt's makers, and staging copies only while loading.
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("LOAD__TRUNCATE_STAGING_DATASET", "true")
    modes: list[RunMode] = []
    progress = RunProgress()
    with ListrakClient(settings) as client, unreachable_is_config(client), dataset_lock(target, dataset), \
            tempfile.TemporaryDirectory(prefix="listrak-sync-run-", ignore_cleanup_errors=True) as workdir, \
            quiet_dlt(), display(progress, client.stats.as_dict, interactive=False):
        extractor = Extractor(client, settings, progress=progress)
        pipeline = dlt.pipeline(pipeline_name=pipeline_name_for(dataset), destination=target.factory,
                                dataset_name=dataset, pipelines_dir=workdir)
        source = build_source(settings, client, extractor=extractor, full_refresh=not target.incremental,
                              full_refresh_reason=None if target.incremental else
                              f"the {target.name} destination cannot merge, so every run replaces its tables",
                              on_mode=modes.append)
        results = _run(context, runner, source, pipeline, target)
        trace = pipeline.last_trace
        row_counts = dict(trace.last_normalize_info.row_counts) if trace and trace.last_normalize_info else {}
    stats = client.stats.as_dict()
    summary = RunSummary(
        rows={name: int(row_counts.get(name, 0)) for name in settings.tables or STREAM_NAMES},
        requests=dict(stats.get("requests", {})),
        retries=int(stats.get("retries", 0)),
        skipped=[str(e) for e in extractor.skipped],
        seconds=time.monotonic() - started,
        destination=target.name,
        location=target.location,
        dataset=dataset,
        mode=", ".join(f"full refresh: {m.reason}" if m.full else m.reason for m in modes),
        incremental=any(not m.full for m in modes),
    )
    return results, summary


def _run(context: AssetExecutionContext, runner: DagsterDltResource, source: DltSource, pipeline: Pipeline,
         target: Target) -> list[MaterializeResult]:
    try:
        return [r for r in runner.run(context=context, dlt_source=source, dlt_pipeline=pipeline)
                if isinstance(r, MaterializeResult)]
    except (ListrakSyncError, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise user_error(exc, target=target) from None


def summary_metadata(summary: RunSummary, table: str, account: str | None) -> dict[str, Any]:
    """The run's summary as one table's asset metadata."""
    return {
        "rows": MetadataValue.int(summary.rows.get(table, 0)),
        "requests": MetadataValue.int(summary.total_requests),
        "table_requests": MetadataValue.int(summary.requests.get(STREAMS_BY_NAME[table].operation, 0)),
        "requests_by_operation": MetadataValue.json(summary.requests),
        "retries": MetadataValue.int(summary.retries),
        "skipped": MetadataValue.json(summary.skipped),
        "mode": MetadataValue.text(summary.mode),
        "account": MetadataValue.text(account or ""),
        "dataset": MetadataValue.text(summary.dataset),
        "location": MetadataValue.text(summary.location),
        "seconds": MetadataValue.float(round(summary.seconds, 3)),
    }


defs = build_defs()

__all__ = ["ListrakTranslator", "account_settings", "asset_key", "build_defs", "defs", "materialize",
           "summary_metadata"]
