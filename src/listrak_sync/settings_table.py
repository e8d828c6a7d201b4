"""THE table of settings: every key of every surface, one entry each.

Everything else reads it: the :class:`~listrak_sync.settings.Settings` fields' defaults and how
each value is parsed, the ``listrak-sync run`` and ``check`` flags, the places ``run`` looks a
key up (``LISTRAK_<KEY>``, ``[sources.listrak]``), the tap's ``--about`` settings and the
configuration reference in the docs. A test holds :class:`Settings` and this table in step.

A key belongs to some of four surfaces (:class:`Surface`):

- ``run``: ``listrak-sync run`` and the Dagster assets, from its flag (if any), ``LISTRAK_<KEY>``
  or dlt's configuration (``listrak_sync.pipeline.run_settings``);
- ``check``: ``listrak-sync check`` offers its flag (it reads the other keys as ``run`` does);
- ``tap``: a key of ``tap-listrak``'s config: the keys ``singer-io/tap-listrak`` reads, our
  tuning keys, and the tap's own options. An allow-list: settings of the dlt job only (``tables``,
  which the catalog replaces; ``full_recheck_days``, ``trust_counters`` and ``send_settle_hours``,
  which the tap takes at their defaults) are not, so that a config holding them gets the
  unknown-keys warning, as tap-listrak 1.3.1's configs with extra keys do;
- ``library``: a field of :class:`Settings`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

PRODUCTION_ENDPOINT = "https://webservices.listrak.com/v31/IntegrationService.asmx"
REST_ENDPOINT = "https://api.listrak.com/email/v1"
TOKEN_ENDPOINT = "https://auth.listrak.com/OAuth2/Token"  # noqa: S105 (a URL, not a password)


class Surface(enum.Enum):
    """Where a key can be set (see the module docstring)."""

    RUN = "run"
    CHECK = "check"
    TAP = "tap"
    LIBRARY = "library"


class SettingType(enum.Enum):
    """What a key's value is; :mod:`listrak_sync.settings` parses each type one way."""

    TEXT = "text"
    DATE = "date"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    LIST_IDS = "list IDs"
    TABLE_NAMES = "table names"

    @property
    def json_schema(self) -> dict[str, Any]:
        """The JSON schema of a value of this type (a date is text in any accepted form)."""
        schemas: dict[SettingType, dict[str, Any]] = {
            SettingType.INTEGER: {"type": "integer"},
            SettingType.NUMBER: {"type": "number"},
            SettingType.BOOLEAN: {"type": "boolean"},
            SettingType.LIST_IDS: {"type": "array", "items": {"type": "integer"}},
            SettingType.TABLE_NAMES: {"type": "array", "items": {"type": "string"}},
        }
        return schemas.get(self, {"type": "string"})


@dataclass(frozen=True)
class Setting:
    """One key: its name everywhere, type, default, meaning, and where it can be set.

    ``default`` is the value used when the key is not set (``None``: unset, e.g. every table);
    ``shown_default`` describes one that is not a plain value, for the docs.
    """

    name: str
    type: SettingType
    surfaces: frozenset[Surface]
    description: str = ""
    default: Any = None
    required: bool = False
    secret: bool = False
    flag: str | None = None
    field: str | None = None  # the Settings field and tap key, if not ``name``
    unit: str = ""
    shown_default: str | None = None
    limits: tuple[float, float] | None = None  # the least and the most a number may be

    @property
    def range_text(self) -> str:
        """``1-64``, ``0-3,600 s``: the limits as the docs and errors show them ('' if none)."""
        if self.limits is None:
            return ""
        low, high = (f"{v:,.0f}" if float(v).is_integer() else f"{v:g}" for v in self.limits)
        return f"{low}-{high}{' ' + self.unit if self.unit else ''}"

    @property
    def field_name(self) -> str:
        """The :class:`Settings` field (and tap config key) it fills."""
        return self.field or self.name

    @property
    def env(self) -> str | None:
        """``LISTRAK_<NAME>``, for a key of ``run``."""
        return f"LISTRAK_{self.name.upper()}" if Surface.RUN in self.surfaces else None

    @property
    def default_text(self) -> str:
        """The default as the docs show it: ``shown_default``, else the value in backticks with its unit."""
        if self.shown_default is not None:
            return self.shown_default
        value = self.default
        shown = str(value).lower() if isinstance(value, bool) else f"{value:g}" if isinstance(value, float) else value
        return f"`{shown}`{' ' + self.unit if self.unit else ''}"


