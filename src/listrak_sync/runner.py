"""Run a replication: the dlt pipeline around the source, and its summary.

Each run lands atomically per table: rows load into a staging dataset first (dlt's
``insert-from-staging`` replace, or a merge in an incremental run) and each destination table
is replaced or merged in one transaction only after everything was extracted and normalized,
together with the incremental plan in dlt's state. A run that fails or is killed part-way
therefore leaves the previous tables and plan as they were; its unfinished load packages are
dropped at the start of the next run, which works again from that last committed plan.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, cast

import dlt
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.common.destination.reference import Destination
from dlt.pipeline.exceptions import PipelineStepFailed

from listrak_sync.config import Settings
from listrak_sync.errors import ConfigError, ListrakSyncError
from listrak_sync.extract import Extractor
from listrak_sync.incremental import RunMode
from listrak_sync.soap.client import ListrakClient
from listrak_sync.source import build_source
from listrak_sync.streams import STREAM_NAMES

log = logging.getLogger(__name__)

DEFAULT_DUCKDB_PATH = "listrak.duckdb"
DEFAULT_DATASET = "listrak"
REPLACE_STRATEGY = "insert-from-staging"


@dataclass
class RunSummary:
    """What a run did: rows per table, requests per operation, retries, skips, time."""

    rows: dict[str, int] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    destination: str = ""
    dataset: str = ""
    mode: str = ""

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def render(self) -> str:
        """The summary as the CLI prints it."""
        lines = [f"Replicated into {self.destination} dataset {self.dataset!r} in {self.seconds:.1f}s ({self.mode})."]
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
            "dataset": self.dataset,
            "mode": self.mode,
        }


def make_destination(name: str = "duckdb", *, duckdb_path: str | None = None) -> Destination:
    """Resolve a dlt destination by name, set up for atomic table replacement.

    Args:
        name: a dlt destination name (``duckdb``, ``postgres``, ``filesystem``, ...).
        duckdb_path: the DuckDB file, for ``duckdb``.

    Returns:
        A destination factory.

    Raises:
        ConfigError: no destination has that name.
    """
    options: dict[str, Any] = {"replace_strategy": REPLACE_STRATEGY}
    if name == "duckdb":
        options["credentials"] = duckdb_path or DEFAULT_DUCKDB_PATH
    elif name == "filesystem":
        options = {}  # files are replaced whole; staging tables do not apply
    try:
        factory = Destination.from_reference(name, **options)
    except Exception as exc:  # dlt raises several types for an unknown or unloadable name
        raise ConfigError(
            f"Unknown or unavailable destination {name!r} ({type(exc).__name__}). "
            "Use a dlt destination name such as duckdb, postgres or filesystem, and install its "
            "extra (for example: pip install 'listrak-sync[postgres]')."
        ) from None
    if factory is None:
        raise ConfigError("No destination given: use a dlt destination name such as duckdb or postgres.")
    return factory


def pipeline_name_for(dataset: str) -> str:
    """The dlt pipeline name a dataset is replicated with (its state lives under it)."""
    return f"listrak_sync_{dataset}"


def replicate(
    settings: Settings,
    *,
    destination: str | Destination = "duckdb",
    duckdb_path: str | None = None,
    dataset: str = DEFAULT_DATASET,
    client: ListrakClient | None = None,
    pipelines_dir: str | None = None,
    full_refresh: bool = False,
) -> RunSummary:
    """Replicate the account into the destination and report what happened.

    Args:
        settings: validated settings.
        destination: a dlt destination name or factory.
        duckdb_path: the DuckDB file, when ``destination`` is ``duckdb``.
        dataset: the dataset (schema) to load into.
        client: a client to use (the caller may watch its counters); made here if not given.
        pipelines_dir: where dlt keeps its working files (default: dlt's own).
        full_refresh: re-pull and replace everything, even where an incremental run would do.

    Returns:
        The run's summary.

    Raises:
        ListrakSyncError: the run failed; the destination is as it was before.
    """
    started = time.monotonic()
    if isinstance(destination, str):
        destination_name = destination
        destination = make_destination(destination, duckdb_path=duckdb_path)
    else:
        destination_name = destination.destination_name
    modes: list[RunMode] = []
    own_client = client is None
    client = client or ListrakClient(settings)
    extractor = Extractor(client, settings)
    pipeline = dlt.pipeline(
        pipeline_name=pipeline_name_for(dataset),
        destination=destination,
        dataset_name=dataset,
        pipelines_dir=cast(str, pipelines_dir),  # None means dlt's default place
    )
    # Leftovers of a run that was killed part-way: drop them; this run redoes their work from
    # the last committed plan.
    abort = getattr(pipeline, "abort_packages", None) or pipeline.drop_pending_packages  # renamed in dlt 1.30
    abort()
    try:
        with _quiet_dlt():
            pipeline.run(build_source(settings, client, extractor=extractor, full_refresh=full_refresh,
                                      on_mode=modes.append))
    except PipelineStepFailed as exc:
        raise _unwrap(exc) from None
    finally:
        if own_client:
            client.close()
    trace = pipeline.last_trace
    row_counts = dict(trace.last_normalize_info.row_counts) if trace and trace.last_normalize_info else {}
    stats = client.stats.as_dict()
    return RunSummary(
        rows={name: int(row_counts.get(name, 0)) for name in settings.tables or STREAM_NAMES},
        requests=dict(stats.get("requests", {})),
        retries=int(stats.get("retries", 0)),
        skipped=[str(e) for e in extractor.skipped],
        seconds=time.monotonic() - started,
        destination=destination_name,
        dataset=dataset,
        mode=", ".join(("full refresh: " if m.full else "") + m.reason for m in modes),
    )


def _unwrap(exc: BaseException) -> BaseException:
    """The Listrak error inside dlt's wrapper, or a clean error naming the failed step."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ListrakSyncError):
            return current
        if isinstance(current, ConfigFieldMissingException):
            missing = ", ".join(current.fields)
            return ConfigError(
                f"The destination is missing configuration ({missing}): give it the dlt way, e.g. "
                "DESTINATION__POSTGRES__CREDENTIALS=postgresql://user:password@host:5432/db or .dlt/secrets.toml."
            )
        current = getattr(current, "exception", None) or current.__cause__ or current.__context__
    step = getattr(exc, "step", "run")
    inner = getattr(exc, "exception", exc)
    text = str(inner).strip().splitlines()[0] if str(inner).strip() else type(inner).__name__
    return ListrakSyncError(
        f"The {step} step failed: {text}. The destination was left as it was; "
        "fix the cause and run again."
    )


class _quiet_dlt:
    """Keep dlt's own INFO chatter off the user's terminal unless they asked for DEBUG."""

    def __enter__(self) -> None:
        self._logger = logging.getLogger("dlt")
        self._level = self._logger.level
        if not log.isEnabledFor(logging.DEBUG):
            self._logger.setLevel(logging.WARNING)
        self._logger.addFilter(_json_text_notice)

    def __exit__(self, *exc: object) -> None:
        self._logger.setLevel(self._level)
        self._logger.removeFilter(_json_text_notice)


def _json_text_notice(record: logging.LogRecord) -> bool:
    # We hand dlt JSON text for json columns on purpose (every destination loads it); dlt
    # warns that the Arrow type differs from the hint. Not news to the user.
    return "when merging arrow schema with dlt schema" not in record.getMessage()
