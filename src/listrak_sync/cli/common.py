"""What every command shares: library errors as one line and an exit code, settings and
accounts from the flags, and the flags themselves, generated from the settings table."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TypeVar

import click

from listrak_sync.errors import EXIT_CONFIG, EXIT_ERROR, ConfigError, ListrakSyncError, exit_code
from listrak_sync.logs import RedactingFilter, log_to_stderr
from listrak_sync.pipeline.run_settings import (
    ALL_ACCOUNTS,
    RunTarget,
    account_names,
    config_file_error,
    gather,
    select_accounts,
    where_to_set,
)
from listrak_sync.settings import Settings
from listrak_sync.settings_table import Surface, settings_of

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("listrak_sync")

REDACT = RedactingFilter()
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143
INTERRUPTED = "Interrupted: the destination holds the last complete load of every table; run again to continue."


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that a run unwinds as it does on Ctrl-C."""


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def setup_logging(debug: bool, verbose: bool) -> None:
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    log_to_stderr(level, REDACT, "%(asctime)s %(levelname)s %(name)s: %(message)s", debug=debug)


def one_line(message: str) -> str:
    """The first line of ``message``, every registered secret masked."""
    return REDACT.redact(message.strip().splitlines()[0] if message.strip() else "failed")


def fail(message: str, code: int) -> None:
    click.echo(f"Error: {one_line(message)}", err=True)
    sys.exit(code)


@contextmanager
def exit_codes(debug: bool) -> Iterator[None]:
    """Turn library errors into one line on stderr and the documented exit code."""
    try:
        yield
    except (click.exceptions.Exit, click.ClickException, click.Abort):
        raise
    except KeyboardInterrupt as exc:
        click.echo(f"Error: {INTERRUPTED}", err=True)
        sys.stderr.flush()
        sys.stdout.flush()
        # Worker threads may be waiting on the network; nothing they hold needs them to finish
        # (the destination is transactional and the working folder is already removed).
        os._exit(EXIT_TERMINATED if is_sigterm(exc) else EXIT_INTERRUPTED)
    except ListrakSyncError as exc:
        report(exc, debug)
        fail(str(exc), exit_code(exc))
    except Exception as exc:
        report(exc, debug)
        unreadable = config_file_error(exc)  # dlt reads its TOML files lazily, from any step
        if unreadable is not None:
            fail(str(unreadable), EXIT_CONFIG)
        fail(f"Unexpected {type(exc).__name__}: {exc}. Run again with --debug for details.", EXIT_ERROR)


def is_sigterm(exc: KeyboardInterrupt) -> bool:
    # During some of dlt's steps its own handler takes the signal and raises dlt's
    # SignalReceivedException (a KeyboardInterrupt carrying the signal) instead of ours.
    return isinstance(exc, Terminated) or getattr(exc, "signal_code", None) == signal.SIGTERM


def report(exc: BaseException, debug: bool) -> None:
    if debug:
        log.error("failed", exc_info=exc)


# ---------------------------------------------------------------- settings


def _credentials(values: dict[str, Any], account: str | None = None) -> None:
    """Prompt for a missing username or password on a terminal (not when only the REST pair is
    set: a REST-only user); register the password and the client secret for redaction."""
    for secret in ("password", "client_secret"):
        if values.get(secret):
            REDACT.secrets.add(str(values[secret]))
    rest_only = bool(values.get("client_id")) and bool(values.get("client_secret")) and not (
        values.get("username") or values.get("password"))
    if rest_only:
        return
    interactive = sys.stdin.isatty()
    owner = f" for account {account}" if account else ""
    if not values.get("username"):
        if not interactive:
            raise ConfigError(_missing("username", account))
        values["username"] = click.prompt(f"Listrak username{owner}")
    if not values.get("password"):
        if not interactive:
            raise ConfigError(_missing("password", account))
        values["password"] = click.prompt(f"Listrak password{owner}", hide_input=True)
    REDACT.secrets.add(str(values["password"]))


def _missing(name: str, account: str | None) -> str:
    if account is not None:
        return f"No Listrak {name} for account {account!r}. Set {where_to_set(name, account)}."
    if name == "username":
        text = ("No Listrak username. Set LISTRAK_USERNAME, pass --username, or add "
                "username under [sources.listrak] in .dlt/secrets.toml (or, for the REST tables alone, "
                "LISTRAK_CLIENT_ID and LISTRAK_CLIENT_SECRET).")
    else:
        text = ("No Listrak password. Set LISTRAK_PASSWORD or add password under "
                "[sources.listrak] in .dlt/secrets.toml (there is no password flag, by design).")
    names = account_names()
    return f"{text[:-1]}, or pass --account with one of: {', '.join(names)}." if names else text


