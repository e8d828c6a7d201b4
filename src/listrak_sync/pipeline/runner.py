"""Run a replication: the dlt pipeline around the source, and its summary.

What a run guarantees (each point is tested by killing runs at every load statement):

- **Each table lands whole.** Rows load into a staging dataset first, then each destination
  table is replaced (or, in an incremental run, merged) from it in one transaction
  (see :mod:`listrak_sync.pipeline.destinations` for DuckDB). A run killed at any point leaves every
  table as the last complete load or the new one, never half of either.
- **The plan lives with the data.** The incremental plan is dlt state, stored in the
  destination in the same load as the rows and read back only from loads that completed.
  Every run starts from a fresh, private dlt working folder, so nothing local can disagree
  with the destination: a restored backup, another file or another machine all continue from
  what that destination holds, and two runs into different datasets never share files.
- **A killed run is not lost.** The extract keeps each activity unit it finishes in a checkpoint
  beside the dataset, and the next run with the same settings serves those units from there
  instead of fetching them (:mod:`listrak_sync.pipeline.checkpoint`; DuckDB and PostgreSQL).
  The checkpoint is dropped once the load completed.
- **One writer per dataset.** A second run into the same dataset fails at once (exit 2).
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import dlt
from dlt.common.destination import Destination
from dlt.extract import DltSource

from listrak_sync.engine import RunMode
from listrak_sync.errors import ConfigError, ListrakSyncError, ObjectRefusedError, ObjectSkippedError
from listrak_sync.extract import Extractor
from listrak_sync.pipeline.checkpoint import (
    RESUMABLE_DESTINATIONS,
    Checkpoint,
    checkpoint_dataset,
    discard,
    fingerprint,
)
from listrak_sync.pipeline.destinations import (
    DEFAULT_DATASET,
    DEFAULT_DUCKDB_MEMORY_LIMIT,
    DEFAULT_LOCK_WAIT_SECONDS,
    Target,
    check_dataset_name,
    drop_staging_if_empty,
    is_lock_conflict,
    messages_held,
    resolve_target,
)
from listrak_sync.pipeline.dlt_compat import run_defaults, schema_update_clash
from listrak_sync.pipeline.dlt_logs import quiet_dlt
from listrak_sync.pipeline.failures import disk_full, error_chain, explain, first_line
from listrak_sync.pipeline.locks import run_lock
from listrak_sync.pipeline.source import SOURCE_NAME, RepairChoice, build_source, has_rest, has_soap
from listrak_sync.pipeline.workdir import working_dir
from listrak_sync.process import release_free_memory
from listrak_sync.progress import RunProgress
from listrak_sync.settings import Settings
from listrak_sync.soap.client import ListrakClient
from listrak_sync.streams import REST_TABLE_NAMES, STREAM_NAMES

log = logging.getLogger(__name__)

DLT_DEFAULTS = {
    # The staging copies are only needed during the load; keep the destination half the size.
    "load.truncate_staging_dataset": True,
    # The activity transformers one after another: each runs its own pool of `concurrency`
    # workers, and round-robin kept up to four pools (36 threads) alive at once for the same
    # 8 requests in flight (peak RSS of the extract on medium: 285 -> 250 MiB).
    "extract.next_item_mode": "fifo",
}
"""dlt settings of every run, unless the user configured them: for this run's steps only, not
the process's other pipelines (see :func:`listrak_sync.pipeline.dlt_compat.run_defaults`)."""


