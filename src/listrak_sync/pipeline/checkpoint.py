"""The checkpoint of a run: the work units it fetched, kept in the destination as it goes, so
that the next run after a kill serves them from there instead of asking the service again.

**What is kept, and where.** In the destination, in a dataset of its own beside the run's
(``<dataset>_checkpoint``; a list shard has its own), three tables of one generic shape that
fits every stream:

- ``run``: one row, the run's fingerprint (below);
- ``pages``: the rows of a work unit (one activity stream of one message) as compressed Arrow
  IPC bytes (a BLOB / ``bytea``), keyed by the unit's key (stream, ``MsgID``, the counter
  the unit was planned with, its start; :attr:`~listrak_sync.engine.sync.WorkUnit.key`);
- ``units``: one row per finished unit. Pages count only once their unit's row is there; a
  unit cut short by the kill is fetched again whole.

Rows are written from a thread of their own every :data:`FLUSH_SECONDS` (sooner past
:data:`FLUSH_ROWS` rows or :data:`FLUSH_UNITS` units), each batch in one transaction, so what the kill interrupts is at
most the last few seconds of work. Arrow IPC and not Parquet: it gives back exactly the
schema it was given (time zones, lists), at a fraction of Parquet's CPU.

**When it is used.** Only by a run with the same fingerprint: the settings that shape the
work (start date, tables, lists, full refresh or not, the incremental policy) and the plan
of the last complete load it starts from. A unit is served only where the new run plans the
same key (its counter has not moved since). A checkpoint with another fingerprint is
cleared, and the run says so in one line. The checkpoint dataset is dropped once the load
completed; one that survives a kill right after the load is never used, as the completed
load changed the plan its fingerprint names.

**Why in the destination.** The rows it holds (contacts' e-mail addresses among them) stay
where the replicated tables already are, under the same access, and a run on another
machine into the same destination resumes as well (a run keeps nothing local: see
:mod:`listrak_sync.pipeline.runner`). The final tables are untouched until the load: the
checkpoint is only read by the next run's extract.

**Which destinations.** DuckDB and PostgreSQL (their driver connections are used as they
are, so that the checkpoint's statements are not the load's). Elsewhere a run does not resume.
**Which streams.** The per-message activity streams: nearly all of a run's requests. A
list's subscribed contacts are a handful of requests, fetched again.
**Connections.** The checkpoint holds one connection during the extract and closes it
before the load: DuckDB takes one writer per file, and dlt opens its own for the load. (A
connection per batch would let other programs read a DuckDB file while a run extracts, but
DuckDB's open and close cost up to half a second each: the batches could not be frequent.)
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import suppress
from datetime import datetime
from typing import Any

import dlt
import pyarrow as pa

from listrak_sync.engine.sync import UnitKey
from listrak_sync.settings import Settings

log = logging.getLogger(__name__)

RESUMABLE_DESTINATIONS = ("duckdb", "postgres")
FORMAT = 1
"""Version of the checkpoint's layout; part of the fingerprint."""
FLUSH_SECONDS = 0.25
FLUSH_ROWS = 50_000
FLUSH_UNITS = 100
_NO_COUNTER = -1  # SQL compares NULL with nothing, so a unit without a counter is stored as -1
_UNIT_COLUMNS = ("stream", "msg_id", "counter", "unit_start", "row_count")
_PAGE_COLUMNS = ("stream", "msg_id", "counter", "unit_start", "seq", "row_count", "data")
_IPC = pa.ipc.IpcWriteOptions(compression="lz4")
_WHAT_CHANGED = {
    "format": "a newer listrak-sync",
    "start_date": "the start date",
    "tables": "the tables",
    "lists": "the lists",
    "full_refresh": "full refresh",
    "policy": "the incremental settings",
    "base": "the destination completed a load since",
}


