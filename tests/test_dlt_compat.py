"""Each assumption ``listrak_sync.pipeline.dlt_compat`` makes about dlt, checked by its number there.

A dlt release that breaks one fails here first, with the assumption named. Runs against any dlt
that pyproject.toml allows (its lower bound too: see the module docstring of dlt_compat).
"""

from __future__ import annotations

import importlib
import inspect
import os
import threading
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest
from helpers import POSTGRES_DSN


def internal(where: str, assumption: int) -> Any:
    """The dlt object at ``module:name``, or a failure naming the assumption of dlt_compat it breaks."""
    module, name = where.split(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"dlt {dlt.__version__} breaks assumption {assumption} of listrak_sync.pipeline.dlt_compat: "
                    f"no {module}.{name} ({exc})")


def compat() -> Any:
    """listrak_sync.pipeline.dlt_compat, or a failure naming what this dlt lacks."""
    try:
        return importlib.import_module("listrak_sync.pipeline.dlt_compat")
    except ImportError as exc:
        pytest.fail(f"listrak_sync.pipeline.dlt_compat cannot import with dlt {dlt.__version__}: {exc}")


def parameters(function: Any) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name != "self"]


def duckdb_pipeline(tmp_path: Path, **hooks: Any) -> dlt.Pipeline:
    ours = compat()
    destination = ours.TransactionalDuckDb(credentials=ours.duckdb_credentials(tmp_path / "compat.duckdb"))
    for name, hook in hooks.items():
        setattr(destination, name, hook)
    return dlt.pipeline(pipeline_name="compat_check", destination=destination, dataset_name="compat",
                        pipelines_dir=str(tmp_path / "work"))


@pytest.mark.parametrize("name", ["duckdb", "postgres"])
def test_1_raw_capabilities_is_where_dlt_leaves_transactions_unset(name: str) -> None:
    factory = internal(f"dlt.destinations.impl.{name}.factory:{name}", 1)
    assert callable(getattr(factory, "_raw_capabilities", None)), "dlt renamed Destination._raw_capabilities"
    assert parameters(factory._raw_capabilities) == [], "Destination._raw_capabilities takes arguments now"
    caps = factory()._raw_capabilities()
    assert hasattr(caps, "supports_transactions"), "capabilities lost supports_transactions"
    # If dlt sets it itself one day, our override is no longer needed (still harmless).
    ours = compat().TransactionalDuckDb if name == "duckdb" else compat().TransactionalPostgres
    assert ours().capabilities().supports_transactions is True


def test_2_client_class_is_a_property_dlt_builds_the_job_client_from(tmp_path: Path) -> None:
    destination = internal("dlt.common.destination:Destination", 2)
    assert isinstance(inspect.getattr_static(destination, "client_class"), property)
    client = duckdb_pipeline(tmp_path).destination_client()
    assert isinstance(client, internal("dlt.destinations.impl.duckdb.duck:DuckDbClient", 2))
    assert type(client).__name__ == "ListrakDuckDbClient"


def test_3_job_clients_are_built_from_schema_config_capabilities_and_hold_a_sql_client(tmp_path: Path) -> None:
    for job_client in (internal("dlt.destinations.impl.duckdb.duck:DuckDbClient", 3),
                       internal("dlt.destinations.impl.postgres.postgres:PostgresClient", 3)):
        assert parameters(job_client.__init__)[:3] == ["schema", "config", "capabilities"], job_client
    client = duckdb_pipeline(tmp_path).destination_client()
    assert type(client.sql_client).__name__ == "ListrakDuckDbSqlClient"
    assert isinstance(client.sql_client, internal("dlt.destinations.impl.duckdb.sql_client:DuckDbSqlClient", 3))
    assert client.sql_client.dataset_name == "compat"