@dataclass
class RunSummary:
    """What a run did: rows per table, requests per operation, retries, skips, time."""

    rows: dict[str, int] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    skipped: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    short: list[dict[str, Any]] = field(default_factory=list)
    repeated_rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    destination: str = ""
    location: str = ""
    dataset: str = ""
    mode: str = ""
    incremental: bool = False
    example_table: str = ""
    """A table of the run as a user types it (``listrak.messages``), or its folder for files."""
    units: int = 0
    resumed_units: int = 0

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def render(self) -> str:
        """The summary as the CLI prints it."""
        where = self.location if self.location != self.destination else ""
        lines = [
            f"Replicated into {self.destination} {where + ' ' if where else ''}dataset {self.dataset!r} "
            f"in {self.seconds:.1f}s ({self.mode})."
        ]
        if self.example_table.endswith("/"):
            lines.append(f"Files: {self.example_table}")
        elif self.example_table:
            lines.append(f"Query: SELECT count(*) FROM {self.example_table}")  # noqa: S608 (shown, not run)
        if self.incremental:
            lines.append("Rows loaded by this run (an incremental run re-reads only what changed; "
                         "the tables hold everything):")
        width = max((len(n) for n in self.rows), default=10)
        lines += [f"  {name:<{width}}  {count:>10,} rows" for name, count in self.rows.items()]
        if self.resumed_units:
            lines.append(f"Resumed: {self.resumed_units:,} of {self.units:,} work units came from the checkpoint "
                         "of an interrupted run.")
        lines.append(f"Requests: {self.total_requests:,} ({self.retries} retried)")
        lines += [f"  {op:<36} {count:>8,}" for op, count in sorted(self.requests.items())]
        if self.skipped:
            lines.append(f"Skipped {len(self.skipped)} refused lists/messages:")
            lines += [f"  {text}" for text in self.skipped]
        if self.repeated_rows:
            lines.append(f"Dropped {sum(self.repeated_rows.values()):,} rows the service sent twice (repeated "
                         "across pages or lists): " + ", ".join(f"{t} {n:,}" for t, n in self.repeated_rows.items()))
        if self.short:
            lines.append(f"Short of their counters ({len(self.short)}; kept, and read again next run):")
            lines += [f"  {s['stream']} of message {s['msg_id']}: {s['fetched']:,} rows of {s['counted']:,} counted"
                      for s in self.short]
        if self.incomplete:
            lines.append(f"Incomplete: the pages of {len(self.incomplete)} lists/messages never ended; "
                         "their rows stop where they did (exit 5), and the next run asks them again:")
            lines += [f"  {text}" for text in self.incomplete]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "requests": self.requests,
            "total_requests": self.total_requests,
            "retries": self.retries,
            "skipped": self.skipped,
            "incomplete": self.incomplete,
            "short": self.short,
            "repeated_rows": self.repeated_rows,
            "seconds": round(self.seconds, 3),
            "destination": self.destination,
            "location": self.location,
            "dataset": self.dataset,
            "mode": self.mode,
            "incremental": self.incremental,
            "units": self.units,
            "resumed_units": self.resumed_units,
        }


def pipeline_name_for(dataset: str, lists: Sequence[int] | None = None) -> str:
    """The dlt pipeline name a dataset (or a list shard of it) is replicated with; its plan lives under it."""
    return f"listrak_sync_{dataset}" + (f"_{shard_tag(lists)}" if lists else "")


def shard_tag(lists: Sequence[int]) -> str:
    """A short, stable name for a set of lists (``lists_12_34``, or a hash for many)."""
    ids = sorted(set(lists))
    return "lists_" + ("_".join(map(str, ids)) if len(ids) <= 4 else
                       hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:12])


