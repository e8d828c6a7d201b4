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

Named accounts: ``[sources.listrak.accounts.<name>]`` tables (or
``SOURCES__LISTRAK__ACCOUNTS__<NAME>__<KEY>`` variables) each hold any key of the table. For a
run of account ``<name>`` a key comes from, highest priority first: the flag; the account's own
value; then the keys shared by every run (``LISTRAK_<KEY>``, ``SOURCES__LISTRAK__<KEY>``,
``[sources.listrak]``). The dataset is never shared: it is the account's own, else the
account's name, so two accounts cannot load into one dataset by accident (that is an error too).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from listrak_sync.errors import ConfigError
from listrak_sync.pipeline.destinations import (
    DEFAULT_DATASET,
    DEFAULT_DUCKDB_MEMORY_LIMIT,
    DEFAULT_DUCKDB_PATH,
    DEFAULT_LOCK_WAIT_SECONDS,
)
from listrak_sync.settings import PRODUCTION_ENDPOINT, Settings

SECTION = ("sources", "listrak")
ACCOUNTS = "accounts"
ALL_ACCOUNTS = "all"
_ACCOUNT_NAME = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")


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


_RUN_LEVEL = ("destination", "duckdb", "dataset", "lock_wait_seconds", "duckdb_memory_limit")
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
    Key("duckdb_memory_limit", None, "DuckDB's memory while loading; beyond it, it spills to `<file>.tmp`.",
        f"`{DEFAULT_DUCKDB_MEMORY_LIMIT}`"),
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
    Key("interval_days", None, "Days per message-report window, wherever a list's message count is not yet known."),
    Key("include_test_messages", None, "Include test sends in `messages`."),
    Key("source_timezone", None, "Zone of Listrak's zone-less dates (e.g. `America/New_York`)."),
    Key("trust_short_pages", None, "A page shorter than a proven page size is the last one."),
    Key("trust_counters", None, "Skip a message's report while its counter stands still."),
    Key("send_settle_hours", None, "Hours after which a send's recipients are final."),
    Key("full_recheck_days", None, "Days between a list's periodic re-reads of every message (0: every run)."),
    Key("lookback_hours", None, "Hours during which a message, or a counter that moved, is re-read every run."),
)
_KEYS_BY_NAME = {key.name: key for key in KEYS}


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
    duckdb_memory_limit: str = DEFAULT_DUCKDB_MEMORY_LIMIT


def gather(cli_values: Mapping[str, Any], account: str | None = None) -> tuple[dict[str, Any], RunTarget]:
    """Collect every key from the flags, ``LISTRAK_*``, and dlt's configuration.

    Args:
        cli_values: flag values by key name; ``None`` means the flag was not given.
        account: a named account (see :func:`account_names`): its own keys come before the
            shared ones, and its dataset defaults to its name.

    Returns:
        Values for :meth:`Settings.from_mapping` (without defaults), and the run target.

    Raises:
        ConfigError: an unknown key under ``[sources.listrak]`` or ``SOURCES__LISTRAK__``, an
            unknown account, or an account that would load into another account's dataset.
    """
    keys = active_keys()
    _reject_unknown({k.name for k in keys})
    if account == ALL_ACCOUNTS:
        raise ConfigError("Settings are gathered for one account at a time, not all.")
    if account is not None:
        select_accounts(account)
    found: dict[str, Any] = {}
    for key in keys:
        value = _lookup(key, cli_values, account)
        if isinstance(value, str) and not value.strip() and key.name in ("tables", "lists"):
            raise ConfigError(f"{key.name} is empty. Name at least one, or leave the setting out for all.")
        if value is not None:
            found[key.name] = value
    target = RunTarget(
        destination=str(found.pop("destination", "duckdb")),
        duckdb=str(found.pop("duckdb", DEFAULT_DUCKDB_PATH)),
        dataset=str(found.pop("dataset", account or DEFAULT_DATASET)),
        lock_wait_seconds=_seconds("lock_wait_seconds", found.pop("lock_wait_seconds", DEFAULT_LOCK_WAIT_SECONDS)),
        duckdb_memory_limit=str(found.pop("duckdb_memory_limit", DEFAULT_DUCKDB_MEMORY_LIMIT)),
    )
    if account is not None:
        _check_own_dataset(account, target)
    fields = {k.name: k.field or k.name for k in keys}
    return {fields[name]: value for name, value in found.items()}, target


def _lookup(key: Key, cli_values: Mapping[str, Any], account: str | None) -> Any:
    value = cli_values.get(key.name)
    if value is None and account is not None:
        value = _from_dlt(key.name, (*SECTION, ACCOUNTS, account))
    if value is None and not (account is not None and key.name == "dataset"):
        value = os.environ.get(key.env) or None
        if value is None:
            value = _from_dlt(key.name)
    return value


def account_names() -> list[str]:
    """The named accounts, sorted by name.

    They are the ``[sources.listrak.accounts.<name>]`` tables of ``.dlt/*.toml`` and the
    ``SOURCES__LISTRAK__ACCOUNTS__<NAME>__<KEY>`` environment variables.

    Raises:
        ConfigError: a name that is not lowercase letters, digits and single underscores (it
            is the default dataset and part of variable names), the reserved name ``all``, or
            an unknown key anywhere under ``[sources.listrak]``.
    """
    _reject_unknown({k.name for k in active_keys()})
    return sorted({account for _, _, account in _configured_names() if account is not None})


