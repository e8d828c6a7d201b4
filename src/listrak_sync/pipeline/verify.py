"""``listrak-sync verify``: read the destination and the service's counters, compare, keep history, repair.

What is compared, and what each outcome means, is :mod:`listrak_sync.engine.verify`'s. This
module only gathers what it needs, through dlt so that every destination ``run`` loads works
(DuckDB, PostgreSQL, files: dlt reads those through DuckDB):

- the plan of the last complete load (dlt restores it from the destination, as a run does);
- per activity table, one ``GROUP BY`` of rows and distinct contacts per message;
- the lists and their messages, asked exactly as a run asks them (the engine's reaches), so
  that ``verify`` costs at most a run's lists and messages requests and no activity request.

``--repair`` is a run of the one engine through :func:`~listrak_sync.pipeline.runner.replicate`:
the messages are read once, compared inside the run, and only the ``(table, message)`` pairs
that are off are re-read and merged (each message's rows replaced whole) in one load, with the
plan recording their counters. The history table is appended by a pipeline of its own, so the
nine tables and their plan are never part of that load.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from listrak_sync.engine.sync import Policy, SyncEngine
from listrak_sync.engine.verify import (
    BEHIND,
    CHECKS,
    OFF,
    UNCHECKED,
    Verification,
    compare,
    parse_readings,
    pending_fetches,
    worst,
)
from listrak_sync.engine.verify_sources import REST_ACTIVITY, REST_SUMMARY, activity_pending
from listrak_sync.errors import ConfigError
from listrak_sync.extract import Extractor, column_ints
from listrak_sync.pipeline.destinations import (
    DEFAULT_DATASET,
    DEFAULT_DUCKDB_MEMORY_LIMIT,
    DEFAULT_LOCK_WAIT_SECONDS,
    check_dataset_name,
    default_duckdb_path,
    messages_held,
    resolve_target,
)
from listrak_sync.pipeline.dlt_logs import quiet_dlt
from listrak_sync.pipeline.runner import RunSummary, pipeline_name_for, replicate, run_step
from listrak_sync.pipeline.source import SOURCE_NAME
from listrak_sync.pipeline.verify_rest import fresh_summaries, loaded_activity
from listrak_sync.settings import Settings
from listrak_sync.soap.client import ListrakClient

HISTORY_TABLE = "verify_history"
TABLES = tuple(sorted({t for check in CHECKS for t in check.tables}))
HISTORY_SCHEMA = pa.schema([
    ("verified_at", pa.timestamp("us", tz="UTC")),
    ("list_id", pa.int64()),
    ("msg_id", pa.int64()),
    ("subject", pa.string()),
    ("table_name", pa.string()),
    ("counter", pa.string()),
    ("reading", pa.string()),
    ("counter_value", pa.int64()),
    ("rows", pa.int64()),
    ("contacts", pa.int64()),
    ("difference", pa.int64()),
    ("status", pa.string()),
    ("reason", pa.string()),
    ("source", pa.string()),
])


@dataclass
class VerifyReport:
    """What one ``verify`` found (and repaired), as the CLI prints it."""

    verification: Verification
    verified_at: datetime
    messages_read: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    rest_requests: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    destination: str = ""
    location: str = ""
    dataset: str = ""
    history_rows: int = 0
    repair: RunSummary | None = None
    repaired: list[tuple[str, int]] = field(default_factory=list)
    after: Verification | None = None
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every difference within the contract (after a repair: the destination as repaired)."""
        return (self.after or self.verification).ok

    def render(self, limit: int = 10) -> str:
        """The summary: counts, counter readings, the worst offenders by name."""
        found = self.verification
        counts = found.as_dict()["counts"]
        checked = found.as_dict()["messages_checked"]
        where = self.location if self.location != self.destination else ""
        lines = [
            f"Verified {self.destination} {where + ' ' if where else ''}dataset {self.dataset!r} against the "
            f"service's counters in {self.seconds:.1f}s: {checked:,} messages, {len(found.results):,} checks.",
            f"  agree {counts['agrees']:,}   behind (the next run fetches them) {counts[BEHIND]:,}   "
            f"off {counts[OFF]:,}   not checked {counts[UNCHECKED]:,}",
        ]
        sources = found.as_dict()["sources"]
        if len(sources) > 1:
            for source, by in sources.items():
                lines.append(f"  vs {_SOURCE_NAMES.get(source, source):<30} agree {by['agrees']:,}   behind "
                             f"{by[BEHIND]:,}   off {by[OFF]:,}   not checked {by[UNCHECKED]:,}")
        lines.append("Counters (which reading the data fits):")
        for reading in found.readings.values():
            how = "pinned" if reading.pinned else f"fits {reading.fits}"
            lines.append(f"  {reading.counter:<13} {reading.used:<8} ({how}; of {reading.settled:,} settled "
                         f"messages, events fit {reading.events_fit:,}, unique contacts {reading.unique_fit:,})")
        lines += [f"  {name}: not checked, {why}" for name, why in found.unchecked.items()]
        if found.off:
            total = sum(abs(r.difference) for r in found.off)
            lines.append(f"Off ({len(found.off)} checks, {total:,} rows in all), worst first:")
            lines += [_line(r) for r in worst(found.off, limit)]
        behind = found.with_status(BEHIND)
        if behind:
            lines.append(f"Behind, within the contract ({len(behind)}), largest first:")
            lines += [_line(r) for r in worst(behind, min(limit, 5))]
        if self.repair is not None and self.after is not None:
            still = len(self.after.off)
            lines.append(f"Repaired {len(self.repaired)} (table, message) pairs in one load "
                         f"({self.repair.total_requests:,} requests); "
                         + (f"{still} checks are still off:" if still else "every check is within the contract now."))
            lines += [_line(r) for r in worst(self.after.off, limit)]
        if self.skipped:
            lines.append(f"Skipped {len(self.skipped)} refused lists (their messages' rows count as vanished):")
            lines += [f"  {text}" for text in self.skipped]
        rest = f" SOAP, {sum(self.rest_requests.values()):,} REST" if self.rest_requests else ""
        lines.append(f"Requests: {sum(self.requests.values()):,}{rest}; history: {self.history_rows:,} rows appended "
                     f"to {self.dataset}.{HISTORY_TABLE}.")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.verification.as_dict(),
            "ok": self.ok,
            "verified_at": self.verified_at.isoformat(),
            "messages_read": self.messages_read,
            "requests": self.requests,
            "total_requests": sum(self.requests.values()) + sum(self.rest_requests.values()),
            "rest_requests": self.rest_requests,
            "seconds": round(self.seconds, 3),
            "destination": self.destination,
            "location": self.location,
            "dataset": self.dataset,
            "history_table": HISTORY_TABLE,
            "history_rows": self.history_rows,
            "skipped": self.skipped,
            "repaired": [{"table": t, "msg_id": m} for t, m in self.repaired],
            "repair": self.repair.as_dict() if self.repair else None,
            "off_after_repair": None if self.after is None else [dataclasses.asdict(r) for r in self.after.off],
        }


