"""Every place listrak-sync relies on dlt beyond its documented API, in one module.

``tests/test_dlt_compat.py`` checks each assumption below by name, so that a dlt release that
breaks one fails there with the assumption it broke, not somewhere deep in a load. The lowest
dlt they hold for is the lower bound in ``pyproject.toml`` (1.30: ``SchemaUpdateError``).

What we rely on, and why:

1. **``Destination._raw_capabilities()``** (private) of dlt's ``duckdb`` and ``postgres``
   factories, overridden to set ``supports_transactions``. dlt leaves it unset for both, so the
   ``DELETE`` and ``INSERT`` of a table's replace or merge run in autocommit and a kill between
   them empties the table (found by the kill tests).
2. **``Destination.client_class``** (property), overridden to hand dlt our job client class.
3. **The job clients** ``DuckDbClient`` and ``PostgresClient`` (``dlt.destinations.impl.*``):
   built as ``(schema, config, capabilities)``, their ``sql_client`` attribute replaced after
   ``__init__`` by our subclass of theirs.
4. **The SQL clients** ``DuckDbSqlClient`` and ``Psycopg2SqlClient``: built as
   ``(dataset_name, staging_dataset_name, credentials, capabilities)``; every statement of the
   loader passes through the context manager ``execute_query`` (we tell an observer before and
   after: the kill tests' seam); DuckDB's ``open_connection()`` returns the connection (we wait
   for another process's file lock and set ``memory_limit`` there); ``catalog_name(quote,
   casefold)`` is the catalog of qualified names (the file's catalog, so that a dataset may
   share the file's name: ``listrak.duckdb`` and dataset ``listrak``; DuckDB's own rule for
   files named like its catalogs, ``main.duckdb``, is :func:`duckdb_catalog`), and
   ``drop_dataset()`` drops the schema named ``dataset_name`` (we drop it by its bare name in
   DuckDB, where the catalog-qualified ``DROP SCHEMA`` is ambiguous in that case).
5. **``DuckDbCredentials.database``** (``dlt.destinations.impl.duckdb.configuration``), set as a
   field: given as text, dlt parses it as a connection string with SQLAlchemy when that is
   installed (the Dagster extra), importing all of it (+30 MiB).
6. **Configuration lookup order**: a provider added with ``dlt.config.register_provider`` is
   asked after every other provider, for every section path, first with the pipeline's name and
   then without; ``PipeIterator.PipeIteratorConfiguration.next_item_mode`` is read under section
   ``extract`` and ``LoaderConfiguration.truncate_staging_dataset`` under ``load``, in the
   thread that runs the step. So :func:`run_defaults` gives values that any user setting beats,
   for one run only, without touching ``os.environ``.
7. **``SchemaUpdateError``** and **``SchemaUpdateTransientError``**
   (``dlt.common.destination.exceptions``, new in dlt 1.30): what dlt raises when a schema's DDL
   fails, with the database error as ``cause``; two list shards updating one dataset's tables
   at once clash there, and the load is retried.
8. **A factory's ``__init__`` signature**: ``Destination.__init__`` drops the options equal to
   the defaults of the class's own ``__init__``, so that only options given explicitly override
   the configuration; a subclass that redefined ``__init__`` would pin every default (e.g.
   ``credentials=None``) over ``DESTINATION__POSTGRES__CREDENTIALS``. Ours keep dlt's.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import dlt
from dlt.common.configuration.providers import ConfigProvider
from dlt.common.destination.exceptions import SchemaUpdateError, SchemaUpdateTransientError
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials
from dlt.destinations.impl.duckdb.duck import DuckDbClient
from dlt.destinations.impl.duckdb.factory import duckdb as duckdb_factory
from dlt.destinations.impl.duckdb.sql_client import DuckDbSqlClient
from dlt.destinations.impl.postgres.factory import postgres as postgres_factory

StatementObserver = Callable[[str, str], None]
"""Told each SQL statement of the loader and ``"before"`` or ``"after"`` it ran (inside its transaction)."""
Connector = Callable[[Callable[[], Any]], Any]
"""Opens a DuckDB connection given dlt's own way of opening it, and returns the connection."""


