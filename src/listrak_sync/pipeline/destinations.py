"""Destinations: a name and options become a dlt destination set up so that every run lands whole.

What this module guarantees for the runner:

- **DuckDB paths mean what they say.** A relative ``--duckdb`` path is resolved against the
  current directory before dlt sees it (dlt would resolve it against its own working folder).
  The file is checked before any request is sent: a missing or read-only directory, a
  directory, a file that is not DuckDB, or a file another process holds open is a
  :class:`~listrak_sync.errors.ConfigError` naming the path.
- **Tables are swapped in transactions.** dlt copies staged rows into each table with
  ``DELETE`` then ``INSERT``; for DuckDB and PostgreSQL it runs them in autocommit because
  their capabilities leave ``supports_transactions`` unset, so a kill between the two empties
  the table (or a message's rows). Both have transactions; we say so, and each table is
  replaced or merged atomically. Other destinations keep dlt's own capabilities.
- **Any file name works with any dataset name.** dlt names DuckDB tables ``dataset.table``;
  when the file's catalog has the dataset's name (``listrak.duckdb`` and ``listrak``) DuckDB
  cannot tell catalog from schema. Our DuckDB client names tables ``catalog.dataset.table``.
- **Staging per writer.** A list shard stages its rows in a staging dataset of its own, so
  shards loading one dataset side by side never clear each other's staged rows.

How dlt's DuckDB and PostgreSQL destinations are adapted for this (their clients subclassed)
is :mod:`listrak_sync.pipeline.dlt_compat`'s; every statement they run passes
:data:`on_statement`, a no-op the kill tests replace.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import dlt
import duckdb
from dlt.common.destination import Destination
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from listrak_sync.errors import ConfigError, DestinationBusyError
from listrak_sync.pipeline.dlt_compat import (
    StatementObserver,
    TransactionalDuckDb,
    TransactionalPostgres,
    duckdb_catalog,
    duckdb_credentials,
)
from listrak_sync.settings_table import default_of

T = TypeVar("T")
log = logging.getLogger(__name__)

# The run keys' defaults, from the settings table (where the memory limit's figures are).
DEFAULT_DUCKDB_PATH: str = default_of("duckdb")
# The default file of versions before 0.2: DuckDB names a file's catalog after it, so with the
# default dataset `listrak.messages` was ambiguous. Still used where one is found and no new one.
LEGACY_DUCKDB_PATH = "listrak.duckdb"
DEFAULT_DATASET: str = default_of("dataset")
DEFAULT_LOCK_WAIT_SECONDS: float = default_of("lock_wait_seconds")
DEFAULT_DUCKDB_MEMORY_LIMIT: str = default_of("duckdb_memory_limit")
_DUCKDB_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)
REPLACE_STRATEGY = "insert-from-staging"
# PostgreSQL's identifier limit; the other SQL destinations allow at least as much.
_DATASET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Target:
    """Where a run lands: the dlt destination and what the summary and the lock call it.

    Attributes:
        factory: the dlt destination factory to load with.
        name: the destination's name (``duckdb``, ``postgres``, ...).
        location: where the data goes, as the summary names it: the absolute DuckDB file, a
            server's ``host:port/database``, a bucket URL (never a password); the destination's
            name where none is configured.
        incremental: whether the destination can merge; if not, every run replaces tables whole.
    """

    factory: Destination
    name: str
    location: str
    incremental: bool

    def table_name(self, dataset: str, table: str) -> str:
        """A table (or, for files, its folder) as a user types it: ``listrak.messages``.

        In DuckDB the file is a catalog named after it: where file and dataset share a name
        (``listrak.duckdb``, dataset ``listrak``), ``listrak.messages`` is ambiguous, so the
        name holds the catalog too.
        """
        if self.name == "filesystem":
            return f"{self.location.rstrip('/')}/{dataset}/{table}/"
        catalog = duckdb_catalog(self.location) if self.name == "duckdb" else None
        if catalog and catalog.casefold() == dataset.casefold():
            return f"{_sql_identifier(catalog)}.{dataset}.{table}"
        return f"{dataset}.{table}"


def check_dataset_name(name: str) -> str:
    """Return ``name`` if it is a plain SQL identifier, else raise a ConfigError saying why."""
    if not _DATASET_NAME.fullmatch(name or ""):
        raise ConfigError(
            f"Dataset name {name!r} is not usable: use letters, digits and underscores, starting "
            "with a letter or underscore, at most 63 characters (for example listrak or listrak_brand_a)."
        )
    return name


def resolve_target(
    destination: str | Destination = "duckdb",
    *,
    duckdb_path: str | None = None,
    lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS,
    staging_layout: str | None = None,
    duckdb_memory_limit: str = DEFAULT_DUCKDB_MEMORY_LIMIT,
) -> Target:
    """The destination a run loads into, checked and set up for atomic table swaps.

    Args:
        destination: a dlt destination name (``duckdb``, ``postgres``, ``filesystem``, ...) or factory.
        duckdb_path: the DuckDB file for ``duckdb``, relative to the current directory.
        lock_wait_seconds: how long to wait for another process holding the DuckDB file.
        staging_layout: the staging dataset's name, ``%s`` standing for the dataset (dlt's
            ``staging_dataset_name_layout``; default ``%s_staging``).
        duckdb_memory_limit: DuckDB's ``memory_limit`` while loading into ``duckdb``
            (``32MB``, ``2GB``); beyond it DuckDB spills to disk.

    Returns:
        The target.

    Raises:
        ConfigError: an unknown destination, a DuckDB path that cannot be written, or a
            memory limit DuckDB cannot read.
    """
    if not isinstance(destination, str):
        return Target(destination, destination.destination_name, location_of(destination), can_merge(destination))
    staging: dict[str, Any] = {"staging_dataset_name_layout": staging_layout} if staging_layout else {}
    if destination == "duckdb":
        if not _DUCKDB_SIZE.match(duckdb_memory_limit):
            raise ConfigError(
                f"duckdb_memory_limit {duckdb_memory_limit!r} is not a size DuckDB reads. "
                "Give a number and a unit, such as 32MB or 2GB."
            )
        path = duckdb_file(duckdb_path or default_duckdb_path())
        duck = TransactionalDuckDb(credentials=duckdb_credentials(path), replace_strategy=REPLACE_STRATEGY,
                                   destination_name="duckdb", **staging)
        duck.connect = _duckdb_connector(path, lock_wait_seconds, duckdb_memory_limit.strip())
        duck.observe = _observe
        return Target(duck, "duckdb", str(path), True)
    options: dict[str, Any] = {} if destination == "filesystem" else {"replace_strategy": REPLACE_STRATEGY, **staging}
    factory: Destination | None
    try:
        if destination == "postgres":
            # PostgreSQL has transactions, but dlt's capabilities leave them unset there too:
            # without this, a merge's DELETE and INSERT commit apart (found by the kill tests).
            postgres = TransactionalPostgres(destination_name="postgres", **options)
            postgres.observe = _observe
            factory = postgres
        else:
            factory = Destination.from_reference(destination, **options)
    except Exception as exc:  # dlt raises several types for an unknown or unloadable name
        raise ConfigError(
            f"Unknown or unavailable destination {destination!r} ({type(exc).__name__}). "
            "Use a dlt destination name such as duckdb, postgres or filesystem, and install its "
            "extra (for example: pip install 'listrak-sync[postgres]')."
        ) from None
    if factory is None:
        raise ConfigError("No destination given: use a dlt destination name such as duckdb or postgres.")
    return Target(factory, destination, location_of(factory), can_merge(factory))


def location_of(factory: Destination) -> str:
    """Where ``factory`` loads, from its configuration: a bucket URL, or ``host:port/database``.

    Never a password: a bucket URL loses any user and password written into it. The
    destination's name where its configuration names no place (yet: missing credentials fail
    the run later, with their own message).
    """
    try:
        config = factory.configuration(factory.spec(), accept_partial=True)
    except Exception:  # an unresolvable configuration fails the run later, with its own message
        return factory.destination_name
    bucket = getattr(config, "bucket_url", None)
    if bucket:
        url = urlsplit(str(bucket))
        netloc = f"{url.hostname or ''}{f':{url.port}' if url.port else ''}"
        return urlunsplit(url._replace(netloc=netloc)) if url.username or url.password else str(bucket)
    credentials = getattr(config, "credentials", None)
    host, database = getattr(credentials, "host", None), getattr(credentials, "database", None)
    if not (host and database):
        return factory.destination_name
    port = getattr(credentials, "port", None)
    return f"{host}{f':{port}' if port else ''}/{database}"


def _sql_identifier(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else '"' + name.replace('"', '""') + '"'


def default_duckdb_path() -> str:
    """The DuckDB file a run writes when none is set: :data:`DEFAULT_DUCKDB_PATH`, or the file
    an earlier version wrote by default (:data:`LEGACY_DUCKDB_PATH`) where the current
    directory holds that one and not the new one, so an existing replication goes on."""
    if not Path(DEFAULT_DUCKDB_PATH).exists() and Path(LEGACY_DUCKDB_PATH).is_file():
        log.warning("Using %s, the default DuckDB file of earlier versions: query it as listrak.listrak.<table> "
                    "(its catalog is named listrak too), or rename it to %s (or set --duckdb) to query "
                    "listrak.<table>.", LEGACY_DUCKDB_PATH, DEFAULT_DUCKDB_PATH)
        return LEGACY_DUCKDB_PATH
    return DEFAULT_DUCKDB_PATH


def can_merge(factory: Destination) -> bool:
    """Whether ``factory``'s destination can replace one message's rows (a delete-insert merge)."""
    # Plain files cannot delete one message's rows: dlt "falls back to append", which doubles
    # rows. Only destinations with a real delete-insert merge run incrementally.
    if factory.destination_name == "filesystem":
        return False
    return "delete-insert" in (factory.capabilities().supported_merge_strategies or [])


def _duckdb_connector(path: Path, lock_wait_seconds: float, memory_limit: str) -> Callable[[Callable[[], Any]], Any]:
    """Opens dlt's DuckDB connections: waiting while another process holds the file, then with our memory limit."""

    def connect(open_connection: Callable[[], Any]) -> Any:
        connection = waiting_for_lock(open_connection, path, lock_wait_seconds)
        # On every connection dlt opens: each step (sync, load) opens its own.
        connection.execute("SET GLOBAL memory_limit = ?", [memory_limit])
        return connection

    return connect