_SOURCE_NAMES = {"messages": "SOAP messages counters", REST_SUMMARY: "REST message_summaries (fresh)",
                 REST_ACTIVITY: "REST message_activity (loaded)"}


def _line(result: Any) -> str:
    subject = f" {result.subject!r}" if result.subject else ""
    counter = result.counter if result.source == "messages" else f"{result.source}.{result.counter}"
    return (f"  {result.table:<16} {counter:<13} message {result.msg_id}{subject} (list {result.list_id}): "
            f"{result.counter_value:,} counted, {result.rows:,} rows, {result.contacts:,} contacts "
            f"({result.difference:+,} by {result.reading}){': ' + result.reason if result.reason else ''}")


def verify(
    settings: Settings,
    *,
    destination: str = "duckdb",
    duckdb_path: str | None = None,
    dataset: str = DEFAULT_DATASET,
    client: ListrakClient | None = None,
    repair: bool = False,
    history: bool = True,
    lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS,
    duckdb_memory_limit: str = DEFAULT_DUCKDB_MEMORY_LIMIT,
    clock: Callable[[], datetime] | None = None,
) -> VerifyReport:
    """Compare the destination with the service's counters; with ``repair``, re-read what is off.

    Args:
        settings: the run's settings (the same as ``run`` takes); ``counter_reading`` pins readings.
        destination: a dlt destination name.
        duckdb_path: the DuckDB file for ``duckdb``.
        dataset: the dataset the run loaded.
        client: a client to use (its counters show this command's requests); made here if not given.
        repair: re-read the off (table, message) pairs and merge them in one load.
        history: append one row per message and check to :data:`HISTORY_TABLE`.
        lock_wait_seconds: how long to wait while another process holds the DuckDB file.
        duckdb_memory_limit: DuckDB's memory while loading (repair and history).
        clock: the current time, aware (default: the service's clock).

    Returns:
        The report; :attr:`VerifyReport.ok` says whether every difference is within the contract.

    Raises:
        ConfigError: no complete run has loaded the dataset, a bad destination, or a repair the
            destination cannot merge.
        ListrakSyncError: reading the service or the destination failed.
    """
    started = time.monotonic()
    check_dataset_name(dataset)
    pinned = _pinned(settings)
    if destination == "duckdb" and not Path(duckdb_path or default_duckdb_path()).exists():
        raise ConfigError(f"There is no DuckDB file {duckdb_path or default_duckdb_path()} here: nothing to verify. "
                          "Run `listrak-sync run` first, or pass the --duckdb file it wrote.")
    target = resolve_target(destination, duckdb_path=duckdb_path, lock_wait_seconds=lock_wait_seconds,
                            duckdb_memory_limit=duckdb_memory_limit)
    if repair and not target.incremental:
        raise ConfigError(f"verify --repair merges messages into their tables, and the {target.name} destination "
                          "cannot merge: run `listrak-sync run --full-refresh` instead.")
    own_client = client is None
    client = client or ListrakClient(settings)
    rest_client = _rest_client(settings)
    try:
        plan, counts, held, rest_plan, activity = _read_destination(settings, target, dataset)
        found: list[Verification] = []
        read: list[tuple[pa.Table, datetime]] = []
        summaries: dict[int, dict[str, int] | None] = {}
        report = VerifyReport(Verification(), datetime.now().astimezone(), destination=target.name,
                              location=target.location, dataset=dataset)

        def judge(messages: pa.Table, plan: Mapping[str, Any], now: datetime) -> Verification:
            rows = messages.to_pylist()
            pending = pending_fetches(plan, rows, tables=counts, now=now, start=settings.start_date,
                                      lookback_hours=settings.lookback_hours,
                                      send_settle_hours=settings.send_settle_hours)
            listed = {int(r["MsgID"]) for r in rows}
            known = {int(m): int(k) for k, e in plan.get("lists", {}).items() for m in e.get("messages", {})}
            vanished = {m: lst for m, lst in {**known, **held}.items() if m not in listed}
            shown = counts
            if settings.list_ids:  # a list shard: other lists' messages are other runs' to check
                mine = listed | {m for m, lst in vanished.items() if lst in settings.list_ids}
                shown = {t: {m: v for m, v in c.items() if m in mine} for t, c in counts.items()}
            rest: dict[str, Any] | None = None
            rest_pending: dict[int, str] = {}
            if rest_client is not None:
                rest = {REST_SUMMARY: fresh_summaries(rest_client, rows, settings.concurrency, summaries)}
                if activity is not None:
                    rest[REST_ACTIVITY] = activity
                    rest_pending = activity_pending(
                        rest_plan, rows, now=rest_client.service_now(), start=settings.start_date,
                        lookback_hours=settings.lookback_hours, full_recheck_days=settings.full_recheck_days,
                        zone=settings.source_timezone)
            verification = compare(rows, shown, pending, pinned=pinned, vanished=vanished, rest=rest,
                                   rest_pending=rest_pending)
            found.append(verification)
            read.append((messages, now))
            report.verified_at, report.messages_read = now, len(rows)
            return verification

        if repair:
            _repair(settings, target, dataset, client, counts, judge, report, clock, lock_wait_seconds,
                    duckdb_memory_limit, duckdb_path, destination)
            report.skipped = list(report.repair.skipped) if report.repair else []
            if read:  # the destination as repaired, against the same counters: no request
                plan, counts, held, rest_plan, activity = _read_destination(settings, target, dataset)
                messages, read_at = read[0]
                judge(messages, plan, read_at)
                report.after = found[-1]
        else:
            extractor = Extractor(client, settings, now=clock)
            messages = _read_messages(settings, extractor, plan)
            judge(messages, plan, extractor.now())
            report.skipped = [str(e) for e in extractor.skipped]
        report.verification = found[0] if found else Verification()
        report.requests = dict(client.stats.as_dict().get("requests", {}))
        if rest_client is not None:
            report.rest_requests = dict(rest_client.stats.as_dict().get("requests", {}))
        if history and (report.after or report.verification).results:
            report.history_rows = _append_history(settings, target, dataset, report)
    finally:
        if own_client:
            client.close()
        if rest_client is not None:
            rest_client.close()
    report.seconds = time.monotonic() - started
    return report