# DuckDB gives a file whose name would be one of its own catalogs the name plus "_db".
_RESERVED_CATALOGS = ("main", "temp", "system")


_UNQUALIFIED_INFORMATION_SCHEMA = re.compile(r'(?<![\w."])information_schema\.', re.IGNORECASE)


def duckdb_catalog(path: str) -> str | None:
    """The catalog DuckDB names the file ``path`` after: the file name up to its first dot,
    ``_db`` appended where that is one of DuckDB's own catalogs (``main.duckdb``: ``main_db``);
    None for an in-memory database."""
    catalog = Path(path).name.split(".")[0]
    if not catalog or catalog.startswith(":"):
        return None
    return catalog + "_db" if catalog.lower() in _RESERVED_CATALOGS else catalog


def duckdb_credentials(path: Path) -> DuckDbCredentials:
    """dlt credentials for the DuckDB file ``path`` (assumption 5)."""
    credentials = DuckDbCredentials()
    credentials.database = str(path)
    return credentials


class _Transactional:
    """Declares transactions (1 above): dlt then merges and replaces a table in one transaction."""

    def _raw_capabilities(self) -> Any:
        caps = super()._raw_capabilities()  # type: ignore[misc]
        caps.supports_transactions = True
        return caps


class TransactionalDuckDb(_Transactional, duckdb_factory):
    """dlt's DuckDB destination with transactions, catalog-qualified names and hooks (1-4 above).

    Built as dlt's ``duckdb`` factory is; then set ``connect``, which opens each connection dlt
    asks for given dlt's own opener, and ``observe``, told every statement before and after it
    runs. (Not ``__init__`` arguments: dlt reads its factories' own ``__init__`` signature to
    tell the options given from their defaults, 8 above.)
    """

    connect: Connector = staticmethod(lambda open_connection: open_connection())
    observe: StatementObserver = staticmethod(lambda statement, when: None)

    @property
    def client_class(self) -> Any:
        sql_client = type("ListrakDuckDbSqlClient", (_ObservedSqlClient, _CatalogQualifiedSqlClient),
                          {"connect": staticmethod(self.connect), "observe": staticmethod(self.observe)})
        return type("ListrakDuckDbClient", (_ReplacedSqlClient, DuckDbClient), {"sql_client_class": sql_client})


class TransactionalPostgres(_Transactional, postgres_factory):
    """dlt's PostgreSQL destination with transactions and a statement observer (1-4 above).

    Built as dlt's ``postgres`` factory is; then set ``observe``, told every statement before
    and after it runs.
    """

    observe: StatementObserver = staticmethod(lambda statement, when: None)

    @property
    def client_class(self) -> Any:
        # Imported here: they need psycopg2, which only the postgres extra installs.
        from dlt.destinations.impl.postgres.postgres import PostgresClient
        from dlt.destinations.impl.postgres.sql_client import Psycopg2SqlClient

        sql_client = type("ListrakPostgresSqlClient", (_ObservedSqlClient, Psycopg2SqlClient),
                          {"observe": staticmethod(self.observe)})
        return type("ListrakPostgresClient", (_ReplacedSqlClient, PostgresClient), {"sql_client_class": sql_client})


class _ReplacedSqlClient:
    """Mixin for a dlt job client: its SQL client is ours, built as dlt built its own (3)."""

    sql_client_class: type

    def __init__(self, schema: Any, config: Any, capabilities: Any) -> None:
        super().__init__(schema, config, capabilities)  # type: ignore[call-arg]
        base = self.sql_client  # type: ignore[has-type]
        self.sql_client = self.sql_client_class(base.dataset_name, base.staging_dataset_name, config.credentials,
                                                capabilities)


