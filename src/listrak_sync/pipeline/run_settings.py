"""Where the settings of a run come from: the ``run`` keys of the settings table, read the dlt way.

Every key of :data:`listrak_sync.settings_table.SETTINGS` with the ``run`` surface can be given,
highest priority first, as:

1. a command-line flag (``--concurrency 4``), where ``run`` offers one;
2. an environment variable ``LISTRAK_<KEY>`` (``LISTRAK_CONCURRENCY=4``);
3. dlt's configuration: ``SOURCES__LISTRAK__<KEY>`` in the environment, then
   ``[sources.listrak]`` in ``.dlt/secrets.toml``, then in ``.dlt/config.toml`` (the project's
   ``.dlt`` folder, then the user's ``~/.dlt``). The DuckDB file also goes by dlt's own name for
   it, ``credentials`` under ``[destination.duckdb]`` (``DESTINATION__DUCKDB__CREDENTIALS``):
   in each of those places, after ``duckdb`` under ``[sources.listrak]``;
4. the key's default.

A key under ``[sources.listrak]`` (or ``SOURCES__LISTRAK__*``) that is not in the table is an
error naming the valid keys, so a typo never silently sends a run to production.

Named accounts: ``[sources.listrak.accounts.<name>]`` tables (or
``SOURCES__LISTRAK__ACCOUNTS__<NAME>__<KEY>`` variables) each hold any key of the table. For a
run of account ``<name>`` a key comes from, highest priority first: the flag; the account's own
value; then the keys shared by every run (``LISTRAK_<KEY>``, ``SOURCES__LISTRAK__<KEY>``,
``[sources.listrak]``). The dataset is never shared: it is the account's own, else the
account's name, so two accounts cannot load into one dataset by accident (that is an error too).

dlt's configuration is read through its public accessors only: ``dlt.secrets``/``dlt.config``
for a value, and each of ``dlt.config.config_providers``' ``get_value`` for the whole
``[sources.listrak]`` table of each file (to find keys that are not in the table).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from listrak_sync.errors import ConfigError, causes
from listrak_sync.pipeline.destinations import (
    DEFAULT_DATASET,
    DEFAULT_DUCKDB_MEMORY_LIMIT,
    DEFAULT_DUCKDB_PATH,
    DEFAULT_LOCK_WAIT_SECONDS,
    default_duckdb_path,
)
from listrak_sync.settings import check_limits
from listrak_sync.settings_table import SETTINGS_BY_NAME, Setting, Surface, default_of, settings_of

SECTION = ("sources", "listrak")
ACCOUNTS = "accounts"
ALL_ACCOUNTS = "all"
# dlt's own setting for the DuckDB file: [destination.duckdb] credentials.
DLT_DUCKDB = ("destination", "duckdb")
_DUCKDB_URL = "duckdb:///"
_ACCOUNT_NAME = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")


def active_keys() -> tuple[Setting, ...]:
    """The keys of a run: the table's ``run`` keys, in table order."""
    return settings_of(Surface.RUN)


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
        if key.name == "duckdb":
            continue  # read below, for the DuckDB destination only
        value = _lookup(key, cli_values, account)
        if isinstance(value, str) and not value.strip() and key.name in ("tables", "lists"):
            raise ConfigError(f"{key.name} is empty. Name at least one, or leave the setting out for all.")
        if value is not None:
            found[key.name] = value
    destination = str(found.pop("destination", default_of("destination")))
    target = RunTarget(
        destination=destination,
        duckdb=_duckdb_setting(destination, cli_values, account),
        dataset=str(found.pop("dataset", account or DEFAULT_DATASET)),
        lock_wait_seconds=_seconds("lock_wait_seconds", found.pop("lock_wait_seconds", DEFAULT_LOCK_WAIT_SECONDS)),
        duckdb_memory_limit=str(found.pop("duckdb_memory_limit", DEFAULT_DUCKDB_MEMORY_LIMIT)),
    )
    if account is not None:
        _check_own_dataset(account, target)
    fields = {k.name: k.field_name for k in keys}
    return {fields[name]: value for name, value in found.items()}, target


def _duckdb_setting(destination: str, cli_values: Mapping[str, Any], account: str | None) -> str:
    """The DuckDB file of a run into ``destination`` (looked up only for DuckDB, so that a DuckDB
    setting never fails, nor a legacy file warns, a run into another destination)."""
    if destination != "duckdb":
        return DEFAULT_DUCKDB_PATH
    return str(_lookup(SETTINGS_BY_NAME["duckdb"], cli_values, account) or default_duckdb_path())


def _lookup(key: Setting, cli_values: Mapping[str, Any], account: str | None) -> Any:
    value = cli_values.get(key.name)
    if value is None and account is not None:
        value = _from_dlt(key.name, (*SECTION, ACCOUNTS, account))
    if value is None and not (account is not None and key.name == "dataset"):
        value = os.environ.get(f"LISTRAK_{key.name.upper()}") or None
        if value is None:
            value = _duckdb_file_from_dlt() if key.name == "duckdb" else _from_dlt(key.name)
    return value