def duckdb_file(path: str) -> Path:
    """The absolute DuckDB file for ``path``, after checking that a run can write it.

    A file another process holds open passes: it is a DuckDB database, and whoever holds it is
    found later, in order. Another listrak-sync run into the same dataset fails on the run lock
    at once; any other holder makes the run's first connection wait (``lock_wait_seconds``),
    saying so.

    Args:
        path: the file, relative to the current directory.

    Raises:
        ConfigError: the directory is missing or read-only, the path is a directory, or the
            file is not a DuckDB database.
    """
    # A symlink is followed to the file it names: DuckDB writes its .wal beside the real file.
    resolved = Path(path).expanduser().resolve()
    where = f"DuckDB file {str(resolved)!r}"
    if resolved.is_dir():
        raise ConfigError(f"The {where} is a directory. Pass a file name such as {resolved / DEFAULT_DUCKDB_PATH}.")
    if not resolved.parent.is_dir():
        raise ConfigError(f"The directory of the {where} does not exist. Create it or pass another --duckdb path.")
    if not os.access(resolved.parent, os.W_OK) or (resolved.exists() and not os.access(resolved, os.W_OK)):
        raise ConfigError(f"The {where} is not writable. Pass a --duckdb path in a directory you can write.")
    if resolved.exists():
        try:
            duckdb.connect(str(resolved)).close()
        except duckdb.Error as exc:
            text = str(exc)
            if is_lock_conflict(exc):
                return resolved
            raise ConfigError(
                f"The {where} cannot be opened as a DuckDB database ({text.splitlines()[0]}). "
                "Pass another --duckdb path, or move the file away."
            ) from None
    return resolved