_RUN, _CHECK, _TAP, _LIB = Surface.RUN, Surface.CHECK, Surface.TAP, Surface.LIBRARY
_EVERYWHERE = frozenset(Surface)
_NOT_CHECK = frozenset({_RUN, _TAP, _LIB})
_NOT_TAP = frozenset({_RUN, _LIB})
_RUN_ONLY = frozenset({_RUN})
_TAP_ONLY = frozenset({_TAP})
T = SettingType

SETTINGS: tuple[Setting, ...] = (
    # The SOAP pair, the REST pair, or both: a run needs one (Settings says which it has).
    Setting("username", T.TEXT, _EVERYWHERE, default="", flag="--username",
            shown_default="prompt on a terminal, unless the REST pair is set",
            description="Listrak SOAP API user (Manage > Accounts > User Manager, with API Access)."),
    Setting("password", T.TEXT, _EVERYWHERE, secret=True,
            shown_default="prompt on a terminal, unless the REST pair is set",
            description="The API user's password: sent only in the SOAP header, never logged. No flag, by design: "
                        "keep it out of shell history."),
    Setting("client_id", T.TEXT, _EVERYWHERE, default="", flag="--client-id", shown_default="none (no REST tables)",
            description="Client ID of a Listrak Email integration (Integrations > Integration Management): the REST "
                        "API's tables."),
    Setting("client_secret", T.TEXT, _EVERYWHERE, secret=True, shown_default="none (no REST tables)",
            description="The integration's Client Secret: sent only to the token endpoint, never logged. No flag, "
                        "by design: keep it out of shell history."),
    Setting("start_date", T.DATE, _NOT_CHECK, required=True, flag="--start-date", shown_default="required",
            description="Earliest data: `MM/DD/YYYY`, `YYYY-MM-DD` or an ISO timestamp."),
    Setting("endpoint", T.TEXT, _EVERYWHERE, default=PRODUCTION_ENDPOINT, flag="--endpoint",
            description="SOAP endpoint: production, a proxy or the simulator."),
    Setting("rest_endpoint", T.TEXT, _EVERYWHERE, default=REST_ENDPOINT, flag="--rest-endpoint",
            description="REST API base URL (up to `/v1`): production, a proxy or the simulator."),
    Setting("token_endpoint", T.TEXT, _EVERYWHERE, default=TOKEN_ENDPOINT, flag="--token-endpoint",
            description="OAuth2 token URL of the REST API: production, a proxy or the simulator."),
    Setting("tables", T.TABLE_NAMES, _NOT_TAP, flag="--tables", shown_default="all nine",
            description="Tables to replicate, comma-separated (`lists,messages`)."),
    Setting("lists", T.LIST_IDS, _NOT_CHECK, flag="--lists", field="list_ids",
            shown_default="every list the user can see",
            description="List IDs to replicate, comma-separated."),
    Setting("destination", T.TEXT, _RUN_ONLY, default="duckdb", flag="--destination",
            description="A dlt destination name (`postgres`, `filesystem`, ...); its credentials the dlt way "
                        "(`DESTINATION__POSTGRES__CREDENTIALS`)."),
    Setting("duckdb", T.TEXT, _RUN_ONLY, default="listrak_sync.duckdb", flag="--duckdb",
            description="DuckDB file, relative to the current directory (`listrak.duckdb`, the default of "
                        "earlier versions, where one exists and this does not); dlt's "
                        "`DESTINATION__DUCKDB__CREDENTIALS` names it too (see above)."),
    Setting("dataset", T.TEXT, _RUN_ONLY, default="listrak", flag="--dataset",
            description="Dataset (schema) to load into."),
    Setting("lock_wait_seconds", T.NUMBER, _RUN_ONLY, default=60.0, unit="s",
            description="Seconds to wait while another process holds the DuckDB file.", limits=(0, 86_400)),
    # DuckDB's own default is 80% of RAM, and it took it: inserting 2.4M opens from Parquet
    # peaked 180 MiB above the process; 118 MiB at 128MB, 75 at 64MB, 42 at 32MB, for 1.9x the
    # insert time at 32MB. ``benchmarks/run.py --large``: the whole load 6.7 s -> about 10 s,
    # peak RSS 406 -> 266 MiB with the other memory bounds. 16MB ran out on 600,000 rows of
    # 0.5 KB; 32MB did not.
    Setting("duckdb_memory_limit", T.TEXT, _RUN_ONLY, default="32MB",
            description="DuckDB's memory while loading; beyond it, it spills to `<file>.tmp`."),
    # Listrak documents no rate limit; 8 is what a browser opens to one host at most, enough to
    # hide the per-page latency (a page is one slow report query server-side) without looking
    # like a flood, and the client halves it by itself whenever the service signals overload.
    Setting("concurrency", T.INTEGER, _NOT_CHECK, default=8, flag="--concurrency",
            description="Most requests in flight (1-64); halves by itself on 503/429.", limits=(1, 64)),
    Setting("connect_timeout", T.NUMBER, _NOT_CHECK, default=10.0, flag="--connect-timeout", unit="s",
            description="Seconds to wait for a connection.", limits=(0, 3_600)),
    Setting("read_timeout", T.NUMBER, _NOT_CHECK, default=120.0, flag="--read-timeout", unit="s",
            description="Seconds to wait for each read of a response.", limits=(0, 86_400)),
    # One whole HTTP exchange, body included: read_timeout alone is per read, so a server
    # trickling a byte every few seconds would never time out.
    Setting("request_deadline", T.NUMBER, _NOT_CHECK, default=300.0, flag="--request-deadline", unit="s",
            description="Seconds one whole request may take, body included (at least `read_timeout`).",
            limits=(0, 86_400)),
    # Counted decompressed; a 2,500-row page of the widest report is ~700 kB. The body is held
    # whole until it is refused, so this (times concurrency) bounds what a hostile answer costs.
    Setting("max_response_bytes", T.INTEGER, _NOT_CHECK, default=128 * 1024 * 1024, flag="--max-response-bytes",
            unit="bytes", description="Largest response accepted, counted after decompression.", limits=(1_024, 2**40)),
    # 24 retries of full-jitter backoff capped at 30 s sleep ~290 s on average, so a 120 s
    # outage is bridged (P(not) ~ 1e-5); the budget bounds how long one request may keep trying.
    Setting("max_retries", T.INTEGER, _NOT_CHECK, default=24, flag="--max-retries",
            description="Retries of one request after a transient failure (timeouts, 5xx, overload); access "
                        "errors are never retried.", limits=(0, 1_000)),
    Setting("retry_budget_seconds", T.NUMBER, _NOT_CHECK, default=600.0, flag="--retry-budget-seconds", unit="s",
            description="Total time one request may spend retrying, sleeps included.", limits=(0, 604_800)),
    Setting("backoff_base", T.NUMBER, _NOT_CHECK, default=0.5, unit="s",
            description="First retry delay (exponential, full jitter).", limits=(0, 3_600)),
    Setting("backoff_max", T.NUMBER, _NOT_CHECK, default=30.0, unit="s",
            description="Longest retry delay.", limits=(0, 86_400)),
    Setting("interval_days", T.INTEGER, _NOT_CHECK, default=365,
            description="Days per message-report window, wherever a list's message count is not yet known.",
            limits=(1, 36_500)),
    Setting("include_test_messages", T.BOOLEAN, _NOT_CHECK, default=True,
            description="Include test sends in `messages`."),
    # The service writes datetimes without a zone (docs/listrak-api.md §6, §12: probably US Eastern,
    # unconfirmed). A zone name reads them as that zone's wall time and converts them to UTC.
    Setting("source_timezone", T.TEXT, _NOT_CHECK, default="UTC",
            description="Zone of Listrak's zone-less dates (e.g. `America/New_York`); `UTC` stamps them "
                        "unchanged, as tap-listrak did."),
    Setting("trust_short_pages", T.BOOLEAN, _NOT_CHECK, default=True,
            description="A page shorter than a proven page size is the last one (saves one request per object)."),
    # Incremental runs (see listrak_sync.engine for the contract these settings tune).
    Setting("trust_counters", T.BOOLEAN, _NOT_CHECK, default=True,
            description="Skip a message's report while its counter stands still (false: every message every "
                        "run, the lookback-only policy)."),
    Setting("send_settle_hours", T.NUMBER, _NOT_CHECK, default=24.0,
            description="Hours after which a send's recipients are final.", limits=(0, 87_600)),
    Setting("full_recheck_days", T.NUMBER, _NOT_CHECK, default=7.0,
            description="Days between a list's periodic re-reads of every message (0: every run).", limits=(0, 36_500)),
    # The horizon of the incremental contract (listrak_sync.engine): messages younger than this,
    # or whose counter moved this little before their last fetch, are re-read every run.
    Setting("lookback_hours", T.NUMBER, _NOT_CHECK, default=48.0,
            description="Hours during which a message, or a counter that moved, is re-read every run (the tap "
                        "re-reads each from this long before its last fetch).", limits=(0, 87_600)),
    # What a counter counts is unknown for SOAP (docs/listrak-api.md §12.17); verify infers it
    # from the account's data unless pinned here (docs/verify.md).
    Setting("counter_reading", T.TEXT, _NOT_TAP, default="auto",
            description="What `verify` holds each message counter to: `auto` (the reading the data fits), "
                        "`events` (rows), `unique` (distinct contacts), or per counter "
                        "(`OpenCount=unique,ReadCount=unique`)."),
    Setting("typed_event_dates", T.BOOLEAN, _TAP_ONLY, default=False,
            description="Emit ClickDate, OpenDate, ReadDate and BounceDate (strings in Listrak's WSDL) as RFC 3339 "
                        "UTC date-times, like the other dates. Default: as the service sent them, as tap-listrak did."),
    # tap-listrak 2.x's key: it re-read the activity of messages sent within this many days.
    Setting("num_activity_days", T.INTEGER, _TAP_ONLY, shown_default="none (`lookback_hours` applies)",
            description="tap-listrak 2.x's activity window, REST credentials alone: sets `lookback_hours` to "
                        "24 times this unless that is given.", limits=(0, 3_650)),
)
SETTINGS_BY_NAME = {setting.name: setting for setting in SETTINGS}
SETTINGS_BY_FIELD = {setting.field_name: setting for setting in SETTINGS if _LIB in setting.surfaces}


def settings_of(surface: Surface) -> tuple[Setting, ...]:
    """The keys of one surface, in table order."""
    return tuple(setting for setting in SETTINGS if surface in setting.surfaces)


def default_of(name: str) -> Any:
    """The default of key ``name``, or of the key that fills :class:`Settings` field ``name``.

    Raises:
        KeyError: neither a key nor a field of the table.
    """
    return (SETTINGS_BY_NAME.get(name) or SETTINGS_BY_FIELD[name]).default


__all__ = [
    "PRODUCTION_ENDPOINT",
    "REST_ENDPOINT",
    "TOKEN_ENDPOINT",
    "SETTINGS",
    "SETTINGS_BY_FIELD",
    "SETTINGS_BY_NAME",
    "Setting",
    "SettingType",
    "Surface",
    "default_of",
    "settings_of",
]