def replicate(
    settings: Settings,
    *,
    destination: str | Destination = "duckdb",
    duckdb_path: str | None = None,
    dataset: str = DEFAULT_DATASET,
    client: ListrakClient | None = None,
    pipelines_dir: str | None = None,
    full_refresh: bool = False,
    progress: RunProgress | None = None,
    lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS,
    duckdb_memory_limit: str = DEFAULT_DUCKDB_MEMORY_LIMIT,
    clock: Callable[[], datetime] | None = None,
    run_pipeline: Callable[[dlt.Pipeline, DltSource], object] | None = None,
    repair: RepairChoice | None = None,
    resume: bool = True,
    rest_client: Any | None = None,
) -> RunSummary:
    """Replicate the account into the destination and report what happened.

    Args:
        settings: validated settings.
        destination: a dlt destination name or factory.
        duckdb_path: the DuckDB file, when ``destination`` is ``duckdb`` (relative to the
            current directory; default ``listrak_sync.duckdb``).
        dataset: the dataset (schema) to load into.
        client: a client to use (the caller may watch its counters); made here if not given.
        pipelines_dir: dlt's working folder; by default a private temporary one per run,
            removed afterwards (the destination holds everything a later run needs).
        full_refresh: re-pull and replace everything, even where an incremental run would do.
        progress: told the run's phases, planned work and rows as they happen.
        lock_wait_seconds: how long to wait while another process holds the DuckDB file.
        duckdb_memory_limit: DuckDB's ``memory_limit`` during the run (``duckdb`` only).
        clock: the current time, aware (default: the service's clock, ``ListrakClient.service_now``).
        run_pipeline: runs the pipeline on the source in place of the extract, normalize and
            load steps here (the Dagster assets hand both to dagster-dlt); the lock, working
            folder, destination, plan and summary stay this function's. Such a run keeps no
            checkpoint (extract and load are one step there).
        resume: keep a checkpoint as the run goes, and serve what an interrupted run kept
            (DuckDB and PostgreSQL; :mod:`listrak_sync.pipeline.checkpoint`).
        repair: re-read only the ``(table, MsgID)`` pairs this chooses once the messages are
            read, merged in one load (``listrak-sync verify --repair``, :mod:`.verify`).
        rest_client: a REST client to use; made here when the settings have REST credentials
            (``settings.has_rest``), and the REST tables are then loaded too.

    Returns:
        The run's summary.

    Raises:
        ConfigError: a bad destination, path or dataset name, or another run holds the dataset.
        ListrakSyncError: the run failed; every table is as it was or fully loaded.
    """
    started = time.monotonic()
    check_dataset_name(dataset)
    shard = settings.list_ids
    target = resolve_target(destination, duckdb_path=duckdb_path, lock_wait_seconds=lock_wait_seconds,
                            duckdb_memory_limit=duckdb_memory_limit,
                            staging_layout=f"%s_staging_{shard_tag(shard)}" if shard else None)
    if shard and not target.incremental:
        raise ConfigError(
            f"A run of some lists (--lists) merges their rows into the dataset, and the {target.name} "
            "destination cannot merge. Run every list, or load into duckdb, postgres or another SQL destination."
        )
    checkpoint_name = checkpoint_dataset(dataset, shard_tag(shard) if shard else None)
    modes: list[RunMode] = []
    own_client = client is None
    client = client or ListrakClient(settings)
    progress = progress or RunProgress()
    extractor = Extractor(client, settings, progress=progress, now=clock)
    rest_skipped: list[ObjectSkippedError] = []
    own_rest = rest_client is None and has_rest(settings)
    if own_rest:
        from listrak_sync.rest.client import RestClient  # the REST client (issue 19 part 1)

        rest_client = RestClient(settings)
    try:
        with run_lock(target, dataset, shard), working_dir(pipelines_dir) as workdir, quiet_dlt(), \
                run_defaults(DLT_DEFAULTS):
            pipeline = dlt.pipeline(
                pipeline_name=pipeline_name_for(dataset, shard),
                destination=target.factory,
                dataset_name=dataset,
                pipelines_dir=workdir,
            )
            progress.phase("connecting")
            run_step("sync", target, pipeline.sync_destination)
            held = run_step("sync", target, lambda: messages_held(pipeline) if target.incremental else {})
            # Dagster (run_pipeline) loads in the same step as the extract; a repair re-reads on purpose.
            checkpoint = None if run_pipeline is not None or repair is not None or not resume else _open_checkpoint(
                pipeline, target, settings, checkpoint_name, full_refresh=full_refresh or not target.incremental)
            source = build_source(settings, client, extractor=extractor, checkpoint=checkpoint,
                                  full_refresh=full_refresh or not target.incremental,
                                  full_refresh_reason=None if target.incremental else
                                  f"the {target.name} destination cannot merge, so every run replaces its tables",
                                  on_mode=modes.append, known_messages=held, repair=repair,
                                  rest_client=rest_client, rest_skipped=rest_skipped)
            progress.phase("extract")
            if run_pipeline is not None:
                run_step("", target, lambda: run_pipeline(pipeline, source))
            else:
                try:
                    run_step("extract", target, lambda: pipeline.extract(source))
                except BaseException:
                    if checkpoint is not None:
                        checkpoint.close()
                        if checkpoint.empty:  # failed before any unit was kept: leave nothing behind
                            _discard_checkpoint(pipeline, checkpoint_name)
                    raise
                if checkpoint is not None:
                    checkpoint.close()
                release_free_memory()
                progress.phase("normalize")
                run_step("normalize", target, pipeline.normalize)
                release_free_memory()
                progress.phase("load")
                run_step("load", target, lambda: _load(pipeline, one_writer=target.name == "duckdb"))
                if checkpoint is not None:
                    _discard_checkpoint(pipeline, checkpoint_name)
            if target.incremental:  # a SQL destination: its staging dataset, emptied by the load
                drop_staging_if_empty(pipeline)
            progress.phase("done")
            trace = pipeline.last_trace
            row_counts = dict(trace.last_normalize_info.row_counts) if trace and trace.last_normalize_info else {}
    finally:
        if own_client:
            client.close()
        if own_rest and rest_client is not None:
            rest_client.close()
    stats = client.stats.as_dict()
    tables = settings.tables or ((STREAM_NAMES if has_soap(settings) else ()) +
                                 (REST_TABLE_NAMES if rest_client is not None else ()))
    rest_stats = rest_client.stats.as_dict() if rest_client is not None and hasattr(rest_client, "stats") else {}
    requests = dict(stats.get("requests", {}))
    if rest_client is not None:
        requests["REST"] = int(getattr(rest_client, "requests", 0))
    return RunSummary(
        rows={name: int(row_counts.get(name, 0)) for name in tables},
        requests=requests,
        retries=int(stats.get("retries", 0)) + int(rest_stats.get("retries", 0)),
        skipped=[str(e) for e in [*extractor.skipped, *rest_skipped] if isinstance(e, ObjectRefusedError)],
        short=[{"stream": e.stream, "msg_id": e.object_id, "fetched": e.fetched, "counted": e.counted}
               for e in extractor.short],
        incomplete=[str(e) for e in extractor.incomplete],
        repeated_rows=dict(stats.get("repeated_rows", {})),
        seconds=time.monotonic() - started,
        destination=target.name,
        location=target.location,
        dataset=dataset,
        mode=", ".join(f"full refresh: {m.reason}" if m.full else m.reason for m in modes),
        incremental=any(not m.full for m in modes),
        example_table=target.table_name(dataset, "messages" if "messages" in tables else tables[0]),
        units=progress.snapshot({}).units_total,
        resumed_units=progress.units_resumed,
    )