def checkpoint_dataset(dataset: str, shard_tag: str | None = None) -> str:
    """The dataset (schema) that holds the checkpoint of runs into ``dataset`` (or one list shard of it)."""
    name = f"{dataset}_checkpoint" + (f"_{shard_tag}" if shard_tag else "")
    if len(name) <= 63:  # PostgreSQL's identifier limit
        return name
    return f"{name[:50]}_{hashlib.sha256(name.encode()).hexdigest()[:12]}"


def fingerprint(settings: Settings, *, full_refresh: bool, plan: Any) -> dict[str, Any]:
    """What a run's work depends on besides the service's data: a checkpoint of a run with
    another fingerprint is not this run's.

    Args:
        settings: the run's settings (start date, tables, lists, incremental policy).
        full_refresh: whether the run replaces every table.
        plan: the plan of the last complete load the run starts from (dlt state), or None.
    """
    base = json.dumps(plan or {}, sort_keys=True, default=str)
    return {
        "format": FORMAT,
        "start_date": settings.start_date.isoformat(),
        "tables": sorted(settings.tables or []),
        "lists": sorted(settings.list_ids or []),
        "full_refresh": bool(full_refresh),
        "policy": [settings.lookback_hours, settings.send_settle_hours, settings.full_recheck_days,
                   settings.trust_counters, settings.interval_days],
        "base": hashlib.sha256(base.encode()).hexdigest(),
    }


