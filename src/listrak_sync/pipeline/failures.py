"""What a user sees when a run fails inside dlt: the cause first, in one line, and an error
that says what to do (a configuration to fix, a busy file, a full disk, anything else)."""

from __future__ import annotations

import errno
import re
from collections.abc import Iterator

from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.common.destination.exceptions import DestinationUndefinedEntity
from dlt.destinations.exceptions import DestinationConnectionError

from listrak_sync.errors import ConfigError, ListrakSyncError
from listrak_sync.pipeline.destinations import Target, is_lock_conflict, lock_error


def explain(exc: BaseException, *, step: str | None = None, target: Target | None = None) -> BaseException:
    """The error a user should see for a failure inside dlt: the cause first, in one line.

    A Listrak error inside dlt's wrapper comes out as it is; an interrupt stays an interrupt;
    missing destination settings and a destination that refuses the connection are
    configuration errors (exit 2) naming what to set; anything else names the failed step.
    """
    destination = target.name if target else "destination"
    for current in error_chain(exc):
        if isinstance(current, (ListrakSyncError, KeyboardInterrupt)):
            return current
        if isinstance(current, ConfigFieldMissingException):
            names = ", ".join(_missing_keys(current)) or ", ".join(current.fields)
            return ConfigError(
                f"The {destination} destination is missing {names}. Set it the dlt way: an environment "
                f"variable (e.g. DESTINATION__{destination.upper()}__CREDENTIALS=<connection string with "
                f"its password>) or [destination.{destination}] in .dlt/secrets.toml."
            )
        if is_lock_conflict(current):
            return lock_error(target.location if target else "", str(current))
        if isinstance(current, (DestinationConnectionError, DestinationUndefinedEntity)) or (
            type(current).__module__.startswith(("psycopg2", "psycopg")) and "Operational" in type(current).__name__
        ):
            return ConfigError(
                f"Cannot use the {destination} destination: {first_line(current.__cause__ or current)}. "
                f"Check its host, port, database and role in DESTINATION__{destination.upper()}__CREDENTIALS."
            )
        full = disk_full(current)
        if full is not None:
            where = full or (target.location if target else "the destination")
            return ListrakSyncError(
                f"The disk is full: no space left on the device holding {where}. Free space there (or "
                "choose another place) and run again; every table holds its last complete load."
            )
        if destination == "duckdb" and "Out of Memory Error" in str(current):
            return ListrakSyncError(
                "DuckDB ran out of the memory it may use while loading (duckdb_memory_limit). Raise it, "
                "e.g. LISTRAK_DUCKDB_MEMORY_LIMIT=256MB, and run again; every table holds its last complete load."
            )
    failed = step or getattr(exc, "step", "run")
    inner = getattr(exc, "exception", exc)
    detail = first_line(inner).rstrip(":. ")
    root = list(error_chain(exc))[-1]
    if root is not inner:  # dlt's wrappers end in "caused an exception:"; name what was raised
        detail += f": {type(root).__name__}" + (f": {first_line(root)}" if str(root).strip() else "")
    return ListrakSyncError(
        f"The {failed} step failed: {detail}. Every table holds its last complete load; "
        "fix the cause and run again."
    )


def disk_full(error: BaseException) -> str | None:
    """The path whose device is full if ``error`` says a disk is full ('' if it names none), else None.

    dlt keeps a failed job's error as text (a traceback), so the text is read as well as errno.
    """
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return str(error.filename or "")
    text = str(error)
    if "No space left on device" not in text:
        return None
    named = re.search(r"""["']([^"']*/[^"']+)["']\s*:?\s*No space left on device""", text)
    return named.group(1) if named else ""


def error_chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = getattr(current, "exception", None) or current.__cause__ or current.__context__


def _missing_keys(error: ConfigFieldMissingException) -> list[str]:
    """The innermost setting names dlt looked for and did not find (e.g. ``credentials.password``)."""
    names: list[str] = []
    for name, traces in error.traces.items():
        inner = [key for trace in traces for key in getattr(trace, "traces", {})]
        names += [f"{name}.{key}" for key in inner] or [name]
    return sorted(set(names))


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


__all__ = ["disk_full", "error_chain", "explain", "first_line"]
