"""``listrak-sync verify``: the destination against the service's counters (docs/verify.md).

It takes the same settings as ``run`` (the same flags, environment, dlt configuration and
``--account``), so a run's command line with ``run`` replaced by ``verify`` checks what that
run wrote.
"""

from __future__ import annotations

import json
import sys
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
    settings_from,
)
from listrak_sync.errors import EXIT_VERIFY_FAILED
from listrak_sync.pipeline.run_settings import ALL_ACCOUNTS
from listrak_sync.pipeline.verify import verify
from listrak_sync.settings_table import Surface
from listrak_sync.soap.client import ListrakClient, unreachable_is_config


@click.command(name="verify")
@key_options(Surface.RUN)
@click.option("--account", help=ACCOUNT_HELP)
@click.option("--counter-reading", "counter_reading", default=None,
              help="Pin what the counters count: auto, events, unique, or OpenCount=unique,openCount=unique,... "
                   "$LISTRAK_COUNTER_READING; default auto (the reading the data fits).")
@click.option("--repair", is_flag=True, help="Re-read the messages that are off and merge them in one load.")
@click.option("--no-history", is_flag=True, help="Do not append to the verify_history table.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@log_options
@click.pass_context
def verify_command(ctx: click.Context, account: str | None, repair: bool, no_history: bool, as_json: bool,
                   debug: bool | None, verbose: bool | None, **flags: Any) -> None:
    """Check the destination against the service's own counters (no per-message report calls).

    Per list, message and activity table, the rows and distinct contacts are held against the
    message's counters, read fresh in one messages read; with REST credentials also against the
    REST summaries (fresh) and the loaded REST activity. Exit 0 when every difference is within
    the incremental contract, 4 when some message is off (see docs/verify.md).

    \b
    Example:
      listrak-sync verify --start-date 01/01/2024
      listrak-sync verify --start-date 01/01/2024 --repair
      listrak-sync verify --account all --json
    """
    debug = logging_from(ctx, debug, verbose)
    reports: dict[str, Any] = {}
    incomplete: list[str] = []

    def verify_one(name: str | None) -> None:
        settings, target = settings_from(flags, account=name)
        with ListrakClient(settings) as client, unreachable_is_config(client):
            report = verify(settings, destination=target.destination, duckdb_path=target.duckdb,
                            dataset=target.dataset, client=client, repair=repair, history=not no_history,
                            lock_wait_seconds=target.lock_wait_seconds,
                            duckdb_memory_limit=target.duckdb_memory_limit)
        if not report.ok:
            incomplete.append(str(name))
        if account == ALL_ACCOUNTS and not as_json:
            click.echo(("\n" if reports else "") + f"Account {name}:")
        reports[str(name)] = report.as_dict()
        if not as_json:
            click.echo(report.render())

    with exit_codes(debug):
        names = accounts_of(account, flags)
        failures = each_account(names, debug, verify_one)
        if as_json:
            for failed, (code, text) in failures.items():
                reports[failed] = {"error": text, "exit_code": code}
            shown = reports if account == ALL_ACCOUNTS else reports.get(str(names[0]), {})
            click.echo(json.dumps(shown, indent=2, default=str))
        exit_worst(failures)
        if incomplete:
            if not as_json:
                click.echo(f"Error: messages are off beyond what the incremental contract allows; "
                           f"`listrak-sync verify --repair` re-reads them (exit {EXIT_VERIFY_FAILED}).", err=True)
            sys.exit(EXIT_VERIFY_FAILED)


__all__ = ["verify_command"]