class Checkpoint:
    """The checkpoint of one run, open for its extract.

    Made by :meth:`open`; :attr:`stored` are the units an interrupted run of the same
    fingerprint finished. :meth:`add` and :meth:`done` record this run's units as they come
    (from any thread); :meth:`close` writes the rest and closes the connection.
    """

    def __init__(self, client: Any, names: dict[str, str], stored: set[UnitKey]) -> None:
        self._client = client
        self._db = _Db(client.native_connection)
        self._names = names
        self.stored = stored
        self._lock = threading.Lock()  # the pending rows
        self._db_lock = threading.Lock()  # the connection: the writer and the readers take turns
        self._pending: dict[UnitKey, list[pa.Table]] = {}
        self._pending_rows = 0
        self._finished: list[tuple[UnitKey, int]] = []
        self._rows: dict[UnitKey, int] = {}
        self._seq: dict[UnitKey, int] = {}
        self._broken = False
        self._units_written = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name="listrak-checkpoint", daemon=True)
        self._writer.start()

    @classmethod
    def open(cls, pipeline: dlt.Pipeline, dataset: str, run: dict[str, Any]) -> Checkpoint:
        """Open the checkpoint in ``dataset`` of ``pipeline``'s destination for a run of fingerprint ``run``.

        A checkpoint of another fingerprint is cleared first (the run says so in one line);
        one of the same fingerprint gives :attr:`stored`.
        """
        client = pipeline.sql_client()
        with client.with_alternative_dataset_name(dataset):
            names = {"dataset": client.fully_qualified_dataset_name(),
                     **{t: client.make_qualified_table_name(t) for t in ("run", "pages", "units")}}
        client.open_connection()
        try:
            stored = _begin(_Db(client.native_connection), names, run)
        except BaseException:
            client.close_connection()
            raise
        return cls(client, names, stored)

    def add(self, key: UnitKey, table: pa.Table) -> None:
        """Rows of unit ``key`` (one page of it); kept once the unit is :meth:`done`."""
        if self._broken or not table.num_rows:
            return
        with self._lock:
            self._pending.setdefault(key, []).append(table)
            self._pending_rows += table.num_rows
            self._rows[key] = self._rows.get(key, 0) + table.num_rows
            if self._pending_rows >= FLUSH_ROWS:
                self._wake.set()

    def done(self, key: UnitKey) -> None:
        """Unit ``key`` is through: every page of it was :meth:`add`-ed."""
        if self._broken:
            return
        with self._lock:
            self._finished.append((key, self._rows.pop(key, 0)))
            if len(self._finished) >= FLUSH_UNITS:
                self._wake.set()

    def tables(self, stream: str, keys: Sequence[UnitKey]) -> Iterator[tuple[UnitKey, list[pa.Table]]]:
        """The stored rows of ``stream``'s units ``keys``, unit by unit (an empty list for a unit without rows)."""
        wanted = set(keys)
        if not wanted:
            return
        with self._db_lock:
            db = self._db
            rows = db.query(
                f"SELECT p.msg_id, p.counter, p.unit_start, p.data FROM {self._names['pages']} p "  # noqa: S608
                f"WHERE p.stream = {db.mark} ORDER BY p.msg_id, p.counter, p.unit_start, p.seq", [stream])
        blobs: dict[UnitKey, list[bytes]] = {}
        for msg_id, counter, start, data in rows:
            key = (stream, int(msg_id), None if counter == _NO_COUNTER else int(counter), start)
            if key in wanted:
                blobs.setdefault(key, []).append(bytes(data))
        for key in keys:
            yield key, [_decode(blob) for blob in blobs.pop(key, [])]

    @property
    def empty(self) -> bool:
        """Whether it holds no finished unit: nothing a next run could resume from."""
        return not self.stored and not self._units_written

    def close(self) -> None:
        """Write what is pending and close the connection (before the load: one writer per DuckDB file)."""
        self._stop.set()
        self._wake.set()
        self._writer.join()
        try:
            self._flush()
        finally:
            self._client.close_connection()

    def _write_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            if not self._stop.is_set():
                self._flush()

    def _flush(self) -> None:
        with self._lock:
            pending, finished = self._pending, self._finished
            self._pending, self._finished, self._pending_rows = {}, [], 0
        if self._broken or not (pending or finished):
            return
        pages = []
        for key, tables in pending.items():
            seq = self._seq.get(key, 0)
            self._seq[key] = seq + 1
            pages.append((*_columns(key), seq, sum(t.num_rows for t in tables), _encode(tables)))
        units = [(*_columns(key), rows) for key, rows in finished]
        started = time.monotonic()
        try:
            with self._db_lock, self._db.transaction():
                db = self._db
                if pages:
                    db.insert(self._names["pages"], _PAGE_COLUMNS, pages)
                if units:
                    db.insert(self._names["units"], _UNIT_COLUMNS, units)
            self._units_written += len(units)
        except Exception as exc:
            self._broken = True
            log.warning("The checkpoint could not be written (%s); this run goes on without one.",
                        str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            return
        log.debug("Checkpoint: %d pages, %d units written in %.3fs", len(pages), len(units),
                  time.monotonic() - started)


def discard(pipeline: dlt.Pipeline, dataset: str) -> None:
    """Drop the checkpoint dataset (after a completed load: it is no use to anyone any more)."""
    with pipeline.sql_client() as client, client.with_alternative_dataset_name(dataset):
        db = _Db(client.native_connection)
        # DuckDB binds `DROP SCHEMA catalog.schema` as ambiguous where the file's catalog has the
        # name of a schema (listrak.duckdb, dataset listrak): the bare name is the file's schema.
        name = client.capabilities.escape_identifier(dataset) if db.duckdb else client.fully_qualified_dataset_name()
        db.run(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def _begin(db: _Db, names: dict[str, str], run: dict[str, Any]) -> set[UnitKey]:
    """Create the checkpoint's tables where missing, check its fingerprint, and return its finished units."""
    mark = db.mark
    key_columns = "stream TEXT NOT NULL, msg_id BIGINT NOT NULL, counter BIGINT NOT NULL, unit_start TEXT NOT NULL"
    same_unit = ("u.stream = p.stream AND u.msg_id = p.msg_id AND u.counter = p.counter "
                 "AND u.unit_start = p.unit_start")
    with db.transaction():
        db.run(f"CREATE SCHEMA IF NOT EXISTS {names['dataset']}")
        db.run(f"CREATE TABLE IF NOT EXISTS {names['run']} (fingerprint TEXT NOT NULL, created_at TEXT NOT NULL)")
        db.run(f"CREATE TABLE IF NOT EXISTS {names['pages']} ({key_columns}, seq INTEGER NOT NULL, "
               f"row_count BIGINT NOT NULL, data {db.blob} NOT NULL)")
        db.run(f"CREATE TABLE IF NOT EXISTS {names['units']} ({key_columns}, row_count BIGINT NOT NULL)")
        found = db.query(f"SELECT fingerprint FROM {names['run']}")  # noqa: S608
        previous = json.loads(found[0][0]) if found else None
        units = db.query(f"SELECT stream, msg_id, counter, unit_start FROM {names['units']}")  # noqa: S608
        if previous == run:
            # Pages of a unit the kill cut short: it is fetched again whole.
            db.run(f"DELETE FROM {names['pages']} p WHERE NOT EXISTS "  # noqa: S608
                   f"(SELECT 1 FROM {names['units']} u WHERE {same_unit})")
            return {(s, int(m), None if c == _NO_COUNTER else int(c), st) for s, m, c, st in units}
        if previous is not None and units:
            changed = [text for name, text in _WHAT_CHANGED.items() if previous.get(name) != run.get(name)]
            log.warning("Starting clean: the checkpoint of an interrupted run (%d work units) does not fit this "
                        "run (%s changed), so it is cleared.", len(units), ", ".join(changed) or "the settings")
        for table in ("run", "pages", "units"):
            db.run(f"DELETE FROM {names[table]}")  # noqa: S608
        db.run(f"INSERT INTO {names['run']} VALUES ({mark}, {mark})",  # noqa: S608
               [json.dumps(run, sort_keys=True), datetime.now().astimezone().isoformat()])
    return set()


def _columns(key: UnitKey) -> tuple[str, int, int, str]:
    stream, msg_id, counter, start = key
    return stream, msg_id, _NO_COUNTER if counter is None else counter, start


def _encode(tables: list[pa.Table]) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, tables[0].schema, options=_IPC) as writer:
        for table in tables:
            writer.write_table(table)
    return bytes(sink.getvalue())


def _decode(blob: bytes) -> pa.Table:
    return pa.ipc.open_stream(blob).read_all()


class _Db:
    """A DuckDB or psycopg2 connection, used as its driver offers it (not through dlt's client:
    the checkpoint's statements are not the load's, nor observed as such)."""

    def __init__(self, native: Any) -> None:
        self.native = native
        self.duckdb = type(native).__module__.lstrip("_").startswith("duckdb")
        self.mark = "?" if self.duckdb else "%s"
        self.blob = "BLOB" if self.duckdb else "BYTEA"

    def run(self, sql: str, params: Sequence[Any] | None = None) -> None:
        if self.duckdb:
            self.native.execute(sql, params)
            return
        with self.native.cursor() as cursor:
            cursor.execute(sql, params)

    def insert(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        """Insert ``rows`` into ``table`` in one statement."""
        if self.duckdb:  # DuckDB prepares each row of an executemany: an Arrow table is one scan
            batch = pa.Table.from_pylist([dict(zip(columns, row, strict=True)) for row in rows])
            self.native.register("listrak_checkpoint_batch", batch)
            try:
                self.native.execute(f"INSERT INTO {table} SELECT {', '.join(columns)} "  # noqa: S608
                                    "FROM listrak_checkpoint_batch")
            finally:
                self.native.unregister("listrak_checkpoint_batch")
            return
        from psycopg2.extras import execute_values

        with self.native.cursor() as cursor:
            execute_values(cursor, f"INSERT INTO {table} ({', '.join(columns)}) VALUES %s", rows)  # noqa: S608

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        if self.duckdb:
            return list(self.native.execute(sql, params).fetchall())
        with self.native.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def transaction(self) -> _Transaction:
        return _Transaction(self)


class _Transaction:
    def __init__(self, db: _Db) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.run("BEGIN")

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            self.db.run("COMMIT")
        else:
            with suppress(Exception):
                self.db.run("ROLLBACK")


__all__ = ["RESUMABLE_DESTINATIONS", "Checkpoint", "checkpoint_dataset", "discard", "fingerprint"]
