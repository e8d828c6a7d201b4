"""The ``listrak-sync`` command line: a thin click layer over the library.

Library errors become one clean line on stderr and an exit code that says what to do:
0 done; 2 bad usage or configuration; 3 access refused (credentials, IP, lockout); 5 loaded, but
some object's pages never ended (named in the summary); 1 anything else. ``--debug`` adds
tracebacks; the password is redacted from every log line either way.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TypeVar

import click

from listrak_sync.cli.docs import TABLE_STREAMS, column_name, describe_streams
from listrak_sync.errors import EXIT_CONFIG, EXIT_ERROR, ConfigError, IncompleteRunError, ListrakSyncError, exit_code
from listrak_sync.logs import RedactingFilter, log_to_stderr
from listrak_sync.pipeline.display import display
from listrak_sync.pipeline.run_settings import (
    ALL_ACCOUNTS,
    RunTarget,
    account_names,
    config_file_error,
    gather,
    select_accounts,
    where_to_set,
)
from listrak_sync.pipeline.runner import replicate
from listrak_sync.process import tune_for_bulk_work
from listrak_sync.progress import RunProgress
from listrak_sync.settings import Settings
from listrak_sync.settings_table import Surface, settings_of
from listrak_sync.soap.client import ListrakClient, unreachable_is_config

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("listrak_sync")

REDACT = RedactingFilter()
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143
INTERRUPTED = "Interrupted: the destination holds the last complete load of every table; run again to continue."


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that a run unwinds as it does on Ctrl-C."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def _setup_logging(debug: bool, verbose: bool) -> None:
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    log_to_stderr(level, REDACT, "%(asctime)s %(levelname)s %(name)s: %(message)s", debug=debug)


def _one_line(message: str) -> str:
    """The first line of ``message``, every registered secret masked."""
    return REDACT.redact(message.strip().splitlines()[0] if message.strip() else "failed")


def _fail(message: str, code: int) -> None:
    click.echo(f"Error: {_one_line(message)}", err=True)
    sys.exit(code)


@contextmanager
def _errors(debug: bool) -> Iterator[None]:
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
        os._exit(EXIT_TERMINATED if _is_sigterm(exc) else EXIT_INTERRUPTED)
    except ListrakSyncError as exc:
        _report(exc, debug)
        _fail(str(exc), exit_code(exc))
    except Exception as exc:
        _report(exc, debug)
        unreadable = config_file_error(exc)  # dlt reads its TOML files lazily, from any step
        if unreadable is not None:
            _fail(str(unreadable), EXIT_CONFIG)
        _fail(f"Unexpected {type(exc).__name__}: {exc}. Run again with --debug for details.", EXIT_ERROR)


def _is_sigterm(exc: KeyboardInterrupt) -> bool:
    # During some of dlt's steps its own handler takes the signal and raises dlt's
    # SignalReceivedException (a KeyboardInterrupt carrying the signal) instead of ours.
    return isinstance(exc, Terminated) or getattr(exc, "signal_code", None) == signal.SIGTERM


def _report(exc: BaseException, debug: bool) -> None:
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


def _settings(flags: dict[str, Any], *, require_start: bool = True,
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


def _accounts(choice: str | None, flags: dict[str, Any]) -> list[str | None]:
    """The accounts a command runs for: ``[None]`` (the shared settings) without ``--account``."""
    if choice is None:
        return [None]
    names = select_accounts(choice)
    shared = [f"--{name}" for name in ("username", "dataset") if flags.get(name) is not None]
    if choice == ALL_ACCOUNTS and shared:
        raise ConfigError(f"{' and '.join(shared)} would apply to every account; with --account all, "
                          "set them per account under [sources.listrak.accounts.<name>].")
    return list(names)


def _each_account(names: list[str | None], debug: bool,
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
            _report(exc, debug)
            failures[str(name)] = exit_code(exc), _one_line(str(exc))
        except Exception as exc:
            _report(exc, debug)
            failures[str(name)] = EXIT_ERROR, _one_line(f"Unexpected {type(exc).__name__}: {exc}. "
                                                        "Run again with --debug for details.")
        else:
            continue
        click.echo(f"Error: account {name}: {failures[str(name)][1]}", err=True)
    return failures


def _exit_worst(failures: dict[str, tuple[int, str]]) -> None:
    """Exit with the worst (highest) exit code of the failed accounts, if any failed."""
    if failures:
        sys.exit(max(code for code, _ in failures.values()))


_ACCOUNT_HELP = ("A named account ([sources.listrak.accounts.<name>] in .dlt/*.toml), or all of them, "
                 "each in turn: --account all.")


def _key_options(surface: Surface) -> Callable[[F], F]:
    """The flags of a command's keys, generated from the settings table (no defaults: see run_settings)."""
    def decorate(func: F) -> F:
        for key in reversed(settings_of(surface)):
            if key.flag:
                text = f"{key.description} ${key.env}; default {key.default_text}.".replace("`", "")
                func = click.option(key.flag, key.name, help=text)(func)
        return func

    return decorate


