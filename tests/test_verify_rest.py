"""`listrak-sync verify` with both credential pairs: the SOAP event tables against three sources,
the SOAP counters, fresh REST summaries and the loaded REST activity (docs/verify.md).

The real CLI against the simulator serving both APIs, into the default DuckDB file; damage is
done to the loaded SOAP rows by SQL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from helpers import RUN, START, cli
from test_rest_run import CLIENT_ID, CLIENT_SECRET, rest_env

from listrak_sync.engine.verify_sources import CHECKS, REST_CHECKS, SOURCES
from listrak_sync.errors import EXIT_VERIFY_FAILED
from listrak_sync.simulator import Simulator
from listrak_sync.streams import STREAMS_BY_NAME


def verify(env: dict[str, str], cwd: Path) -> tuple[int, dict[str, Any], str]:
    result = cli("verify", "--start-date", START, "--json", env=env, cwd=cwd)
    assert not result.stderr.startswith("Traceback"), result.stderr
    assert CLIENT_SECRET not in result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout) if result.stdout.strip() else {}, result.stderr


def test_the_soap_checks_are_the_stream_tables_counters() -> None:
    counters = {s.counter for s in STREAMS_BY_NAME.values() if s.counter}
    assert counters <= {c.counter for c in CHECKS}
    assert {c.source for c in CHECKS + REST_CHECKS} == set(SOURCES)


@pytest.mark.parametrize("profile", ["friendly", "pessimistic"])
def test_soap_events_rest_summaries_and_rest_activity_agree_after_a_run(profile: str, tmp_path: Path) -> None:
    with Simulator(scale="small", profile=profile, client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as sim:
        env = rest_env(tmp_path, sim)
        assert cli(*RUN, env=env, cwd=tmp_path).returncode == 0
        sim.reset_stats()
        code, report, stderr = verify(env, tmp_path)
        assert code == 0, stderr
        messages = report["messages_checked"]
        assert report["counts"]["off"] == 0 and report["counts"]["not checked"] == 0, report["unchecked"]
        assert set(report["sources"]) == set(SOURCES)
        assert report["checks"] == messages * (len(CHECKS) + len(REST_CHECKS))
        for source, by in report["sources"].items():
            assert by["off"] == 0 and by["agrees"] > 0.9 * sum(by.values()), (source, by)
        assert sim.stats()["rest_requests_total"] == messages, "one fresh summary per message"
        with duckdb.connect(str(tmp_path / "listrak_sync.duckdb"), read_only=True) as con:
            query = "SELECT source, count(*) FROM listrak.verify_history GROUP BY source"
            sources = dict(con.execute(query).fetchall())
        assert sources == {s: sum(by.values()) for s, by in report["sources"].items()}


def test_deleted_opens_make_verify_name_the_message_and_the_rest_sources(tmp_path: Path) -> None:
    with Simulator(scale="small", client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as sim:
        env = rest_env(tmp_path, sim)
        assert cli(*RUN, env=env, cwd=tmp_path).returncode == 0
        with duckdb.connect(str(tmp_path / "listrak_sync.duckdb")) as con:
            (msg_id,) = con.execute("SELECT msg_id FROM listrak.message_opens GROUP BY msg_id "
                                    "HAVING count(DISTINCT email_address) >= 10 ORDER BY msg_id LIMIT 1").fetchone()
            con.execute("DELETE FROM listrak.message_opens WHERE msg_id = ? AND email_address IN (SELECT DISTINCT "
                        "email_address FROM listrak.message_opens WHERE msg_id = ? ORDER BY 1 LIMIT 5)",
                        [msg_id, msg_id])
        code, report, _ = verify(env, tmp_path)
        assert code == EXIT_VERIFY_FAILED
        off = {(r["msg_id"], r["table"], r["source"], r["counter"]) for r in report["off"]}
        assert off == {(msg_id, "message_opens", "messages", "OpenCount"),
                       (msg_id, "message_opens", "message_summaries", "openCount"),
                       (msg_id, "message_opens", "message_activity", "count(open)")}, off
        text = cli("verify", "--start-date", START, "--no-history", env=env, cwd=tmp_path)
        assert text.returncode == EXIT_VERIFY_FAILED
        assert f"message_summaries.openCount message {msg_id}" in text.stdout, text.stdout
        assert f"message_activity.count(open) message {msg_id}" in text.stdout, text.stdout