def test_4_sql_clients_open_observe_and_qualify_as_we_assume(tmp_path: Path) -> None:
    duckdb_client = internal("dlt.destinations.impl.duckdb.sql_client:DuckDbSqlClient", 4)
    for sql_client in (duckdb_client, internal("dlt.destinations.impl.postgres.sql_client:Psycopg2SqlClient", 4)):
        assert parameters(sql_client.__init__)[:4] == ["dataset_name", "staging_dataset_name", "credentials",
                                                      "capabilities"], sql_client
        assert hasattr(sql_client.execute_query, "__wrapped__"), f"{sql_client.__name__}.execute_query: not a context"
    assert parameters(duckdb_client.catalog_name) == ["quote", "casefold"], "catalog_name's signature changed"
    opened: list[Any] = []
    seen: list[tuple[str, str]] = []

    def connect(open_connection: Any) -> Any:
        opened.append(open_connection())
        return opened[-1]

    pipeline = duckdb_pipeline(tmp_path, connect=connect, observe=lambda sql, when: seen.append((sql, when)))
    with pipeline.sql_client() as client:
        client.execute_sql("SELECT 1")
        client.execute_many(["SELECT 2", "SELECT 3"])
        table = client.make_qualified_table_name("messages")
    assert len(opened) == 1 and opened[0] is not None, "open_connection no longer returns the connection"
    # execute_many may join statements into one call; each is observed before and after it runs
    assert [when for _, when in seen] == ["before", "after"] * (len(seen) // 2), seen
    observed = " ".join(sql for sql, when in seen if when == "after")
    assert all(f"SELECT {n}" in observed for n in (1, 2, 3)), "statements no longer pass execute_query"
    assert table == '"compat"."compat"."messages"', "qualified names no longer start with catalog_name()"


@pytest.mark.postgres
def test_4_postgres_statements_pass_the_observer(tmp_path: Path) -> None:
    seen: list[str] = []
    destination = compat().TransactionalPostgres(credentials=POSTGRES_DSN)
    destination.observe = lambda sql, when: seen.append(when)
    pipeline = dlt.pipeline(pipeline_name="compat_check_pg", destination=destination, dataset_name="compat",
                            pipelines_dir=str(tmp_path / "work"))
    with pipeline.sql_client() as client:
        assert client.execute_sql("SELECT 1") == [(1,)]
    assert seen == ["before", "after"]


def test_5_duckdb_credentials_take_the_path_as_a_field(tmp_path: Path) -> None:
    credentials = internal("dlt.destinations.impl.duckdb.configuration:DuckDbCredentials", 5)
    assert "database" in credentials().__dataclass_fields__
    client = duckdb_pipeline(tmp_path).destination_client()
    assert client.config.credentials.database == str(tmp_path / "compat.duckdb")


def test_6_the_settings_we_default_are_read_where_we_assume() -> None:
    assert callable(getattr(dlt.config, "register_provider", None)), "dlt.config.register_provider is gone"
    assert issubclass(type(dlt.config.config_providers[0]),
                      internal("dlt.common.configuration.providers:ConfigProvider", 6))
    spec = internal("dlt.extract.pipe_iterator:PipeIterator", 6).PipeIteratorConfiguration
    assert spec.__section__ == "extract" and "next_item_mode" in spec.__dataclass_fields__
    loader = internal("dlt.load.configuration:LoaderConfiguration", 6)
    assert "truncate_staging_dataset" in loader.__dataclass_fields__


def _resolved(pipeline: dlt.Pipeline, *keys: str) -> dict[str, tuple[Any, str]]:
    trace = pipeline.last_trace
    assert trace is not None
    return {v.key: (v.value, v.provider_name) for v in trace.resolved_config_values if v.key in keys}


def _merge_twice(tmp_path: Path, defaults: dict[str, Any]) -> tuple[dict[str, tuple[Any, str]], int]:
    """A merge run (which stages its rows) under ``defaults``: what dlt resolved, and the rows left staged."""
    pipeline = duckdb_pipeline(tmp_path)

    @dlt.resource(primary_key="id", write_disposition="merge")
    def rows() -> Any:
        yield [{"id": 1}, {"id": 2}]

    with compat().run_defaults(defaults):
        pipeline.run(rows())
        pipeline.run(rows())
    with duckdb.connect(str(tmp_path / "compat.duckdb")) as con:
        ((staged,),) = con.execute('SELECT count(*) FROM compat_staging."rows"').fetchall()
    return _resolved(pipeline, "next_item_mode", "truncate_staging_dataset"), int(staged)


def test_6_run_defaults_reach_the_steps_and_lose_to_any_user_value(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EXTRACT__NEXT_ITEM_MODE", "LOAD__TRUNCATE_STAGING_DATASET"):
        monkeypatch.delenv(name, raising=False)
    defaults = {"extract.next_item_mode": "fifo", "load.truncate_staging_dataset": True}
    resolved, staged = _merge_twice(tmp_path / "ours", defaults)
    assert resolved == {"next_item_mode": ("fifo", "listrak-sync run defaults"),
                        "truncate_staging_dataset": (True, "listrak-sync run defaults")}
    assert staged == 0

    monkeypatch.setenv("LOAD__TRUNCATE_STAGING_DATASET", "false")  # a user's own settings win,
    monkeypatch.setenv("COMPAT_CHECK__EXTRACT__NEXT_ITEM_MODE", "round_robin")  # the pipeline's too
    resolved, staged = _merge_twice(tmp_path / "theirs", defaults)
    assert {key: value for key, (value, _) in resolved.items()} == {"next_item_mode": "round_robin",
                                                                    "truncate_staging_dataset": "false"}
    assert staged == 2


def test_6_run_defaults_are_seen_by_this_thread_inside_the_block_only() -> None:
    key = "extract.next_item_mode"
    assert dlt.config.get(key) is None
    elsewhere: list[Any] = []
    with compat().run_defaults({key: "fifo"}):
        assert dlt.config.get(key) == "fifo"
        other = threading.Thread(target=lambda: elsewhere.append(dlt.config.get(key)))
        other.start()
        other.join()
    assert elsewhere == [None]
    assert dlt.config.get(key) is None
    assert os.environ.get("EXTRACT__NEXT_ITEM_MODE") is None


def test_7_a_clash_of_two_writers_ddl_is_a_schema_update_error() -> None:
    error = internal("dlt.common.destination.exceptions:SchemaUpdateError", 7)
    transient = internal("dlt.common.destination.exceptions:SchemaUpdateTransientError", 7)
    clash = compat().schema_update_clash
    assert issubclass(transient, error)
    deadlock = RuntimeError("deadlock detected")
    assert parameters(error.__init__)[:3] == ["schema_name", "table_names", "cause"]
    assert error("listrak", ["messages"], deadlock).cause is deadlock
    assert clash(error("listrak", ["messages"], deadlock))
    assert clash(transient("listrak", [], RuntimeError("timeout")))
    assert not clash(error("listrak", [], RuntimeError("permission denied")))
    assert not clash(RuntimeError("deadlock detected"))


@pytest.mark.parametrize("name", ["TransactionalDuckDb", "TransactionalPostgres"])
def test_8_options_left_at_their_defaults_leave_the_configuration_to_the_user(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    factory = getattr(compat(), name)
    assert factory().config_params == {}, "dlt took a default of the factory's __init__ for an explicit option"
    assert factory(destination_name="x").config_params == {"destination_name": "x"}
    if name == "TransactionalPostgres":
        monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", POSTGRES_DSN)
        configured = factory(destination_name="postgres").configuration(None, accept_partial=True)
        assert configured.credentials.database == "test"


@pytest.mark.parametrize("name", ["main", "Temp", "SYSTEM", "information_schema", "listrak", "x.y"])
def test_4_duckdb_names_a_file_s_catalog_as_duckdb_catalog_says(name: str, tmp_path: Path) -> None:
    path = str(tmp_path / f"{name}.duckdb")
    with duckdb.connect(path) as connection:
        assert connection.execute("SELECT current_database()").fetchone()[0] == compat().duckdb_catalog(path)