def _rest_client(settings: Settings) -> Any:
    """A REST client when the settings hold REST credentials (the REST checks), else None."""
    if not settings.has_rest:
        return None
    from listrak_sync.rest.client import RestClient  # the REST client (issue 19 part 1)

    return RestClient(settings)


def _pinned(settings: Settings) -> dict[str, str]:
    try:
        return parse_readings(settings.counter_reading)
    except ValueError as exc:
        raise ConfigError(f"counter_reading: {exc}. Use auto, events, unique, or pairs such as "
                          "OpenCount=unique,ReadCount=unique.") from None


def _read_destination(settings: Settings, target: Any, dataset: str) -> tuple[
        dict[str, Any], dict[str, Any], dict[int, int], dict[str, Any], dict[int, dict[str, int]] | None]:
    """The plan of the last complete load, each activity table's counts per message, the
    messages the ``messages`` table holds, the REST plan, and the loaded REST activity per
    message (None: no REST credentials, or no REST activity loaded)."""
    with tempfile.TemporaryDirectory(prefix="listrak-sync-verify-") as workdir, quiet_dlt():
        pipeline = dlt.pipeline(pipeline_name=pipeline_name_for(dataset, settings.list_ids),
                                destination=target.factory, dataset_name=dataset, pipelines_dir=workdir)
        run_step("sync", target, pipeline.sync_destination)
        state = pipeline.state.get("sources", {}).get(SOURCE_NAME, {})
        plan = copy.deepcopy(dict(state.get("plan") or {}))
        rest_plan = copy.deepcopy(dict(state.get("rest_plan") or {}))
        if not plan.get("streams") or not pipeline.default_schema_name:
            raise ConfigError(f"No complete listrak-sync run has loaded dataset {dataset!r} in {target.location}: "
                              "nothing to verify. Run `listrak-sync run` with the same settings first.")
        counts = run_step("sync", target, lambda: _counts(pipeline, settings))
        held = run_step("sync", target, lambda: messages_held(pipeline)) if target.incremental else {}
        activity = run_step("sync", target, lambda: loaded_activity(pipeline)) if settings.has_rest else None
    return plan, counts, held, rest_plan, activity


