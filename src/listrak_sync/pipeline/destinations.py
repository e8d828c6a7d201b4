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

import dlt
import duckdb
from dlt.common.destination import Destination
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from listrak_sync.errors import ConfigError
from listrak_sync.pipeline.dlt_compat import (
    StatementObserver,
    TransactionalDuckDb,
    TransactionalPostgres,
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
        location: the absolute DuckDB file, or the destination's name for others.
        incremental: whether the destination can merge; if not, every run replaces tables whole.
    """

    factory: Destination
    name: str
    location: str
    incremental: bool


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
        return Target(destination, destination.destination_name, destination.destination_name,
                      can_merge(destination))
    staging: dict[str, Any] = {"staging_dataset_name_layout": staging_layout} if staging_layout else {}
    if destination == "duckdb":
        if not _DUCKDB_SIZE.match(duckdb_memory_limit):
            raise ConfigError(
                f"duckdb_memory_limit {duckdb_memory_limit!r} is not a size DuckDB reads. "
                "Give a number and a unit, such as 32MB or 2GB."
            )
        path = duckdb_file(duckdb_path or default_duckdb_path(), lock_wait_seconds=lock_wait_seconds)
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
    return Target(factory, destination, destination, can_merge(factory))


def default_duckdb_path() -> str:
    """The DuckDB file a run writes when none is set: :data:`DEFAULT_DUCKDB_PATH`, or the file
    an earlier version wrote by default (:data:`LEGACY_DUCKDB_PATH`) where the current
    directory holds that one and not the new one, so an existing replication goes on."""
    if not Path(DEFAULT_DUCKDB_PATH).exists() and Path(LEGACY_DUCKDB_PATH).is_file():
        log.warning("Using %s, the default DuckDB file of earlier versions; rename it to %s (or set --duckdb) "
                    "to query it as listrak.<table>.", LEGACY_DUCKDB_PATH, DEFAULT_DUCKDB_PATH)
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


def duckdb_file(path: str, *, lock_wait_seconds: float = 0.0) -> Path:
    """The absolute DuckDB file for ``path``, after checking that a run can write it.

    Args:
        path: the file, relative to the current directory.
        lock_wait_seconds: how long to wait for another process that holds the file open.

    Raises:
        ConfigError: the directory is missing or read-only, the path is a directory, the file
            is not a DuckDB database, or another process holds it open for longer than the wait.
    """
    resolved = Path(path).expanduser().absolute()
    where = f"DuckDB file {str(resolved)!r}"
    if resolved.is_dir():
        raise ConfigError(f"The {where} is a directory. Pass a file name such as {resolved / DEFAULT_DUCKDB_PATH}.")
    if not resolved.parent.is_dir():
        raise ConfigError(f"The directory of the {where} does not exist. Create it or pass another --duckdb path.")
    if not os.access(resolved.parent, os.W_OK) or (resolved.exists() and not os.access(resolved, os.W_OK)):
        raise ConfigError(f"The {where} is not writable. Pass a --duckdb path in a directory you can write.")
    if resolved.exists():
        try:
            waiting_for_lock(lambda: duckdb.connect(str(resolved)).close(), resolved, lock_wait_seconds)
        except duckdb.Error as exc:
            text = str(exc)
            if is_lock_conflict(exc):
                raise lock_error(resolved, text) from None
            raise ConfigError(
                f"The {where} cannot be opened as a DuckDB database ({text.splitlines()[0]}). "
                "Pass another --duckdb path, or move the file away."
            ) from None
    return resolved


def is_lock_conflict(error: BaseException) -> bool:
    """Whether ``error`` (or its cause) is DuckDB refusing a file another process holds."""
    return "Could not set lock on file" in f"{error} {error.__cause__ or ''}"


def lock_error(path: Path | str, text: str) -> ConfigError:
    """The one-line error for a DuckDB file held by another process, naming it if DuckDB did."""
    holder = re.search(r"PID \d+", text)
    return ConfigError(
        f"The DuckDB file {str(path)!r} is open in another process{f' ({holder.group(0)})' if holder else ''}. "
        "DuckDB allows one writer: close that program (a notebook, the DuckDB CLI), or raise lock_wait_seconds."
    )


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
            if not announced:
                log.info("Waiting up to %.0fs for another process to release %s", seconds, path)
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
    "duckdb_file",
    "messages_held",
    "on_statement",
    "resolve_target",
]
