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
from listrak_sync.destinations import DEFAULT_DATASET, DEFAULT_DUCKDB_PATH
from listrak_sync.errors import ConfigError

SECTION = ("sources", "listrak")


@dataclass(frozen=True)
class Key:
    """One setting: its name everywhere, the ``run`` flag (if any), its default and meaning."""

    name: str
    flag: str | None
    default: str
    help: str
    field: str | None = None  # the Settings field it fills, if not ``name``; None for run-level keys

    @property
    def env(self) -> str:
        return f"LISTRAK_{self.name.upper()}"


_RUN_LEVEL = ("destination", "duckdb", "dataset")
KEYS: tuple[Key, ...] = (
    Key("username", "--username", "prompt on a terminal", "Listrak API user."),
    Key("password", None, "prompt on a terminal", "Its password. No flag, by design: keep it out of shell history."),
    Key("start_date", "--start-date", "required", "Earliest data: `MM/DD/YYYY`, `YYYY-MM-DD` or an ISO timestamp."),
    Key("endpoint", "--endpoint", "production", f"SOAP endpoint: `{PRODUCTION_ENDPOINT}`, a proxy or the simulator."),
    Key("tables", "--tables", "all nine", "Tables to replicate, comma-separated (`lists,messages`)."),
    Key("lists", "--lists", "every list the user can see", "List IDs to replicate, comma-separated.",
        field="list_ids"),
    Key("destination", "--destination", "`duckdb`", "A dlt destination name (`postgres`, `filesystem`, ...); "
        "its credentials the dlt way (`DESTINATION__POSTGRES__CREDENTIALS`)."),
    Key("duckdb", "--duckdb", f"`{DEFAULT_DUCKDB_PATH}`", "DuckDB file, relative to the current directory."),
    Key("dataset", "--dataset", f"`{DEFAULT_DATASET}`", "Dataset (schema) to load into."),
    Key("concurrency", "--concurrency", "`8`", "Most requests in flight; halves by itself on 503/429."),
    Key("connect_timeout", "--connect-timeout", "`10` s", "Seconds to wait for a connection."),
    Key("read_timeout", "--read-timeout", "`120` s", "Seconds to wait for each read of a response."),
    Key("request_deadline", "--request-deadline", "`300` s", "Seconds one whole request may take, body included."),
    Key("max_response_bytes", "--max-response-bytes", "256 MiB", "Largest response accepted (after decompression)."),
    Key("max_retries", "--max-retries", "`8`", "Retries of one request after a transient failure."),
    Key("retry_budget_seconds", "--retry-budget", "`600` s", "Total time one request may spend retrying."),
    Key("backoff_base", None, "`0.5` s", "First retry delay (exponential, full jitter)."),
    Key("backoff_max", None, "`30` s", "Longest retry delay."),
    Key("interval_days", None, "`365`", "Days per message-report window."),
    Key("include_test_messages", None, "`true`", "Include test sends in `messages`."),
    Key("source_timezone", None, "`UTC`", "Zone of Listrak's zone-less dates (e.g. `America/New_York`)."),
    Key("trust_short_pages", None, "`true`", "A page shorter than a proven page size is the last one."),
    Key("trust_counters", None, "`true`", "Skip a message's report while its counter stands still."),
    Key("send_settle_hours", None, "`24`", "Hours after which a send's recipients are final."),
    Key("full_recheck_days", None, "`7`", "Days between periodic full refreshes (0: always)."),
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
    )
    fields = {k.name: k.field or k.name for k in keys}
    return {fields[name]: value for name, value in found.items()}, target


def _from_dlt(name: str) -> Any:
    import dlt

    path = ".".join((*SECTION, name))
    try:
        value = dlt.secrets.get(path)
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
        rows.append(f"| `{key.name}` | {flag} | `{key.env}` | {key.default} | {key.help} |")
    return "\n".join(rows)


__all__ = ["DEFAULT_DATASET", "KEYS", "Key", "RunTarget", "active_keys", "gather", "settings_markdown"]