def is_lock_conflict(error: BaseException) -> bool:
    """Whether ``error`` (or its cause) is DuckDB refusing a file another process holds."""
    return "Could not set lock on file" in f"{error} {error.__cause__ or ''}"


def lock_error(path: Path | str, text: str) -> DestinationBusyError:
    """The one-line error for a DuckDB file held by another process, naming it if DuckDB did.

    Retryable (exit 1), not a configuration error: the same run succeeds once the file is free.
    """
    return DestinationBusyError(
        f"The DuckDB file {str(path)!r} is open in another process{_holder(text)}. "
        "DuckDB allows one writer: close that program (a notebook, the DuckDB CLI), or raise lock_wait_seconds; "
        "then run again."
    )


def _holder(text: str) -> str:
    """`` (duckdb, PID 4242)``: the program and process DuckDB's lock error names, or what of them it names."""
    held = re.search(r"held in (?P<program>.+?) \(PID (?P<pid>\d+)\)", text)
    if held:
        return f" ({Path(held['program']).name}, PID {held['pid']})"
    pid = re.search(r"PID \d+", text)
    return f" ({pid.group(0)})" if pid else ""


def waiting_for_lock(action: Callable[[], T], path: Path | str, seconds: float) -> T:
    """Run ``action``, retrying for up to ``seconds`` while another process holds the DuckDB file."""
    deadline = time.monotonic() + seconds
    announced = False
    while True:
        try:
            return action()
        except Exception as exc:
            if not is_lock_conflict(exc) or time.monotonic() >= deadline:
                raise
            if not announced:  # at once, so that a run waiting on the file never looks stuck
                log.warning("The DuckDB file %r is open in another process%s; waiting up to %.0f s "
                            "(lock_wait_seconds) for it to close the file.", str(path),
                            _holder(f"{exc} {exc.__cause__ or ''}"), seconds)
                announced = True
            time.sleep(0.25)