def _open_checkpoint(pipeline: dlt.Pipeline, target: Target, settings: Settings, name: str, *,
                     full_refresh: bool) -> Checkpoint | None:
    """The run's checkpoint, where the destination keeps one; a checkpoint that cannot be made
    costs the run its resumability, not its data."""
    if target.name not in RESUMABLE_DESTINATIONS:
        log.debug("The %s destination keeps no checkpoint: a killed run starts over.", target.name)
        return None
    plan = pipeline.state.get("sources", {}).get(SOURCE_NAME, {}).get("plan")
    try:
        checkpoint = Checkpoint.open(pipeline, name, fingerprint(settings, full_refresh=full_refresh, plan=plan))
    except ListrakSyncError:
        raise
    except Exception as exc:
        # A busy file or a full disk fails the load too: say so now, before any request.
        if any(is_lock_conflict(e) or disk_full(e) is not None for e in error_chain(exc)):
            raise explain(exc, target=target) from None
        log.warning("No checkpoint for this run (%s): if it is killed, the next run starts over.", first_line(exc))
        return None
    if checkpoint.stored:
        log.info("Resuming: %d work units are in the checkpoint of an interrupted run.", len(checkpoint.stored))
    return checkpoint


def _discard_checkpoint(pipeline: dlt.Pipeline, name: str) -> None:
    try:
        discard(pipeline, name)
    except Exception as exc:  # the load is complete; a leftover checkpoint is never used (its base is gone)
        log.warning("The checkpoint %s could not be dropped (%s); drop it by hand.", name, first_line(exc))


def _load(pipeline: dlt.Pipeline, *, one_writer: bool = False, attempts: int = 6) -> Any:
    """Load, retrying when another writer of the dataset (a list shard) updated its schema at
    the same time: dlt re-reads the destination and applies only what is missing, so a retry
    is safe (PostgreSQL reports such a clash as a deadlock)."""
    for attempt in range(1, attempts + 1):
        try:
            # One DuckDB file takes one writer at a time anyway; dlt's 20 load workers only
            # multiplied DuckDB's buffers (peak RSS on medium 360-388 MiB, 290 with one).
            return pipeline.load(workers=1) if one_writer else pipeline.load()
        except Exception as exc:
            if attempt == attempts or not any(schema_update_clash(e) for e in error_chain(exc)):
                raise
            log.info("Another writer changed the dataset's tables at the same time; loading again (%d)", attempt)
            time.sleep(random.uniform(0.5, 1.5) * attempt)  # noqa: S311 (jitter, not secrecy)
    raise AssertionError("unreachable")


def run_step(name: str, target: Target, action: Any) -> Any:
    """Run one step of a run; a failure becomes the one error a user should see (:func:`explain`)."""
    try:
        return action()
    except (ListrakSyncError, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise explain(exc, step=name or None, target=target) from None