def settings_from(flags: dict[str, Any], *, require_start: bool = True,
              account: str | None = None) -> tuple[Settings, RunTarget]:
    """Settings and target from the flags, LISTRAK_* and dlt's configuration (see run_settings)."""
    values, target = gather(flags, account)
    _credentials(values, account)
    if "start_date" not in values:
        if require_start:
            raise ConfigError(
                "No start date. Pass --start-date MM/DD/YYYY (or YYYY-MM-DD), or set "
                + (where_to_set("start_date", account) if account else "LISTRAK_START_DATE") + "."
            )
        values["start_date"] = "01/01/2000"
    return Settings.from_mapping(values), target


def accounts_of(choice: str | None, flags: dict[str, Any]) -> list[str | None]:
    """The accounts a command runs for: ``[None]`` (the shared settings) without ``--account``."""
    if choice is None:
        return [None]
    names = select_accounts(choice)
    shared = [f"--{name}" for name in ("username", "dataset") if flags.get(name) is not None]
    if choice == ALL_ACCOUNTS and shared:
        raise ConfigError(f"{' and '.join(shared)} would apply to every account; with --account all, "
                          "set them per account under [sources.listrak.accounts.<name>].")
    return list(names)


def each_account(names: list[str | None], debug: bool,
                  action: Callable[[str | None], None]) -> dict[str, tuple[int, str]]:
    """Run ``action`` for each account, isolated: one's failure is a line on stderr and the rest go on.

    Returns:
        The failed accounts: exit code and one-line message. With a single account its
        error is raised as usual instead.
    """
    if len(names) == 1:
        action(names[0])
        return {}
    failures: dict[str, tuple[int, str]] = {}
    for name in names:
        try:
            action(name)
        except ListrakSyncError as exc:
            report(exc, debug)
            failures[str(name)] = exit_code(exc), one_line(str(exc))
        except Exception as exc:
            report(exc, debug)
            failures[str(name)] = EXIT_ERROR, one_line(f"Unexpected {type(exc).__name__}: {exc}. "
                                                        "Run again with --debug for details.")
        else:
            continue
        click.echo(f"Error: account {name}: {failures[str(name)][1]}", err=True)
    return failures


def exit_worst(failures: dict[str, tuple[int, str]]) -> None:
    """Exit with the worst (highest) exit code of the failed accounts, if any failed."""
    if failures:
        sys.exit(max(code for code, _ in failures.values()))


ACCOUNT_HELP = ("A named account ([sources.listrak.accounts.<name>] in .dlt/*.toml), or all of them, "
                 "each in turn: --account all.")


def key_options(surface: Surface) -> Callable[[F], F]:
    """The flags of a command's keys, generated from the settings table (no defaults: see run_settings)."""
    def decorate(func: F) -> F:
        for key in reversed(settings_of(surface)):
            if key.flag:
                text = f"{key.description} ${key.env}; default {key.default_text}.".replace("`", "")
                func = click.option(key.flag, key.name, help=text)(func)
        return func

    return decorate


def log_options(func: F) -> F:
    """-v/--debug, also accepted after the command name."""
    func = click.option("--debug", is_flag=True, default=None, help="Log everything (password redacted), tracebacks.")(
        func)
    return click.option("-v", "--verbose", is_flag=True, default=None, help="Log progress at INFO level.")(func)


def logging_from(ctx: click.Context, debug: bool | None, verbose: bool | None) -> bool:
    """Apply -v/--debug given after the command name; returns whether --debug is on."""
    debug = bool(debug) or ctx.obj["debug"]
    if debug or verbose:
        setup_logging(debug, bool(verbose) or ctx.obj["verbose"])
    return debug


__all__ = [
    "ACCOUNT_HELP", "INTERRUPTED", "REDACT", "Terminated", "accounts_of", "each_account", "exit_codes", "exit_worst",
    "fail", "is_sigterm", "key_options", "log_options", "logging_from", "on_sigterm", "one_line", "report",
    "settings_from", "setup_logging",
]