def _ignore(statement: str, when: str) -> None:
    return None


on_statement: StatementObserver = _ignore
"""Told each SQL statement of the loader, ``"before"`` it runs and ``"after"`` (an "after" falls
inside the table's transaction, before its commit), in the thread that loads. It does nothing:
it is the kill tests' seam (``tests/kill_launcher.py`` replaces it in the process it starts)."""


def _observe(statement: str, when: str) -> None:
    on_statement(statement, when)


def messages_held(pipeline: dlt.Pipeline) -> dict[int, int]:
    """Message ID to list ID of every message the destination's ``messages`` table holds.

    The destination is the source of truth: a message another pipeline (another shard, or a
    run of every list) loaded and that is gone now must lose its rows, known to the plan or not.
    """
    if not pipeline.default_schema_name:
        return {}
    naming = pipeline.default_schema.naming
    msg_id, list_id = naming.normalize_identifier("MsgID"), naming.normalize_identifier("ListID")
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name(naming.normalize_table_identifier("messages"))
            rows = client.execute_sql(f"SELECT {msg_id}, {list_id} FROM {table}")  # noqa: S608 (our own names)
    except DatabaseUndefinedRelation:
        return {}
    return {int(m): int(lst) for m, lst in rows or [] if m is not None and lst is not None}


def drop_staging_if_empty(pipeline: dlt.Pipeline) -> None:
    """Remove the pipeline's staging dataset from the destination when it holds no row.

    A complete load leaves it with empty tables (``load.truncate_staging_dataset``); the next
    load creates it again. Only once the load completed, by the run that holds the dataset's
    lock, and never where a row remains (anything kept there for a later run stays); dlt's own
    record of its schema there (``_dlt_version``) does not count. A failure here leaves it
    in place, with a warning: the tables are loaded either way.
    """
    if not pipeline.default_schema_name:
        return
    version_table = pipeline.default_schema.version_table_name
    try:
        with pipeline.sql_client() as client, client.with_staging_dataset():
            if not client.has_dataset():
                return
            catalog = client.catalog_name(quote=False)
            query = "SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
            rows = client.execute_sql(query + (" AND table_catalog = %s" if catalog else ""),
                                      client.dataset_name, *([catalog] if catalog else []))
            for (table,) in rows or []:
                if table != version_table and client.execute_sql(
                        f"SELECT 1 FROM {client.make_qualified_table_name(table)} LIMIT 1"):  # noqa: S608 (its own names)
                    return
            client.drop_dataset()
    except Exception as exc:
        log.warning("Could not remove the empty staging dataset of %s: %s", pipeline.dataset_name,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)


__all__ = [
    "DEFAULT_DATASET",
    "DEFAULT_DUCKDB_MEMORY_LIMIT",
    "DEFAULT_LOCK_WAIT_SECONDS",
    "DEFAULT_DUCKDB_PATH",
    "LEGACY_DUCKDB_PATH",
    "Target",
    "can_merge",
    "check_dataset_name",
    "default_duckdb_path",
    "drop_staging_if_empty",
    "duckdb_file",
    "location_of",
    "messages_held",
    "on_statement",
    "resolve_target",
]