class _ObservedSqlClient:
    """Mixin for a dlt SQL client: every statement is observed before and after it runs (4)."""

    observe: StatementObserver

    @contextmanager
    def execute_query(self, query: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        self.observe(str(query), "before")
        with super().execute_query(query, *args, **kwargs) as cursor:  # type: ignore[misc]
            yield cursor
        self.observe(str(query), "after")


class _CatalogQualifiedSqlClient(DuckDbSqlClient):
    connect: Connector

    def open_connection(self) -> Any:
        return self.connect(super().open_connection)

    @contextmanager
    def execute_query(self, query: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        # In a file named information_schema.duckdb, dlt's unqualified INFORMATION_SCHEMA
        # (its catalog queries) is ambiguous: DuckDB's own views live in the system catalog.
        if isinstance(query, str) and duckdb_catalog(str(self.credentials.database)) == "information_schema":
            query = _UNQUALIFIED_INFORMATION_SCHEMA.sub('"system".INFORMATION_SCHEMA.', query)
        with super().execute_query(query, *args, **kwargs) as cursor:
            yield cursor

    def catalog_name(self, quote: bool = True, casefold: bool = True) -> str | None:
        catalog = duckdb_catalog(str(self.credentials.database))
        if catalog is None:
            return None
        if casefold:
            catalog = self.capabilities.casefold_identifier(catalog)
        return self.capabilities.escape_identifier(catalog) if quote else catalog

    def drop_dataset(self) -> None:
        # DuckDB binds `DROP SCHEMA catalog.schema` as ambiguous wherever a schema has the
        # catalog's name (listrak.duckdb holding dataset listrak); the connection's default
        # catalog is the file, so the bare name is the same schema.
        self.execute_sql(f"DROP SCHEMA {self.capabilities.escape_identifier(self.dataset_name)} CASCADE")


class _RunDefaults(ConfigProvider):
    """Asked last, and only inside :func:`run_defaults` of the same thread: dlt skips it as empty
    everywhere else, so it changes nothing for any other pipeline of the process (6)."""

    def __init__(self) -> None:
        self.active: ContextVar[Mapping[str, Any] | None] = ContextVar("listrak_sync_run_defaults", default=None)

    def get_value(self, key: str, hint: Any, pipeline_name: str | None, *sections: str) -> tuple[Any, str]:
        path = ".".join((*sections, key))
        values = self.active.get()
        # Under the pipeline's name dlt asks before it asks the other providers without it: a
        # user's EXTRACT__NEXT_ITEM_MODE must win over our default, so answer only without it.
        if values is None or pipeline_name:
            return None, path
        return values.get(path), path

    @property
    def supports_secrets(self) -> bool:
        return False

    @property
    def supports_sections(self) -> bool:
        return True

    @property
    def name(self) -> str:
        return "listrak-sync run defaults"

    @property
    def is_empty(self) -> bool:
        return self.active.get() is None


_RUN_DEFAULTS = _RunDefaults()
_registering = threading.Lock()


@contextmanager
def run_defaults(values: Mapping[str, Any]) -> Iterator[None]:
    """dlt settings for the steps this thread runs inside the block, unless configured otherwise.

    Any value the user configured (environment, ``.dlt/*.toml``, with or without the pipeline's
    name) wins. Other threads, and this one after the block, see dlt's configuration unchanged.

    Args:
        values: dotted dlt keys and their values, e.g. ``{"extract.next_item_mode": "fifo"}``.
    """
    with _registering:
        if not any(provider is _RUN_DEFAULTS for provider in dlt.config.config_providers):
            dlt.config.register_provider(_RUN_DEFAULTS)
    token = _RUN_DEFAULTS.active.set(dict(values))
    try:
        yield
    finally:
        _RUN_DEFAULTS.active.reset(token)


def schema_update_clash(error: BaseException) -> bool:
    """Whether ``error`` is dlt failing to apply DDL because another writer changed the same tables (7)."""
    if not isinstance(error, SchemaUpdateError):
        return False
    cause = f"{error.__cause__ or ''} {getattr(error, 'cause', '')}".lower()
    return isinstance(error, SchemaUpdateTransientError) or any(
        clash in cause for clash in ("deadlock", "could not serialize", "already exists", "duplicate key")
    )


__all__ = [
    "Connector",
    "StatementObserver",
    "TransactionalDuckDb",
    "TransactionalPostgres",
    "duckdb_credentials",
    "run_defaults",
    "schema_update_clash",
]