def _log_options(func: F) -> F:
    """-v/--debug, also accepted after the command name."""
    func = click.option("--debug", is_flag=True, default=None, help="Log everything (password redacted), tracebacks.")(
        func)
    return click.option("-v", "--verbose", is_flag=True, default=None, help="Log progress at INFO level.")(func)


def _logging_from(ctx: click.Context, debug: bool | None, verbose: bool | None) -> bool:
    """Apply -v/--debug given after the command name; returns whether --debug is on."""
    debug = bool(debug) or ctx.obj["debug"]
    if debug or verbose:
        _setup_logging(debug, bool(verbose) or ctx.obj["verbose"])
    return debug


# ---------------------------------------------------------------- commands


class _LazyGroup(click.Group):
    """A group whose ``simulator`` and ``verify`` commands are imported only when asked for."""

    _lazy = {"simulator": ("listrak_sync.simulator.cli", "simulator_command"),
             "verify": ("listrak_sync.cli.verify", "verify_command")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self._lazy])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            module, name = self._lazy[cmd_name]
            command: click.Command = getattr(importlib.import_module(module), name)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Log everything (password redacted) and show tracebacks.")
@click.option("-v", "--verbose", is_flag=True, help="Log progress at INFO level.")
@click.version_option(package_name="listrak-sync")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: bool) -> None:
    """Replicate a Listrak account into DuckDB or any dlt destination.

    \b
    Example:
      export LISTRAK_USERNAME=api-user LISTRAK_PASSWORD=...
      listrak-sync check
      listrak-sync run --start-date 01/01/2024
    """
    _setup_logging(debug, verbose)
    ctx.obj = {"debug": debug, "verbose": verbose}


@cli.command()
@_key_options(Surface.CHECK)
@click.option("--account", help=_ACCOUNT_HELP)
@_log_options
@click.pass_context
def check(ctx: click.Context, account: str | None, debug: bool | None, verbose: bool | None, **flags: Any) -> None:
    """Test the connection with one cheap call and list the lists the user can see.

    \b
    Example:
      LISTRAK_USERNAME=u LISTRAK_PASSWORD=p listrak-sync check
      listrak-sync check --account all
    """
    from listrak_sync.extract import Extractor

    debug = _logging_from(ctx, debug, verbose)

    def check_one(name: str | None) -> None:
        settings, _ = _settings(flags, require_start=False, account=name)
        owner = f"account {name}: " if name else ""
        if getattr(settings, "has_soap", True):
            with ListrakClient(settings) as client, unreachable_is_config(client):
                lists = Extractor(client, settings).lists()
            rows = lists.select(["ListID", "ListName"]).to_pylist()
            click.echo(f"OK: {owner}connected to {settings.endpoint} as {settings.username!r}; "
                       f"{len(rows)} lists visible.")
            for row in rows:
                click.echo(f"  {row['ListID']:>10}  {row['ListName'] or ''}")
        if getattr(settings, "has_rest", False):
            _check_rest(settings, owner)

    with _errors(debug):
        _exit_worst(_each_account(_accounts(account, flags), debug, check_one))


