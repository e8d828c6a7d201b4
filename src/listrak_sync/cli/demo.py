"""``listrak-sync demo``: the simulator, a full replication of both APIs into DuckDB, and a first look."""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Callable

import duckdb

from listrak_sync.pipeline.runner import DEFAULT_DATASET, RunSummary, replicate
from listrak_sync.settings import Settings
from listrak_sync.simulator import (
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    Simulator,
)
from listrak_sync.simulator.data import EPOCH

EXAMPLE_QUERIES: tuple[tuple[str, str], ...] = (
    (
        "Messages with the most clicks",
        "SELECT m.subject, m.send_date, count(*) AS clicks FROM listrak.message_clicks c "
        "JOIN listrak.messages m USING (msg_id) GROUP BY ALL ORDER BY clicks DESC LIMIT 5",
    ),
    (
        "Subscribers per list",
        "SELECT l.list_name, count(*) AS subscribed FROM listrak.subscribed_contacts s "
        "JOIN listrak.lists l USING (list_id) GROUP BY ALL ORDER BY subscribed DESC",
    ),
    (
        "Opens per 100 delivered, by month (OpenCount counts every open)",
        "SELECT date_trunc('month', send_date) AS month, round(100.0 * sum(open_count) / "
        "nullif(sum(deliver_count), 0), 1) AS open_pct FROM listrak.messages GROUP BY ALL ORDER BY month",
    ),
    (
        "Automated journeys (REST): sends, opens and revenue per conversation",
        "SELECT c.conversation_name, sum(s.sent_count) AS sent, sum(s.open_count) AS opens, "
        "round(sum(s.revenue), 2) AS revenue FROM listrak.conversation_message_summaries s "
        "JOIN listrak.conversations c USING (list_id, conversation_id) GROUP BY ALL ORDER BY sent DESC",
    ),
    (
        "Transactional sends per template (REST)",
        "SELECT t.transactional_message_name, count(*) AS sends FROM listrak.transactional_message_activity a "
        "JOIN listrak.transactional_messages t USING (list_id, transactional_message_id) GROUP BY ALL "
        "ORDER BY sends DESC LIMIT 5",
    ),
)
HINT_QUERY = "SELECT count(*) FROM listrak.messages"


def run_demo(*, duckdb_path: str, scale: str = "small", echo: Callable[[str], None] = print) -> RunSummary:
    """Serve a simulated account on loopback (SOAP and REST) and replicate all of it into ``duckdb_path``.

    Args:
        duckdb_path: the DuckDB file to fill (tables are replaced if it exists).
        scale: the simulated account's size.
        echo: where to print.

    Returns:
        The run's summary.
    """
    start = EPOCH.strftime("%m/%d/%Y")
    with Simulator(scale=scale, client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET) as sim:
        echo(f"Simulator serving a {scale!r} account at {sim.url} (SOAP) and {sim.rest_url} (REST)")
        settings = Settings.from_mapping(
            {"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD, "start_date": start, "endpoint": sim.url,
             "client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET, "rest_endpoint": sim.rest_url,
             "token_endpoint": sim.token_url}
        )
        echo(f"Replicating everything since {start} into {duckdb_path} ...")
        summary = replicate(settings, duckdb_path=duckdb_path)
    echo(summary.render())
    echo("")
    echo("Run any query yourself, in this directory, for example:")
    echo("  " + query_command(duckdb_path, HINT_QUERY))
    echo("Some to try:")
    with duckdb.connect(duckdb_path, read_only=True) as con:
        for title, sql in EXAMPLE_QUERIES:
            echo(f"\n-- {title}\n{sql};")
            echo(str(con.sql(sql.replace("listrak.", f"{DEFAULT_DATASET}."))))
    return summary


def query_command(duckdb_path: str, sql: str) -> str:
    """A shell command line that prints the result of ``sql`` on ``duckdb_path``.

    It names this Python (which has duckdb), relative to the current directory where it lies
    inside it (``.venv/bin/python`` after ``make demo``), and takes the query as an argument, so
    any query, quotes included, can be pasted in.
    """
    python = os.path.relpath(sys.executable)
    if python.startswith(os.pardir):
        python = sys.executable
    code = f"import duckdb, sys; print(duckdb.connect({json.dumps(duckdb_path)}, read_only=True).sql(sys.argv[1]))"
    return shlex.join([python, "-c", code, sql])
