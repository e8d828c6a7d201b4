"""Where the settings of a run come from: one table of keys, read the dlt way.

Every key can be given, highest priority first, as:

1. a command-line flag (``--concurrency 4``), where ``run`` offers one;
2. an environment variable ``LISTRAK_<KEY>`` (``LISTRAK_CONCURRENCY=4``);
3. dlt's configuration: ``SOURCES__LISTRAK__<KEY>`` in the environment, then
   ``[sources.listrak]`` in ``.dlt/secrets.toml``, then in ``.dlt/config.toml`` (the project's
   ``.dlt`` folder, then the user's ``~/.dlt``).

A key under ``[sources.listrak]`` (or ``SOURCES__LISTRAK__*``) that is not in the table is an
error naming the valid keys, so a typo never silently sends a run to production. The table
also writes the README's configuration reference (a test keeps them in step).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from listrak_sync.config import PRODUCTION_ENDPOINT, Settings
from listrak_sync.destinations import DEFAULT_DATASET, DEFAULT_DUCKDB_PATH, DEFAULT_LOCK_WAIT_SECONDS
from listrak_sync.errors import ConfigError

SECTION = ("sources", "listrak")


@dataclass(frozen=True)
class Key:
    """One setting: its name everywhere, the ``run`` flag (if any), its meaning and default.

    The default shown is the :class:`Settings` field's own default (with ``unit``), unless
    ``default`` describes one that is not a plain value.
    """

    name: str
    flag: str | None
    help: str
    default: str | None = None
    unit: str = ""
    field: str | None = None  # the Settings field it fills, if not ``name``

    @property
    def env(self) -> str:
        return f"LISTRAK_{self.name.upper()}"

    @property
    def default_text(self) -> str:
        if self.default is not None:
            return self.default
        value = _FIELD_DEFAULTS[self.field or self.name]
        shown = str(value).lower() if isinstance(value, bool) else f"{value:g}" if isinstance(value, float) else value
        return f"`{shown}`{' ' + self.unit if self.unit else ''}"


_RUN_LEVEL = ("destination", "duckdb", "dataset", "lock_wait_seconds")
_FIELD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Settings)}
KEYS: tuple[Key, ...] = (
    Key("username", "--username", "Listrak API user.", "prompt on a terminal"),
    Key("password", None, "Its password. No flag, by design: keep it out of shell history.", "prompt on a terminal"),
    Key("start_date", "--start-date", "Earliest data: `MM/DD/YYYY`, `YYYY-MM-DD` or an ISO timestamp.", "required"),
    Key("endpoint", "--endpoint", "SOAP endpoint: production, a proxy or the simulator.",
        f"`{PRODUCTION_ENDPOINT}`"),
    Key("tables", "--tables", "Tables to replicate, comma-separated (`lists,messages`).", "all nine"),
    Key("lists", "--lists", "List IDs to replicate, comma-separated.", "every list the user can see",
        field="list_ids"),
    Key("destination", "--destination", "A dlt destination name (`postgres`, `filesystem`, ...); its "
        "credentials the dlt way (`DESTINATION__POSTGRES__CREDENTIALS`).", "`duckdb`"),
    Key("duckdb", "--duckdb", "DuckDB file, relative to the current directory.", f"`{DEFAULT_DUCKDB_PATH}`"),
    Key("dataset", "--dataset", "Dataset (schema) to load into.", f"`{DEFAULT_DATASET}`"),
    Key("lock_wait_seconds", None, "Seconds to wait while another process holds the DuckDB file.",
        f"`{DEFAULT_LOCK_WAIT_SECONDS:g}` s"),
    Key("concurrency", "--concurrency", "Most requests in flight; halves by itself on 503/429."),
    Key("connect_timeout", "--connect-timeout", "Seconds to wait for a connection.", unit="s"),
    Key("read_timeout", "--read-timeout", "Seconds to wait for each read of a response.", unit="s"),
    Key("request_deadline", "--request-deadline", "Seconds one whole request may take, body included.", unit="s"),
    Key("max_response_bytes", "--max-response-bytes", "Largest response accepted, counted after decompression.",
        unit="bytes"),
    Key("max_retries", "--max-retries", "Retries of one request after a transient failure."),
    Key("retry_budget_seconds", "--retry-budget-seconds", "Total time one request may spend retrying.", unit="s"),
    Key("backoff_base", None, "First retry delay (exponential, full jitter).", unit="s"),
    Key("backoff_max", None, "Longest retry delay.", unit="s"),
    Key("interval_days", None, "Days per message-report window."),
    Key("include_test_messages", None, "Include test sends in `messages`."),
    Key("source_timezone", None, "Zone of Listrak's zone-less dates (e.g. `America/New_York`)."),
    Key("trust_short_pages", None, "A page shorter than a proven page size is the last one."),
    Key("trust_counters", None, "Skip a message's report while its counter stands still."),
    Key("send_settle_hours", None, "Hours after which a send's recipients are final."),
    Key("full_recheck_days", None, "Days between periodic full refreshes (0: every run)."),
)


def active_keys() -> tuple[Key, ...]:
    """The keys this version understands: run-level ones and every :class:`Settings` field."""
    fields = {f.name for f in dataclasses.fields(Settings)}
    return tuple(k for k in KEYS if k.name in _RUN_LEVEL or (k.field or k.name) in fields)


@dataclass(frozen=True)
class RunTarget:
    """Where a run lands, as configured."""

    destination: str
    duckdb: str
    dataset: str
    lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS


def gather(cli_values: Mapping[str, Any]) -> tuple[dict[str, Any], RunTarget]:
    """Collect every key from the flags, ``LISTRAK_*``, and dlt's configuration.

    Args:
        cli_values: flag values by key name; ``None`` means the flag was not given.

    Returns:
        Values for :meth:`Settings.from_mapping` (without defaults), and the run target.

    Raises:
        ConfigError: an unknown key under ``[sources.listrak]`` or ``SOURCES__LISTRAK__``.
    """
    keys = active_keys()
    _reject_unknown({k.name for k in keys})
    found: dict[str, Any] = {}
    for key in keys:
        value = cli_values.get(key.name)
        if value is None:
            value = os.environ.get(key.env) or None
        if value is None:
            value = _from_dlt(key.name)
        if isinstance(value, str) and not value.strip() and key.name in ("tables", "lists"):
            raise ConfigError(f"{key.name} is empty. Name at least one, or leave the setting out for all.")
        if value is not None:
            found[key.name] = value
    target = RunTarget(
        destination=str(found.pop("destination", "duckdb")),
        duckdb=str(found.pop("duckdb", DEFAULT_DUCKDB_PATH)),
        dataset=str(found.pop("dataset", DEFAULT_DATASET)),
        lock_wait_seconds=_seconds("lock_wait_seconds", found.pop("lock_wait_seconds", DEFAULT_LOCK_WAIT_SECONDS)),
    )
    fields = {k.name: k.field or k.name for k in keys}
    return {fields[name]: value for name, value in found.items()}, target


def _seconds(name: str, value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if seconds < 0:
        raise ConfigError(f"{name} must be a number of seconds, 0 or more, got {value!r}.")
    return seconds


def _from_dlt(name: str) -> Any:
    import dlt

    path = ".".join((*SECTION, name))
    try:
        value: Any = dlt.secrets.get(path)
        if value is None:
            value = dlt.config.get(path)
    except Exception as exc:  # a malformed TOML file, for instance
        raise ConfigError(f"Cannot read {path} from dlt's configuration: {exc}.") from None
    return value


def _reject_unknown(valid: set[str]) -> None:
    for where, name in _configured_names():
        if name not in valid:
            raise ConfigError(
                f"Unknown setting {name!r} in {where}. Valid settings: {', '.join(sorted(valid))}."
            )


def _configured_names() -> Iterator[tuple[str, str]]:
    prefix = "__".join(part.upper() for part in SECTION) + "__"
    for variable in os.environ:
        if variable.startswith(prefix):
            yield variable, variable[len(prefix):].lower()
    for name, text in _toml_documents():
        section: Any = _parse_toml(text)
        for part in SECTION:
            section = section.get(part, {}) if isinstance(section, Mapping) else {}
        if isinstance(section, Mapping):
            for key in section:
                yield f"{name} [{'.'.join(SECTION)}]", str(key)


def _toml_documents() -> Iterator[tuple[str, str]]:
    from dlt.common.configuration.container import Container
    from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext

    for provider in Container()[PluggableRunContext].providers.providers:
        to_toml = getattr(provider, "to_toml", None)
        if to_toml is not None:
            yield provider.name, to_toml()


def _parse_toml(text: str) -> Mapping[str, Any]:
    import tomlkit

    return tomlkit.parse(text).unwrap()


def settings_markdown() -> str:
    """The README's configuration reference, generated from :data:`KEYS`."""
    rows = ["| key | `run` flag | environment | default | meaning |", "|---|---|---|---|---|"]
    for key in active_keys():
        flag = f"`{key.flag}`" if key.flag else ""
        rows.append(f"| `{key.name}` | {flag} | `{key.env}` | {key.default_text} | {key.help} |")
    return "\n".join(rows)


__all__ = ["DEFAULT_DATASET", "KEYS", "Key", "RunTarget", "active_keys", "gather", "settings_markdown"]
