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
- **One writer per dataset.** A second run into the same dataset fails at once (exit 2).
"""

from __future__ import annotations

import hashlib
import logging
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import dlt
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.common.destination import Destination
from dlt.common.destination.exceptions import DestinationUndefinedEntity
from dlt.destinations.exceptions import DestinationConnectionError
from dlt.extract import DltSource

from listrak_sync.engine import RunMode
from listrak_sync.errors import ConfigError, ListrakSyncError
from listrak_sync.extract import Extractor
from listrak_sync.pipeline.destinations import (
    DEFAULT_DATASET,
    DEFAULT_DUCKDB_MEMORY_LIMIT,
    DEFAULT_LOCK_WAIT_SECONDS,
    Target,
    check_dataset_name,
    is_lock_conflict,
    lock_error,
    messages_held,
    resolve_target,
)
from listrak_sync.pipeline.dlt_compat import run_defaults, schema_update_clash
from listrak_sync.pipeline.locks import run_lock
from listrak_sync.pipeline.source import build_source
from listrak_sync.process import release_free_memory
from listrak_sync.progress import RunProgress
from listrak_sync.settings import Settings
from listrak_sync.soap.client import ListrakClient
from listrak_sync.streams import STREAM_NAMES

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
    seconds: float = 0.0
    destination: str = ""
    location: str = ""
    dataset: str = ""
    mode: str = ""
    incremental: bool = False

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
        if self.incremental:
            lines.append("Rows loaded by this run (an incremental run re-reads only what changed; "
                         "the tables hold everything):")
        width = max((len(n) for n in self.rows), default=10)
        lines += [f"  {name:<{width}}  {count:>10,} rows" for name, count in self.rows.items()]
        lines.append(f"Requests: {self.total_requests:,} ({self.retries} retried)")
        lines += [f"  {op:<36} {count:>8,}" for op, count in sorted(self.requests.items())]
        if self.skipped:
            lines.append(f"Skipped {len(self.skipped)} refused lists/messages:")
            lines += [f"  {text}" for text in self.skipped]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "requests": self.requests,
            "total_requests": self.total_requests,
            "retries": self.retries,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
            "destination": self.destination,
            "location": self.location,
            "dataset": self.dataset,
            "mode": self.mode,
            "incremental": self.incremental,
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
            folder, destination, plan and summary stay this function's.

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
    modes: list[RunMode] = []
    own_client = client is None
    client = client or ListrakClient(settings)
    progress = progress or RunProgress()
    extractor = Extractor(client, settings, progress=progress, now=clock)
    try:
        with run_lock(target, dataset, shard), _working_dir(pipelines_dir) as workdir, _quiet_dlt(), \
                run_defaults(DLT_DEFAULTS):
            pipeline = dlt.pipeline(
                pipeline_name=pipeline_name_for(dataset, shard),
                destination=target.factory,
                dataset_name=dataset,
                pipelines_dir=workdir,
            )
            progress.phase("connecting")
            _step("sync", target, pipeline.sync_destination)
            held = _step("sync", target, lambda: messages_held(pipeline) if target.incremental else {})
            source = build_source(settings, client, extractor=extractor,
                                  full_refresh=full_refresh or not target.incremental,
                                  full_refresh_reason=None if target.incremental else
                                  f"the {target.name} destination cannot merge, so every run replaces its tables",
                                  on_mode=modes.append, known_messages=held)
            progress.phase("extract")
            if run_pipeline is not None:
                _step("", target, lambda: run_pipeline(pipeline, source))
            else:
                _step("extract", target, lambda: pipeline.extract(source))
                release_free_memory()
                progress.phase("normalize")
                _step("normalize", target, pipeline.normalize)
                release_free_memory()
                progress.phase("load")
                _step("load", target, lambda: _load(pipeline, one_writer=target.name == "duckdb"))
            progress.phase("done")
            trace = pipeline.last_trace
            row_counts = dict(trace.last_normalize_info.row_counts) if trace and trace.last_normalize_info else {}
    finally:
        if own_client:
            client.close()
    stats = client.stats.as_dict()
    return RunSummary(
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
            if attempt == attempts or not any(schema_update_clash(e) for e in _chain(exc)):
                raise
            log.info("Another writer changed the dataset's tables at the same time; loading again (%d)", attempt)
            time.sleep(random.uniform(0.5, 1.5) * attempt)  # noqa: S311 (jitter, not secrecy)
    raise AssertionError("unreachable")


def _step(name: str, target: Target, action: Any) -> Any:
    try:
        return action()
    except (ListrakSyncError, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise _unwrap(exc, step=name or None, target=target) from None


@contextmanager
def _working_dir(given: str | None) -> Iterator[str]:
    if given:
        yield given
        return
    path = tempfile.mkdtemp(prefix="listrak-sync-run-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _unwrap(exc: BaseException, *, step: str | None = None, target: Target | None = None) -> BaseException:
    """The error a user should see for a failure inside dlt: the cause first, in one line.

    A Listrak error inside dlt's wrapper comes out as it is; an interrupt stays an interrupt;
    missing destination settings and a destination that refuses the connection are
    configuration errors (exit 2) naming what to set; anything else names the failed step.
    """
    destination = target.name if target else "destination"
    for current in _chain(exc):
        if isinstance(current, (ListrakSyncError, KeyboardInterrupt)):
            return current
        if isinstance(current, ConfigFieldMissingException):
            names = ", ".join(_missing_keys(current)) or ", ".join(current.fields)
            return ConfigError(
                f"The {destination} destination is missing {names}. Set it the dlt way: an environment "
                f"variable (e.g. DESTINATION__{destination.upper()}__CREDENTIALS=<connection string with "
                f"its password>) or [destination.{destination}] in .dlt/secrets.toml."
            )
        if is_lock_conflict(current):
            return lock_error(target.location if target else "", str(current))
        if isinstance(current, (DestinationConnectionError, DestinationUndefinedEntity)) or (
            type(current).__module__.startswith(("psycopg2", "psycopg")) and "Operational" in type(current).__name__
        ):
            return ConfigError(
                f"Cannot use the {destination} destination: {_first_line(current.__cause__ or current)}. "
                f"Check its host, port, database and role in DESTINATION__{destination.upper()}__CREDENTIALS."
            )
        if destination == "duckdb" and "Out of Memory Error" in str(current):
            return ListrakSyncError(
                "DuckDB ran out of the memory it may use while loading (duckdb_memory_limit). Raise it, "
                "e.g. LISTRAK_DUCKDB_MEMORY_LIMIT=256MB, and run again; every table holds its last complete load."
            )
    failed = step or getattr(exc, "step", "run")
    inner = getattr(exc, "exception", exc)
    return ListrakSyncError(
        f"The {failed} step failed: {_first_line(inner)}. Every table holds its last complete load; "
        "fix the cause and run again."
    )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = getattr(current, "exception", None) or current.__cause__ or current.__context__


def _missing_keys(error: ConfigFieldMissingException) -> list[str]:
    """The innermost setting names dlt looked for and did not find (e.g. ``credentials.password``)."""
    names: list[str] = []
    for name, traces in error.traces.items():
        inner = [key for trace in traces for key in getattr(trace, "traces", {})]
        names += [f"{name}.{key}" for key in inner] or [name]
    return sorted(set(names))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class _quiet_dlt:
    """Route dlt's log records through our own logging: one format, redacted, only what matters.

    dlt logs through its own handler (not ours, so not redacted) and warns about things we
    handle on purpose. Its records are re-emitted under ``listrak_sync.dlt``: errors always,
    warnings with ``-v``, everything with ``--debug``.
    """

    def __enter__(self) -> None:
        self._logger = logging.getLogger("dlt")
        self._level = self._logger.level
        debug = log.isEnabledFor(logging.DEBUG)
        self._filter = _DltRecords(logging.DEBUG if debug else logging.WARNING if log.isEnabledFor(logging.INFO)
                                   else logging.ERROR)
        if debug:
            self._logger.setLevel(logging.DEBUG)
        self._logger.addFilter(self._filter)

    def __exit__(self, *exc: object) -> None:
        self._logger.setLevel(self._level)
        self._logger.removeFilter(self._filter)


class _DltRecords(logging.Filter):
    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level
        self.target = logging.getLogger("listrak_sync.dlt")

    def filter(self, record: logging.LogRecord) -> bool:
        if self.level > logging.DEBUG:
            # The run ends in one line of its own that names the cause; dlt's tracebacks, and
            # its notices of a job it will retry, are for --debug.
            record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
            if record.getMessage().startswith("Transient exception in job"):
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        if record.levelno >= self.level and not _expected_notice(record):
            self.target.handle(record)
        return False  # dlt's own handler never prints


def _expected_notice(record: logging.LogRecord) -> bool:
    text = record.getMessage()
    # We hand dlt JSON text for json columns on purpose (every destination loads it), and our
    # DuckDB client qualifies names with the catalog, so a dataset may share the file's name.
    return "when merging arrow schema with dlt schema" in text or "identical to the dataset name" in text