def _duckdb_file_from_dlt() -> str | None:
    """The DuckDB file set in dlt's configuration, by our name or by dlt's.

    Place by place in dlt's order (the environment, then ``secrets.toml``, then
    ``config.toml``): ``duckdb`` under ``[sources.listrak]``, then dlt's ``credentials`` under
    ``[destination.duckdb]``, as a path, a ``duckdb:///`` connection string or a table with
    ``database``.
    """
    import dlt

    names = (("duckdb", SECTION), ("credentials", DLT_DUCKDB), ("database", (*DLT_DUCKDB, "credentials")))
    try:
        for provider in dlt.config.config_providers:
            if provider.is_empty:
                continue
            for key, sections in names:
                value, where = provider.get_value(key, Any, None, *sections)
                path = _duckdb_path(value, where) if value is not None else None
                if path is not None:
                    return path
    except ConfigError:
        raise
    except Exception as exc:  # a malformed TOML file, for instance
        raise config_file_error(exc) or ConfigError(
            f"Cannot read the DuckDB file from dlt's configuration: {' '.join(str(exc).split())}.") from None
    return None


def _duckdb_path(value: Any, where: str) -> str | None:
    """The file a DuckDB setting names (None for a table without ``database``)."""
    if isinstance(value, Mapping):
        value = value.get("database")
        if value is None:
            return None
    text = str(value).strip()
    if text.startswith(_DUCKDB_URL):
        text = text[len(_DUCKDB_URL):].split("?", 1)[0]
    if not text or text.startswith(":") or text.startswith("md:"):
        raise ConfigError(
            f"{where} is {str(value)!r}: listrak-sync needs a DuckDB file it can keep (the tables and "
            "the plan of the next run live there). Give a file path, such as /data/listrak_sync.duckdb."
        )
    return text


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
        found = _lookup(SETTINGS_BY_NAME[name], {}, account)
        return default if found is None else str(found)

    destination = value("destination", default_of("destination"))
    return _place(destination, _duckdb_setting(destination, {}, account), value("dataset", account))


def _place(destination: str, duckdb: str, dataset: str) -> tuple[str, str, str]:
    return destination, os.path.abspath(duckdb) if destination == "duckdb" else "", dataset


def _seconds(name: str, value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number of seconds, got {value!r}.") from None
    return check_limits(SETTINGS_BY_NAME[name], seconds)


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
    for name, section in _configured_tables():
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


def _configured_tables() -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Each dlt provider's ``[sources.listrak]`` table (``.dlt/secrets.toml``, ``.dlt/config.toml``).

    dlt's accessors answer one value, from the first provider that has it; unknown keys must be
    found in every file, so each provider is asked for the whole table.
    """
    import dlt

    *sections, key = SECTION
    try:
        for provider in dlt.config.config_providers:
            if provider.is_empty:
                continue
            table, _ = provider.get_value(key, dict, None, *sections)
            if isinstance(table, Mapping):
                yield provider.name, table
    except Exception as exc:  # a malformed TOML file, for instance
        raise config_file_error(exc) or ConfigError(
            f"Cannot read [{'.'.join(SECTION)}] from dlt's configuration: {' '.join(str(exc).split())}."
        ) from None


def config_file_error(error: BaseException) -> ConfigError | None:
    """The one-line error for a ``.dlt`` TOML file that dlt could not parse, else ``None``.

    dlt's own message names every candidate path and puts the parser's words (with line and
    column) on a second line that a one-line error cuts off; this names the file that fails,
    its line and column, and what is wrong there.

    Args:
        error: any exception; dlt's ``TomlProviderReadException`` is looked for among its causes.
    """
    import tomlkit
    from dlt.common.configuration.providers.toml import TomlProviderReadException

    unreadable = next((cause for cause in causes(error) if isinstance(cause, TomlProviderReadException)), None)
    if unreadable is None:
        return None
    for path in unreadable.full_paths:
        try:
            tomlkit.parse(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except tomlkit.exceptions.ParseError as exc:
            what = str(exc).rsplit(" at line ", 1)[0]
            return ConfigError(  # tomlkit counts columns from 0; editors, from 1
                f"{os.path.normpath(path)}, line {exc.line}, column {exc.col + 1}: {what} (TOML syntax). "
                "Fix that line and run again."
            )
        except (OSError, UnicodeDecodeError) as exc:
            return ConfigError(f"Cannot read {os.path.normpath(path)}: {exc}.")
    return ConfigError(f"Cannot read {unreadable.file_name}: {' '.join(str(unreadable).split())}.")


def _account_name(name: str, where: str) -> str:
    if name == ALL_ACCOUNTS or not _ACCOUNT_NAME.fullmatch(name):
        raise ConfigError(
            f"Account name {name!r} in {where} is not usable: use lowercase letters, digits and single "
            f"underscores, starting with a letter (it is the default dataset), and not {ALL_ACCOUNTS!r}."
        )
    return name


__all__ = [
    "ALL_ACCOUNTS",
    "DEFAULT_DATASET",
    "RunTarget",
    "account_names",
    "active_keys",
    "config_file_error",
    "gather",
    "select_accounts",
    "where_to_set",
]
