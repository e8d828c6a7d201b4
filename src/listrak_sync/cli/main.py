"""The ``listrak-sync`` command line: a thin click layer over the library.

Library errors become one clean line on stderr and an exit code that says what to do:
0 done; 2 bad usage or configuration; 3 access refused (credentials, IP, lockout); 5 loaded, but
some object's pages never ended (named in the summary); 1 anything else. ``--debug`` adds
tracebacks; the password is redacted from every log line either way.
"""

from __future__ import annotations

import importlib
import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from listrak_sync.cli.common import (
    ACCOUNT_HELP,
    accounts_of,
    each_account,
    exit_codes,
    exit_worst,
    key_options,
    log_options,
    logging_from,
    on_sigterm,
    settings_from,
    setup_logging,
)
from listrak_sync.cli.docs import TABLE_STREAMS, column_name, describe_streams
from listrak_sync.errors import IncompleteRunError
from listrak_sync.pipeline.display import display
from listrak_sync.pipeline.run_settings import (
    ALL_ACCOUNTS,
)
from listrak_sync.pipeline.runner import replicate
from listrak_sync.process import tune_for_bulk_work
from listrak_sync.progress import RunProgress
from listrak_sync.settings_table import Surface
from listrak_sync.soap.client import ListrakClient, unreachable_is_config

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
    setup_logging(debug, verbose)
    ctx.obj = {"debug": debug, "verbose": verbose}


@cli.command()
@key_options(Surface.CHECK)
@click.option("--account", help=ACCOUNT_HELP)
@log_options
@click.pass_context
def check(ctx: click.Context, account: str | None, debug: bool | None, verbose: bool | None, **flags: Any) -> None:
    """Test the connection with one cheap call and list the lists the user can see.

    \b
    Example:
      LISTRAK_USERNAME=u LISTRAK_PASSWORD=p listrak-sync check
      listrak-sync check --account all
    """
    from listrak_sync.extract import Extractor

    debug = logging_from(ctx, debug, verbose)

    def check_one(name: str | None) -> None:
        settings, _ = settings_from(flags, require_start=False, account=name)
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

    with exit_codes(debug):
        exit_worst(each_account(accounts_of(account, flags), debug, check_one))


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
@key_options(Surface.RUN)
@click.option("--account", help=ACCOUNT_HELP)
@click.option("--full-refresh", is_flag=True, help="Re-pull everything instead of only what changed.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@log_options
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
    debug = logging_from(ctx, debug, verbose)
    summaries: dict[str, Any] = {}
    incomplete: list[str] = []

    def run_one(name: str | None) -> None:
        settings, target = settings_from(flags, account=name)
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

    with exit_codes(debug):
        names = accounts_of(account, flags)
        failures = each_account(names, debug, run_one)
        if as_json and account == ALL_ACCOUNTS:
            for failed, (code, text) in failures.items():
                summaries[failed] = {"error": text, "exit_code": code}
            click.echo(json.dumps({str(name): summaries[str(name)] for name in names}, indent=2))
        elif as_json:
            click.echo(json.dumps(summaries[str(names[0])], indent=2))
        exit_worst(failures)
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

    with exit_codes(ctx.obj["debug"]):
        run_demo(duckdb_path=duckdb_path, scale=scale, echo=click.echo)


def main() -> None:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, on_sigterm)
    tune_for_bulk_work()
    cli(prog_name="listrak-sync")


__all__ = ["cli", "main"]