def _counts(pipeline: dlt.Pipeline, settings: Settings) -> dict[str, dict[int, tuple[int, int]]]:
    """Per activity table in the destination: per message, (rows, distinct contacts); one query each."""
    naming = pipeline.default_schema.naming
    msg_id, email = naming.normalize_identifier("MsgID"), naming.normalize_identifier("EmailAddress")
    counts: dict[str, dict[int, tuple[int, int]]] = {}
    with pipeline.sql_client() as client:
        for table in TABLES:
            name = naming.normalize_table_identifier(table)
            if (settings.tables and table not in settings.tables) or name not in pipeline.default_schema.tables:
                continue
            qualified = client.make_qualified_table_name(name)
            query = f"SELECT {msg_id}, COUNT(*), COUNT(DISTINCT {email}) FROM {qualified} GROUP BY {msg_id}"  # noqa: S608
            try:
                rows = client.execute_sql(query)
            except DatabaseUndefinedRelation:
                continue
            counts[table] = {int(m): (int(n), int(d)) for m, n, d in rows or [] if m is not None}
    return counts


def _read_messages(settings: Settings, extractor: Extractor, plan: Mapping[str, Any]) -> pa.Table:
    """The lists and their messages, asked as the next run would ask them."""
    engine = SyncEngine(copy.deepcopy(dict(plan)), policy=Policy.from_settings(settings), streams=[],
                        start=settings.start_date, lists=settings.list_ids)
    list_ids = column_ints(extractor.lists(), "ListID")
    tables = extractor.messages_of(list_ids, engine.message_reaches(list_ids, extractor.now()))
    tables = [t for t in tables if t.num_rows]
    return pa.concat_tables(tables) if tables else pa.table({"ListID": [], "MsgID": []})