def select_accounts(choice: str) -> list[str]:
    """The accounts ``--account choice`` names: one, or every one for ``all``.

    Raises:
        ConfigError: no accounts are configured, or ``choice`` is none of them (the message
            lists the names).
    """
    names = account_names()
    if not names:
        raise ConfigError(
            "No accounts are configured. Add a [sources.listrak.accounts.<name>] table to .dlt/secrets.toml "
            "(or SOURCES__LISTRAK__ACCOUNTS__<NAME>__<KEY> variables), or run without --account."
        )
    if choice == ALL_ACCOUNTS:
        return names
    if choice not in names:
        raise ConfigError(f"Unknown account {choice!r}. Configured accounts: {', '.join(names)} (or all).")
    return [choice]


def where_to_set(name: str, account: str | None = None) -> str:
    """Where a user sets key ``name`` (for an account, its own table first), for error messages."""
    if account is None:
        return f"LISTRAK_{name.upper()}, or {name} under [sources.listrak] in .dlt/secrets.toml"
    return (f"{name} under [{'.'.join(SECTION)}.{ACCOUNTS}.{account}] in .dlt/secrets.toml, or "
            f"SOURCES__LISTRAK__ACCOUNTS__{account.upper()}__{name.upper()}")


def _check_own_dataset(account: str, target: RunTarget) -> None:
    mine = _place(target.destination, target.duckdb, target.dataset)
    for other in account_names():
        if other != account and _configured_place(other) == mine:
            raise ConfigError(
                f"Accounts {account!r} and {other!r} would both load into dataset {target.dataset!r} "
                f"({target.destination}{' ' + mine[1] if mine[1] else ''}). Give each account its own "
                "dataset, or leave dataset out: it defaults to the account's name."
            )


def _configured_place(account: str) -> tuple[str, str, str]:
    def value(name: str, default: str) -> str:
        found = _lookup(_KEYS_BY_NAME[name], {}, account)
        return default if found is None else str(found)

    return _place(value("destination", "duckdb"), value("duckdb", DEFAULT_DUCKDB_PATH), value("dataset", account))


def _place(destination: str, duckdb: str, dataset: str) -> tuple[str, str, str]:
    return destination, os.path.abspath(duckdb) if destination == "duckdb" else "", dataset


def _seconds(name: str, value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if seconds < 0:
        raise ConfigError(f"{name} must be a number of seconds, 0 or more, got {value!r}.")
    return seconds


def _from_dlt(name: str, section: tuple[str, ...] = SECTION) -> Any:
    import dlt

    path = ".".join((*section, name))
    try:
        value: Any = dlt.secrets.get(path)
        if value is None:
            value = dlt.config.get(path)
    except Exception as exc:  # a malformed TOML file, for instance
        raise ConfigError(f"Cannot read {path} from dlt's configuration: {exc}.") from None
    return value


def _reject_unknown(valid: set[str]) -> None:
    for where, name, account in _configured_names():
        if name not in valid:
            owner = f" for account {account!r}" if account is not None else ""
            raise ConfigError(
                f"Unknown setting {name!r}{owner} in {where}. Valid settings: {', '.join(sorted(valid))}."
            )


def _configured_names() -> Iterator[tuple[str, str, str | None]]:
    """Every key set in dlt's configuration: where, its name, and its account (None: shared)."""
    prefix = "__".join(part.upper() for part in SECTION) + "__"
    account_prefix = f"{prefix}{ACCOUNTS.upper()}__"
    for variable in os.environ:
        if variable.startswith(account_prefix):
            parts = variable[len(account_prefix):].lower().split("__")
            if len(parts) != 2:
                raise ConfigError(f"{variable} names no account setting: use {account_prefix}<NAME>__<KEY>.")
            yield variable, parts[1], _account_name(parts[0], variable)
        elif variable.startswith(prefix):
            yield variable, variable[len(prefix):].lower(), None
    for name, text in _toml_documents():
        section: Any = _parse_toml(text)
        for part in SECTION:
            section = section.get(part, {}) if isinstance(section, Mapping) else {}
        if not isinstance(section, Mapping):
            continue
        table = f"{name} [{'.'.join(SECTION)}]"
        for key, value in section.items():
            if key != ACCOUNTS:
                yield table, str(key), None
                continue
            for account, keys in (value.items() if isinstance(value, Mapping) else [(None, None)]):
                if not isinstance(keys, Mapping):
                    raise ConfigError(f"{ACCOUNTS} in {table} holds tables, one per account: "
                                      f"[{'.'.join(SECTION)}.{ACCOUNTS}.<name>].")
                where = f"{name} [{'.'.join(SECTION)}.{ACCOUNTS}.{account}]"
                for key_name in keys:
                    yield where, str(key_name), _account_name(str(account), where)


def _account_name(name: str, where: str) -> str:
    if name == ALL_ACCOUNTS or not _ACCOUNT_NAME.fullmatch(name):
        raise ConfigError(
            f"Account name {name!r} in {where} is not usable: use lowercase letters, digits and single "
            f"underscores, starting with a letter (it is the default dataset), and not {ALL_ACCOUNTS!r}."
        )
    return name


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
    rows.append(
        f"| `{ACCOUNTS}.<name>.<key>` | `--account <name>` or `--account {ALL_ACCOUNTS}` | "
        f"`SOURCES__LISTRAK__ACCOUNTS__<NAME>__<KEY>` | none | A named account: any key above, under "
        f"`[sources.listrak.accounts.<name>]`, over the shared ones; its `dataset` defaults to `<name>` "
        "(see [Sharding and many accounts](#sharding-and-many-accounts)). |"
    )
    return "\n".join(rows)


__all__ = [
    "ALL_ACCOUNTS",
    "DEFAULT_DATASET",
    "KEYS",
    "Key",
    "RunTarget",
    "account_names",
    "active_keys",
    "gather",
    "select_accounts",
    "settings_markdown",
    "where_to_set",
]