def _check_rest(settings: Any, owner: str) -> None:
    """The REST half of ``check``: a token and the lists the client ID sees."""
    from listrak_sync.rest.client import RestClient  # the REST client (issue 19 part 1)

    client = RestClient(settings)
    try:
        client.check()
        items = client.get("/List", {}) or []
    finally:
        client.close()
    click.echo(f"OK: {owner}REST API at {settings.rest_endpoint} with client ID {settings.client_id!r}; "
               f"{len(items)} lists visible.")
    for item in items:
        click.echo(f"  {item.get('listId', ''):>10}  {item.get('listName') or ''}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def discover(as_json: bool) -> None:
    """Describe the tables, columns, types and keys (no network call).

    \b
    Example:
      listrak-sync discover
      listrak-sync discover --json > tables.json

    Columns are shown as the destination names them, with the Listrak field beside. This is
    not a Singer catalog: for one, run `tap-listrak --discover`.
    """
    if as_json:
        click.echo(json.dumps(describe_streams(), indent=2))
        return
    for stream in TABLE_STREAMS:
        parent = f", per row of {stream.parent}" if stream.parent else ""
        key = ", ".join(column_name(k) for k in stream.key)
        source = f"REST GET {stream.route}" if stream.api == "rest" else stream.operation
        click.echo(f"{stream.name}  (key: {key}; {source}{parent})")
        click.echo(f"  {stream.description}")
        for column in stream.table_columns:
            field = ".".join(column.path)
            click.echo(f"    {column_name(column.name):<30} {column.type.value:<10} {field:<30} {column.description}")
        click.echo()


@cli.command()
@_key_options(Surface.RUN)
@click.option("--account", help=_ACCOUNT_HELP)
@click.option("--full-refresh", is_flag=True, help="Re-pull everything instead of only what changed.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@_log_options
@click.pass_context
def run(ctx: click.Context, account: str | None, full_refresh: bool, as_json: bool, debug: bool | None,
        verbose: bool | None, **flags: Any) -> None:
    """Replicate the account into the destination.

    Every setting also comes from LISTRAK_<KEY>, SOURCES__LISTRAK__<KEY> or [sources.listrak]
    in .dlt/config.toml / secrets.toml; credentials may be prompted for on a terminal. With
    --account, a named account's own settings come first; --account all runs each account in
    turn (each into its own dataset), prints one summary per account, and exits with the
    worst exit code.

    \b
    Example:
      listrak-sync run --start-date 01/01/2024
      listrak-sync run --start-date 2024-01-01 --destination postgres --tables lists,messages
      listrak-sync run --account all
    """
    debug = _logging_from(ctx, debug, verbose)
    summaries: dict[str, Any] = {}
    incomplete: list[str] = []

    def run_one(name: str | None) -> None:
        settings, target = _settings(flags, account=name)
        with ListrakClient(settings) as client, unreachable_is_config(client), _progress(client) as progress:
            summary = replicate(settings, destination=target.destination, duckdb_path=target.duckdb,
                                dataset=target.dataset, client=client, full_refresh=full_refresh,
                                progress=progress, lock_wait_seconds=target.lock_wait_seconds,
                                duckdb_memory_limit=target.duckdb_memory_limit)
        if account == ALL_ACCOUNTS and not as_json:
            click.echo(("\n" if summaries else "") + f"Account {name}:")
        summaries[str(name)] = summary.as_dict()
        if summary.incomplete:
            incomplete.append(str(name))
        if not as_json:
            click.echo(summary.render())

    with _errors(debug):
        names = _accounts(account, flags)
        failures = _each_account(names, debug, run_one)
        if as_json and account == ALL_ACCOUNTS:
            for failed, (code, text) in failures.items():
                summaries[failed] = {"error": text, "exit_code": code}
            click.echo(json.dumps({str(name): summaries[str(name)] for name in names}, indent=2))
        elif as_json:
            click.echo(json.dumps(summaries[str(names[0])], indent=2))
        _exit_worst(failures)
        if incomplete:
            raise IncompleteRunError()


@contextmanager
def _progress(client: ListrakClient) -> Iterator[RunProgress]:
    """A live display on a terminal; an INFO heartbeat line every 30 s otherwise."""
    progress = RunProgress()
    with display(progress, client.stats.as_dict):
        yield progress


@cli.command()
@click.option("--duckdb", "duckdb_path", default="demo.duckdb", show_default=True, help="DuckDB file to fill.")
@click.option("--scale", default="small", show_default=True,
              type=click.Choice(["tiny", "small", "medium", "large"]), help="Size of the simulated account.")
@click.pass_context
def demo(ctx: click.Context, duckdb_path: str, scale: str) -> None:
    """Start the bundled simulator, replicate it into DuckDB, and show what you got.

    \b
    Example:
      listrak-sync demo --duckdb demo.duckdb
    """
    from listrak_sync.cli.demo import run_demo

    with _errors(ctx.obj["debug"]):
        run_demo(duckdb_path=duckdb_path, scale=scale, echo=click.echo)


def main() -> None:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    tune_for_bulk_work()
    cli(prog_name="listrak-sync")


__all__ = ["cli", "main"]
