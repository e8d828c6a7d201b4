"""The dlt source: one resource per table of the stream table, SOAP and REST.

The SOAP resources are :mod:`listrak_sync.pipeline.soap_source`'s, the REST ones
:mod:`listrak_sync.pipeline.rest_source`'s; a run has those its credentials allow, restricted
to ``settings.tables`` if set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dlt
from dlt.extract.resource import DltResource
from dlt.extract.source import DltSource

from listrak_sync.engine.plan import RunMode
from listrak_sync.errors import ObjectSkippedError
from listrak_sync.extract import Extractor
from listrak_sync.pipeline.checkpoint import Checkpoint
from listrak_sync.pipeline.rest_source import RestRun, rest_resources
from listrak_sync.pipeline.rows import dlt_columns
from listrak_sync.pipeline.soap_source import RepairChoice, SoapRun, soap_resources
from listrak_sync.settings import PRODUCTION_ENDPOINT, Settings
from listrak_sync.soap.client import ListrakClient

SOURCE_NAME = "listrak"


def has_soap(settings: Settings) -> bool:
    """Whether the settings hold SOAP credentials (a REST-only user's do not)."""
    return bool(getattr(settings, "has_soap", True))


def has_rest(settings: Settings) -> bool:
    """Whether the settings hold REST credentials (client ID and secret)."""
    return bool(getattr(settings, "has_rest", False))

def build_source(
    settings: Settings,
    client: ListrakClient,
    *,
    extractor: Extractor | None = None,
    full_refresh: bool = False,
    full_refresh_reason: str | None = None,
    on_mode: Callable[[RunMode], None] | None = None,
    known_messages: Mapping[int, int] | None = None,
    repair: RepairChoice | None = None,
    checkpoint: Checkpoint | None = None,
    rest_client: Any | None = None,
    rest_skipped: list[ObjectSkippedError] | None = None,
) -> DltSource:
    """Build the Listrak dlt source from explicit settings and a client.

    This is the seam the CLI and the tests use: the caller keeps the client (and its request
    counters) and the extractor (and its list of skipped objects).

    Args:
        settings: validated settings.
        client: the SOAP client to use.
        extractor: an extractor over ``client``; made here when not given.
        full_refresh: replace every table even where an incremental run would do.
        full_refresh_reason: why ``full_refresh`` is forced (for the summary), if not the user's request.
        on_mode: told the run's mode (full or incremental, and why) once it is decided.
        known_messages: message ID to list ID of what the destination holds, so that messages
            that vanished lose their rows even where the plan does not know them.
        repair: a repair (``listrak-sync verify --repair``): given the messages just read and
            the plan, the ``(table, MsgID)`` pairs to re-read; nothing else is fetched.
        checkpoint: where the activity units are kept as they finish, and where an interrupted
            run's units are served from (:mod:`listrak_sync.pipeline.checkpoint`).
        rest_client: the REST client, given when the settings have REST credentials: the REST
            tables are then resources too (:mod:`listrak_sync.pipeline.rest_source`).
        rest_skipped: where the REST objects skipped (refused) are told, for the summary.

    Returns:
        A dlt source with one resource per stream, restricted to ``settings.tables`` if set.
        With ``settings.list_ids`` (a list shard) every table is merged per list and per
        message: the run replaces exactly its lists' rows and leaves other lists' rows alone.
    """
    run = SoapRun(extractor or Extractor(client, settings), settings, full_refresh, on_mode, full_refresh_reason,
               known_messages, checkpoint=checkpoint)
    run.repair = repair
    rest = None if rest_client is None else RestRun(
        rest_client, settings, full_refresh=full_refresh, full_refresh_reason=full_refresh_reason,
        progress=run.extractor.progress, skipped=rest_skipped)

    @dlt.source(name=SOURCE_NAME, max_table_nesting=0, root_key=False)
    def _listrak() -> list[DltResource]:
        soap = soap_resources(run) if has_soap(settings) else []
        return soap + (rest_resources(rest, dlt_columns) if rest is not None else [])

    source = _listrak()
    if settings.tables:
        source = source.with_resources(*settings.tables)
    return source


@dlt.source(name=SOURCE_NAME, max_table_nesting=0, root_key=False)
def listrak_source(
    username: str = dlt.secrets.value,
    password: str = dlt.secrets.value,
    start_date: str = dlt.config.value,
    endpoint: str = PRODUCTION_ENDPOINT,
    concurrency: int = 8,
    list_ids: Sequence[int] | None = None,
    full_refresh: bool = False,
    options: dict[str, Any] | None = None,
) -> list[DltResource]:
    """The Listrak source for your own dlt pipelines.

    Credentials resolve the dlt way (``.dlt/secrets.toml`` ``[sources.listrak]``, or the
    environment variables ``SOURCES__LISTRAK__USERNAME`` / ``SOURCES__LISTRAK__PASSWORD``).

    Args:
        username: the Listrak API user.
        password: its password (a secret: never logged).
        start_date: earliest data to replicate, ``MM/DD/YYYY`` or ``YYYY-MM-DD``.
        endpoint: the SOAP endpoint (production, a proxy, or the bundled simulator).
        concurrency: most requests in flight at once.
        list_ids: replicate only these lists (default: every list the user can see).
        full_refresh: replace every table even where an incremental run would do.
        options: any further :class:`~listrak_sync.settings.Settings` field by name.

    Returns:
        Nine resources, one per table; use ``.with_resources(...)`` to pick some.

    Raises:
        ConfigError: a setting is missing or malformed.
    """
    settings = Settings.from_mapping(
        {
            **(options or {}),
            "username": username,
            "password": password,
            "start_date": start_date,
            "endpoint": endpoint,
            "concurrency": concurrency,
            "list_ids": list_ids,
        }
    )
    run = SoapRun(Extractor(ListrakClient(settings), settings), settings, full_refresh, owns_client=True)
    return soap_resources(run)


__all__ = ["RepairChoice", "build_source", "dlt_columns", "has_rest", "has_soap", "listrak_source"]
