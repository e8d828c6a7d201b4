"""`listrak-sync verify`: the destination against the service's counters, and `--repair`.

Through the CLI against the simulator, into a real DuckDB file (the default one, in a fresh
directory) and the real PostgreSQL; damage is done to the destination by SQL, and the repaired
tables are compared with the simulator's ground truth row for row.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import duckdb
import psycopg2
import pytest
from destination import normalize
from helpers import POSTGRES_DSN, RUN, START, cli, cli_env
from test_pessimistic_sync import ZONES, utc_truth

from listrak_sync.errors import EXIT_VERIFY_FAILED
from listrak_sync.simulator import DEFAULT_PASSWORD, Simulator
from listrak_sync.simulator.data import EPOCH
from listrak_sync.streams import STREAM_NAMES, STREAMS_BY_NAME, children_of

ACTIVITY_OPERATIONS = {s.operation for s in children_of("messages")}
MESSAGE_READS = ("GetContactListCollection", "ReportListMessageActivity")


class Destination:
    """The default DuckDB file in a directory, or a PostgreSQL dataset of its own."""

    def __init__(self, kind: str, directory: Path) -> None:
        self.kind, self.directory = kind, directory
        self.dataset = "listrak" if kind == "duckdb" else f"lrk_verify_{uuid.uuid4().hex[:8]}"
        self.flags = [] if kind == "duckdb" else ["--destination", "postgres", "--dataset", self.dataset]
        self.env = {} if kind == "duckdb" else {"DESTINATION__POSTGRES__CREDENTIALS": POSTGRES_DSN}

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.kind == "duckdb":
            with duckdb.connect(str(self.directory / "listrak_sync.duckdb")) as con:
                con.execute("SET TimeZone = 'UTC'")
                cursor = con.execute(sql.replace("%s", "?"), list(params))
                return cursor.fetchall() if cursor.description else []
        with psycopg2.connect(POSTGRES_DSN) as con, con.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def read(self, table: str) -> list[dict[str, Any]]:
        names = [r[0] for r in self.query("SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                                          "AND table_name = %s ORDER BY ordinal_position", (self.dataset, table))]
        rows = self.query(f'SELECT {", ".join(names)} FROM "{self.dataset}"."{table}"')
        return [dict(zip(names, r, strict=True)) for r in rows]

    def drop(self) -> None:
        if self.kind == "postgres":
            for schema in (self.dataset, f"{self.dataset}_staging"):
                self.query(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def assert_equals_truth(dest: Destination, sim: Simulator) -> None:
    for table in STREAM_NAMES:
        stream = STREAMS_BY_NAME[table]
        truth = utc_truth(table, sim.account.ground_truth(table, EPOCH), ZONES[sim.profile.name])
        want = normalize(stream, truth, listrak_names=True)
        got = normalize(stream, dest.read(table), listrak_names=False)
        assert want == got, (table, sum((want - got).values()), sum((got - want).values()))


def verify_json(*flags: str, env: dict[str, str], cwd: Path) -> tuple[int, dict[str, Any], str]:
    result = cli("verify", "--start-date", START, "--json", *flags, env=env, cwd=cwd)
    assert not result.stderr.startswith("Traceback"), result.stderr
    return result.returncode, json.loads(result.stdout) if result.stdout.strip() else {}, result.stdout + result.stderr


@pytest.mark.parametrize("profile", ["friendly", "pessimistic"])
def test_verify_after_a_full_run_exits_0_with_the_defaults(profile: str, tmp_path: Path) -> None:
    with Simulator(scale="small", profile=profile) as sim:
        env = cli_env(sim.url)
        assert cli(*RUN, env=env, cwd=tmp_path).returncode == 0
        sim.reset_stats()
        result = cli("verify", "--start-date", START, env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "off 0" in result.stdout and "Counters" in result.stdout
        unique = "unique" if profile == "pessimistic" else "events"
        for counter in ("OpenCount", "ReadCount"):
            assert f"{counter:<13} {unique}" in result.stdout, result.stdout
        assert set(sim.stats()["requests"]) <= set(MESSAGE_READS), "verify asks no activity report"
        with duckdb.connect(str(tmp_path / "listrak_sync.duckdb"), read_only=True) as con:
            history = con.execute("SELECT count(*), count(DISTINCT msg_id), min(status) FROM listrak.verify_history"
                                  ).fetchone()
            messages = con.execute("SELECT count(*) FROM listrak.messages").fetchone()
        assert history is not None and messages is not None
        assert history[1] == messages[0] and history[0] == 6 * messages[0], "one row per message and check"


def damage(dest: Destination, behind: set[tuple[str, int]]) -> tuple[int, int]:
    """Delete 10 opens (of 10 contacts who opened once) of one message, add 3 clicks to another."""
    opens = dest.query(f"SELECT msg_id FROM {dest.dataset}.message_opens GROUP BY msg_id, email_address "
                       "HAVING count(*) = 1")
    singles: dict[int, int] = {}
    for (msg_id,) in opens:
        singles[msg_id] = singles.get(msg_id, 0) + 1
    opened = min(m for m, n in singles.items() if n >= 10 and ("message_opens", m) not in behind)
    clicked = min(m for (m,) in dest.query(f"SELECT DISTINCT msg_id FROM {dest.dataset}.message_clicks")
                  if m != opened and ("message_clicks", m) not in behind)
    dest.query(f"DELETE FROM {dest.dataset}.message_opens WHERE msg_id = %s AND email_address IN ("
               f"SELECT email_address FROM {dest.dataset}.message_opens WHERE msg_id = %s GROUP BY email_address "
               "HAVING count(*) = 1 ORDER BY email_address LIMIT 10)", (opened, opened))
    rows = [r for r in dest.read("message_clicks") if r["msg_id"] == clicked][:3]
    for i, row in enumerate(rows):
        row = {**row, "email_address": f"extra-{i}@example.com"}
        dest.query(f"INSERT INTO {dest.dataset}.message_clicks ({', '.join(row)}) VALUES "
                   f"({', '.join(['%s'] * len(row))})", tuple(row.values()))
    return opened, clicked


@pytest.mark.parametrize(("kind", "profile"), [
    ("duckdb", "friendly"), ("duckdb", "pessimistic"), pytest.param("postgres", "friendly", marks=pytest.mark.postgres),
])
def test_verify_names_exactly_the_damaged_messages_and_repair_restores_ground_truth(
        kind: str, profile: str, tmp_path: Path) -> None:
    dest = Destination(kind, tmp_path)
    outputs = []
    try:
        with Simulator(scale="small", profile=profile) as sim:
            env = cli_env(sim.url, LISTRAK_SOURCE_TIMEZONE=ZONES[profile], **dest.env)
            for _ in range(2):  # a full run, then a run with nothing changed: its lists and messages reads
                sim.reset_stats()
                result = cli(*RUN, *dest.flags, env=env, cwd=tmp_path)
                assert result.returncode == 0, result.stderr
                outputs.append(result.stdout + result.stderr)
            run_reads = sim.stats()["requests"]
            assert_equals_truth(dest, sim)

            sim.reset_stats()
            code, report, text = verify_json(*dest.flags, env=env, cwd=tmp_path)
            outputs.append(text)
            assert code == 0 and report["counts"]["off"] == 0, text
            verify_reads = sim.stats()["requests"]
            assert set(verify_reads) <= set(MESSAGE_READS)
            assert all(verify_reads[op] <= run_reads[op] for op in verify_reads), (verify_reads, run_reads)

            behind = {(r["table"], r["msg_id"]) for r in report["behind"]}
            opened, clicked = damage(dest, behind)
            code, report, text = verify_json(*dest.flags, env=env, cwd=tmp_path)
            outputs.append(text)
            assert code == EXIT_VERIFY_FAILED, text
            off = {(r["table"], r["msg_id"]) for r in report["off"]}
            assert off == {("message_opens", opened), ("message_clicks", clicked)}, report["off"]
            assert {r["difference"] for r in report["off"] if r["table"] == "message_opens"} == {-10}
            assert {r["difference"] for r in report["off"] if r["table"] == "message_clicks"} == {3}
            plain = cli("verify", "--start-date", START, *dest.flags, env=env, cwd=tmp_path)
            outputs.append(plain.stdout + plain.stderr)
            assert plain.returncode == EXIT_VERIFY_FAILED and f"message {opened}" in plain.stdout
            assert f"message {clicked}" in plain.stdout and "--repair" in plain.stderr

            sim.reset_stats()
            code, report, text = verify_json("--repair", *dest.flags, env=env, cwd=tmp_path)
            outputs.append(text)
            assert code == 0 and report["off_after_repair"] == [], text
            by_object = {op: {int(i) for i in ids} for op, ids in sim.stats()["requests_by_object"].items()
                         if op in ACTIVITY_OPERATIONS}
            assert by_object == {"ReportRangeMessageContactOpen": {opened}, "ReportRangeMessageContactClick": {clicked}}
            assert_equals_truth(dest, sim)

            code, report, text = verify_json(*dest.flags, env=env, cwd=tmp_path)
            outputs.append(text)
            assert code == 0 and report["counts"]["off"] == 0, text
            assert cli(*RUN, *dest.flags, env=env, cwd=tmp_path).returncode == 0  # the plan carries on
            assert_equals_truth(dest, sim)

        history = dest.query(f"SELECT status, count(*) FROM {dest.dataset}.verify_history GROUP BY status")
        assert dict(history).get("off") == 3 * 2  # opens, clicks and clickers; verified twice before the repair
        cells = dest.query(f"SELECT * FROM {dest.dataset}.verify_history")
        assert not any(DEFAULT_PASSWORD in str(cell) for row in cells for cell in row)
        assert not any(DEFAULT_PASSWORD in text for text in outputs)
    finally:
        dest.drop()


def test_verify_before_any_run_and_repair_without_merge_are_usage_errors(tmp_path: Path) -> None:
    with Simulator(scale="tiny") as sim:
        env = cli_env(sim.url, DESTINATION__FILESYSTEM__BUCKET_URL=str(tmp_path / "files"))
        result = cli("verify", "--start-date", START, env=env, cwd=tmp_path)
        assert result.returncode == 2 and "Run `listrak-sync run` first" in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and not list(tmp_path.iterdir()), "no file left behind"
        duckdb.connect(str(tmp_path / "listrak_sync.duckdb")).close()  # a file no run has loaded
        result = cli("verify", "--start-date", START, env=env, cwd=tmp_path)
        assert result.returncode == 2 and "No complete listrak-sync run" in result.stderr, result.stderr
        assert cli(*RUN, "--destination", "filesystem", env=env, cwd=tmp_path).returncode == 0
        result = cli("verify", "--start-date", START, "--destination", "filesystem", env=env, cwd=tmp_path)
        assert result.returncode == 0 and "off 0" in result.stdout, result.stdout + result.stderr
        result = cli("verify", "--start-date", START, "--destination", "filesystem", "--repair", env=env, cwd=tmp_path)
        assert result.returncode == 2 and "cannot merge" in result.stderr, result.stderr
        result = cli("verify", "--start-date", START, "--destination", "filesystem", "--counter-reading", "OpenCount=x",
                     env=env, cwd=tmp_path)
        assert result.returncode == 2 and "counter_reading" in result.stderr, result.stderr


def test_a_list_shard_verifies_its_own_lists_only(tmp_path: Path) -> None:
    with Simulator(scale="tiny") as sim:
        env = cli_env(sim.url)
        for lists in ("310000", "310032,310050"):
            assert cli(*RUN, "--lists", lists, env=env, cwd=tmp_path).returncode == 0
        code, report, text = verify_json("--lists", "310000", env=env, cwd=tmp_path)
        assert code == 0 and report["counts"]["off"] == report["counts"]["behind"] == 0, text
        mine = {m["MsgID"] for m in sim.account.ground_truth("messages", EPOCH, list_ids=frozenset({310000}))}
        assert report["messages_checked"] == len(mine) > 0


def test_after_the_clock_moves_what_changed_is_behind_and_the_next_run_catches_up(tmp_path: Path) -> None:
    with Simulator(scale="tiny", profile="pessimistic") as sim:
        env = cli_env(sim.url, LISTRAK_SOURCE_TIMEZONE=ZONES["pessimistic"])
        assert cli(*RUN, env=env, cwd=tmp_path).returncode == 0
        lists_before = len(sim.account.ground_truth("lists", EPOCH))
        sim.advance(5)  # new events, deleted messages, and the pessimistic profile withdraws a list
        assert len(sim.account.ground_truth("lists", EPOCH)) < lists_before
        code, report, text = verify_json(env=env, cwd=tmp_path)
        assert code == 0 and report["counts"]["off"] == 0, text
        reasons = {entry["reason"] for entry in report["behind"]}
        assert "vanished: the next run removes its rows" in reasons and "new to the plan" in reasons, reasons
        assert cli(*RUN, env=env, cwd=tmp_path).returncode == 0
        code, report, text = verify_json(env=env, cwd=tmp_path)
        assert code == 0 and report["counts"]["off"] == 0, text
        assert not [e for e in report["behind"] if e["reason"].startswith(("vanished", "new to the plan"))], text
