"""``listrak_source`` in a user's own dlt pipeline keeps the rules ``listrak-sync run`` keeps.

A destination that cannot merge (files) is replaced whole every run, never appended to; and the
source closes the client it made once its resources are through (no connection left open).
"""

from __future__ import annotations

from pathlib import Path

import dlt
import duckdb
import psutil
from destination import assert_matches_truth
from helpers import START

from listrak_sync.pipeline.source import listrak_source
from listrak_sync.simulator import DEFAULT_PASSWORD, DEFAULT_USERNAME, Simulator
from listrak_sync.simulator.data import EPOCH
from listrak_sync.streams import STREAM_NAMES


def _source(sim: Simulator) -> dlt.sources.DltSource:
    return listrak_source(username=DEFAULT_USERNAME, password=DEFAULT_PASSWORD, start_date=START, endpoint=sim.url,
                          options={"max_retries": 2, "backoff_base": 0.01, "backoff_max": 0.05})


def _connections_to(port: int) -> list[object]:
    return [c for c in psutil.Process().net_connections(kind="tcp") if c.raddr and c.raddr.port == port]


def test_files_are_replaced_every_run_and_equal_the_account(tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    with Simulator(scale="tiny", page_size=7) as sim:
        pipeline = dlt.pipeline("own_files", destination=dlt.destinations.filesystem(bucket_url=bucket.as_uri()),
                                dataset_name="listrak_files", pipelines_dir=str(tmp_path / "work"))
        for step in (0.0, 2.0):  # the second run would double the rows if it merged into files
            sim.advance(step)
            pipeline.run(_source(sim), loader_file_format="parquet")
            with duckdb.connect() as con:
                for table in STREAM_NAMES:
                    files = sorted(str(f) for f in (bucket / "listrak_files" / table).glob("*.parquet"))
                    cursor = con.execute(f"SELECT * FROM read_parquet({files!r})")
                    names = [d[0] for d in cursor.description]
                    rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
                    assert_matches_truth(table, rows, sim.account.ground_truth(table, EPOCH))


def test_the_source_closes_the_client_it_made(tmp_path: Path) -> None:
    with Simulator(scale="tiny", page_size=7) as sim:
        port = int(sim.url.split(":")[2].split("/")[0])
        pipeline = dlt.pipeline("own_duckdb", destination=dlt.destinations.duckdb(str(tmp_path / "own.duckdb")),
                                dataset_name="listrak_data", pipelines_dir=str(tmp_path / "work"))
        pipeline.run(_source(sim).with_resources("lists", "messages", "message_opens"))
        assert pipeline.last_trace.last_normalize_info.row_counts["message_opens"] > 0
        assert _connections_to(port) == [], "a connection to the service was left open"
