"""The ``listrak-sync`` command line: a thin click layer over the library.

Library errors become one clean line on stderr and an exit code that says what to do:
0 done; 2 bad usage or configuration; 3 access refused (credentials, IP, lockout); 1 anything
else. ``--debug`` adds tracebacks; the password is redacted from every log line either way.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from listrak_sync.config import PRODUCTION_ENDPOINT, Settings, parse_list_ids, parse_tables
from listrak_sync.destinations import DEFAULT_DUCKDB_PATH
from listrak_sync.errors import EXIT_ERROR, ConfigError, ListrakSyncError, TransportError, exit_code
from listrak_sync.logs import RedactingFilter, log_to_stderr
from listrak_sync.runner import DEFAULT_DATASET, RunSummary, replicate
from listrak_sync.soap.client import ListrakClient
from listrak_sync.streams import STREAMS

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("listrak_sync")


REDACT = RedactingFilter()


def _setup_logging(debug: bool, verbose: bool) -> None:
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    log_to_stderr(level, REDACT, "%(asctime)s %(levelname)s %(name)s: %(message)s", debug=debug)


def _fail(message: str, code: int) -> None:
    text = message.strip().splitlines()[0] if message.strip() else "failed"
    for secret in REDACT.secrets:
        text = text.replace(secret, "********")
    click.echo(f"Error: {text}", err=True)
    sys.exit(code)


@contextmanager
def _errors(debug: bool) -> Iterator[None]:
    """Turn library errors into one line on stderr and the documented exit code."""
    try:
        yield
    except (click.exceptions.Exit, click.ClickException, click.Abort):
        raise
    except KeyboardInterrupt:
        _fail("Interrupted. The destination was left as it was before this run.", 130)
    except ListrakSyncError as exc:
        _report(exc, debug)
        _fail(str(exc), exit_code(exc))
    except Exception as exc:
        _report(exc, debug)
        _fail(f"Unexpected {type(exc).__name__}: {exc}. Run again with --debug for details.", EXIT_ERROR)


def _report(exc: BaseException, debug: bool) -> None:
    if debug:
        log.error("failed", exc_info=exc)


# ---------------------------------------------------------------- settings from the environment


def _secret_from_dlt(key: str) -> str | None:
    try:
        import dlt

        value: Any = dlt.secrets.get(f"sources.listrak.{key}")
    except Exception:
        return None
    return str(value) if value else None


def _credentials(username: str | None) -> tuple[str, str]:
    username = username or os.environ.get("LISTRAK_USERNAME") or _secret_from_dlt("username")
    password = os.environ.get("LISTRAK_PASSWORD") or _secret_from_dlt("password")
    interactive = sys.stdin.isatty()
    if not username:
        if not interactive:
            raise ConfigError(
                "No Listrak username. Set LISTRAK_USERNAME, pass --username, or add "
                "username under [sources.listrak] in .dlt/secrets.toml."
            )
        username = click.prompt("Listrak username")
    if not password:
        if not interactive:
            raise ConfigError(
                "No Listrak password. Set LISTRAK_PASSWORD or add password under "
                "[sources.listrak] in .dlt/secrets.toml (there is no password flag, by design)."
            )
        password = click.prompt("Listrak password", hide_input=True)
    REDACT.secrets.add(password)
    return username, password


def _settings(
    *, username: str | None, start_date: str | None, require_start: bool = True, **options: Any
) -> Settings:
    user, password = _credentials(username)
    start = start_date or os.environ.get("LISTRAK_START_DATE") or _secret_from_dlt("start_date")
    if not start:
        if require_start:
            raise ConfigError(
                "No start date. Pass --start-date MM/DD/YYYY (or YYYY-MM-DD), or set LISTRAK_START_DATE."
            )
        start = "01/01/2000"
    values = {k: v for k, v in options.items() if v is not None}
    return Settings.from_mapping({**values, "username": user, "password": password, "start_date": start})


def common_options(func: F) -> F:
    """Options every command that talks to Listrak takes."""
    func = click.option("--username", help="Listrak API user (default: $LISTRAK_USERNAME).")(func)
    func = click.option(
        "--endpoint",
        default=lambda: os.environ.get("LISTRAK_ENDPOINT", PRODUCTION_ENDPOINT),
        show_default="$LISTRAK_ENDPOINT or production",
        help="SOAP endpoint URL (production, a proxy, or the simulator).",
    )(func)
    return func


# ---------------------------------------------------------------- commands


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    ctx.obj = {"debug": debug}


@cli.command()
@common_options
@click.pass_context
def check(ctx: click.Context, username: str | None, endpoint: str) -> None:
    """Test the connection with one cheap call and list the lists the user can see.

    \b
    Example:
      LISTRAK_USERNAME=u LISTRAK_PASSWORD=p listrak-sync check
    """
    from listrak_sync.extract import Extractor

    with _errors(ctx.obj["debug"]):
        settings = _settings(username=username, start_date=None, require_start=False, endpoint=endpoint)
        with ListrakClient(settings) as client, _unreachable_is_config(client):
            lists = Extractor(client, settings).lists()
        rows = lists.select(["ListID", "ListName"]).to_pylist()
        click.echo(f"OK: connected to {settings.endpoint} as {settings.username!r}; {len(rows)} lists visible.")
        for row in rows:
            click.echo(f"  {row['ListID']:>10}  {row['ListName'] or ''}")
        if not rows:
            click.echo(
                "No lists are assigned to this user: select lists for it under "
                "Manage > Accounts > User Manager."
            )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def discover(as_json: bool) -> None:
    """Describe the tables, columns, types and keys (no network call).

    \b
    Example:
      listrak-sync discover --json > catalog.json
    """
    if as_json:
        click.echo(json.dumps(describe_streams(), indent=2))
        return
    for stream in STREAMS:
        parent = f", per row of {stream.parent}" if stream.parent else ""
        click.echo(f"{stream.name}  (key: {', '.join(stream.key)}; {stream.operation}{parent})")
        click.echo(f"  {stream.description}")
        for column in stream.table_columns:
            click.echo(f"    {column.name:<28} {column.type.value:<10} {column.description}")
        click.echo()


def describe_streams() -> list[dict[str, Any]]:
    """The stream table as plain data: what ``discover --json`` prints."""
    return [
        {
            "table": s.name,
            "description": s.description,
            "operation": s.operation,
            "parent": s.parent,
            "key": list(s.key),
            "cursor": s.cursor,
            "columns": [
                {"name": c.name, "type": c.type.value, "nullable": c.nullable, "description": c.description}
                for c in s.table_columns
            ],
        }
        for s in STREAMS
    ]


def _run_options(func: F) -> F:
    options = [
        click.option("--start-date", help="Earliest data: MM/DD/YYYY or YYYY-MM-DD ($LISTRAK_START_DATE)."),
        click.option("--tables", help="Comma-separated tables to replicate (default: all nine)."),
        click.option("--lists", "list_ids", help="Comma-separated list IDs (default: every visible list)."),
        click.option("--destination", default="duckdb", show_default=True, help="A dlt destination name."),
        click.option("--duckdb", "duckdb_path", default=DEFAULT_DUCKDB_PATH, show_default=True,
                     help="DuckDB file, for the duckdb destination."),
        click.option("--dataset", default=DEFAULT_DATASET, show_default=True, help="Dataset (schema) name."),
        click.option("--concurrency", type=int, help="Most requests in flight at once (default 8)."),
        click.option("--full-refresh", is_flag=True, help="Re-pull everything instead of only what changed."),
        click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@cli.command()
@common_options
@_run_options
@click.pass_context
def run(ctx: click.Context, username: str | None, endpoint: str, start_date: str | None, tables: str | None,
        list_ids: str | None, destination: str, duckdb_path: str, dataset: str, concurrency: int | None,
        full_refresh: bool, as_json: bool) -> None:
    """Replicate the account into the destination.

    Credentials come from LISTRAK_USERNAME / LISTRAK_PASSWORD, .dlt/secrets.toml, or a prompt.

    \b
    Example:
      listrak-sync run --start-date 01/01/2024 --duckdb listrak.duckdb
      listrak-sync run --start-date 2024-01-01 --destination postgres --tables lists,messages
    """
    with _errors(ctx.obj["debug"]):
        settings = _settings(
            username=username, start_date=start_date, endpoint=endpoint, concurrency=concurrency,
            tables=parse_tables(tables) if tables else None,
            list_ids=parse_list_ids(list_ids) if list_ids else None,
        )
        summary = _replicate_with_progress(settings, destination, duckdb_path, dataset, full_refresh)
        _print_summary(summary, as_json)


def _replicate_with_progress(
    settings: Settings, destination: str, duckdb_path: str, dataset: str, full_refresh: bool
) -> RunSummary:
    with ListrakClient(settings) as client, _unreachable_is_config(client), _progress(client):
        return replicate(settings, destination=destination, duckdb_path=duckdb_path, dataset=dataset,
                         client=client, full_refresh=full_refresh)


@contextmanager
def _unreachable_is_config(client: ListrakClient) -> Iterator[None]:
    """A service never reached at all is a configuration problem (exit 2), not a failed run."""
    try:
        yield
    except TransportError as exc:
        if client.stats.as_dict()["requests_total"] == 0:
            raise ConfigError(str(exc)) from None
        raise


@contextmanager
def _progress(client: ListrakClient) -> Iterator[None]:
    """A live status line on a terminal; nothing (plain log lines only) otherwise."""
    if not sys.stderr.isatty():
        yield
        return
    stop = threading.Event()
    started = time.monotonic()

    def show() -> None:
        while not stop.wait(0.5):
            stats = client.stats.as_dict()
            done = sum(stats.get("requests", {}).values())
            sys.stderr.write(
                f"\r  {done} requests, {stats.get('retries', 0)} retries, {time.monotonic() - started:5.1f}s "
            )
            sys.stderr.flush()

    thread = threading.Thread(target=show, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        sys.stderr.write("\r\033[K")


def _print_summary(summary: RunSummary, as_json: bool) -> None:
    click.echo(json.dumps(summary.as_dict(), indent=2) if as_json else summary.render())


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
    from listrak_sync.demo import run_demo

    with _errors(ctx.obj["debug"]):
        run_demo(duckdb_path=duckdb_path, scale=scale, echo=click.echo)


def _mount_simulator() -> None:
    from listrak_sync.simulator.cli import simulator_command

    cli.add_command(simulator_command, "simulator")


_mount_simulator()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="listrak-sync")


__all__ = ["cli", "describe_streams", "main"]