def _repair(settings: Settings, target: Any, dataset: str, client: ListrakClient, counts: Mapping[str, Any],
            judge: Callable[[pa.Table, Mapping[str, Any], datetime], Verification], report: VerifyReport,
            clock: Callable[[], datetime] | None, lock_wait_seconds: float, duckdb_memory_limit: str,
            duckdb_path: str | None, destination: str) -> None:
    """One run of the engine that reads the messages, judges them, and re-reads only what is off."""
    now = clock or client.service_now

    def choose(messages: pa.Table, plan: Mapping[str, Any]) -> Collection[tuple[str, int]]:
        units = judge(messages, plan, now()).repair_units()
        report.repaired = sorted(units)
        return units

    tables = tuple(t for t in TABLES if t in counts)
    if not tables:
        raise ConfigError(f"Dataset {dataset!r} holds no activity table to repair.")
    report.repair = replicate(dataclasses.replace(settings, tables=tables), destination=destination,
                              duckdb_path=duckdb_path, dataset=dataset, client=client, repair=choose,
                              lock_wait_seconds=lock_wait_seconds, duckdb_memory_limit=duckdb_memory_limit,
                              clock=clock)


def _append_history(settings: Settings, target: Any, dataset: str, report: VerifyReport) -> int:
    """Append one row per message and check, in a load of its own (the nine tables are not in it)."""
    results = (report.after or report.verification).results
    repaired = {m for _, m in report.repaired}
    columns: dict[str, list[Any]] = {name: [] for name in HISTORY_SCHEMA.names}
    for r in results:
        values = {**dataclasses.asdict(r), "table_name": r.table, "verified_at": report.verified_at}
        if r.msg_id in repaired and report.after is not None:
            values["reason"] = "repaired by this verify"
        for name in HISTORY_SCHEMA.names:
            columns[name].append(values[name])
    table = pa.Table.from_pydict(columns, schema=HISTORY_SCHEMA)
    with tempfile.TemporaryDirectory(prefix="listrak-sync-verify-") as workdir, quiet_dlt():
        pipeline = dlt.pipeline(pipeline_name=pipeline_name_for(dataset, settings.list_ids) + "_verify",
                                destination=target.factory, dataset_name=dataset, pipelines_dir=workdir)
        run_step("load", target, lambda: pipeline.run(table, table_name=HISTORY_TABLE, write_disposition="append"))
    return table.num_rows


__all__ = ["HISTORY_TABLE", "VerifyReport", "verify"]
