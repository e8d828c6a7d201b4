"""tap-listrak syncs against the simulator over HTTP: what a Singer target receives, row for row.

Every test runs the tap as a subprocess, as Meltano or Stitch would, and checks its stdout as
the message stream a target reads, against the simulator's ground truth.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import zeep
from helpers import START, clean_env
from tap_helpers import (
    RFC3339_UTC,
    TAP,
    TAP_LISTRAK_KEYS,
    TEXT_DATES,
    assert_records_cover,
    assert_records_match,
    config_for,
    parse_messages,
    parse_rfc3339,
    parse_sent_date,
    record_row,
    recorded,
    records_of,
    run_tap,
    singer_target,
    states_of,
    truth_row,
    write_json,
)

from listrak_sync.engine.state import BOOKMARK_FIELDS
from listrak_sync.simulator import DEFAULT_PASSWORD, DEFAULT_USERNAME, Profile, Simulator, User
from listrak_sync.simulator.data import EPOCH
from listrak_sync.simulator.render import format_datetime
from listrak_sync.singer.catalog import discover
from listrak_sync.streams import STREAM_NAMES, STREAMS_BY_NAME
from listrak_sync.time import EDGE

RANGE_STREAMS = ("message_bounces", "message_clicks", "message_opens", "message_reads", "message_unsubs")
LOOKBACK = timedelta(hours=48)  # lookback_hours' default


def discovered_catalog() -> dict[str, Any]:
    """What ``--discover`` prints (test_tap_cli checks the command itself)."""
    return discover()


def sync(tmp_path: Path, sim: Simulator, *args: str, **config: Any) -> list[dict[str, Any]]:
    """One tap run whose clock reads the simulator's (virtual) now, as a live service's would."""
    config_file = write_json(tmp_path / "config.json", config_for(sim, **config))
    result = run_tap("--config", config_file, *args, now=sim.now)
    assert result.returncode == 0, result.stderr
    assert "CRITICAL" not in result.stderr
    return parse_messages(result.stdout)


def send_dates(sim: Simulator) -> dict[int, datetime]:
    return {row["MsgID"]: row["SendDate"] for row in sim.account.ground_truth("messages", EPOCH)}


def assert_checkpoints_follow_records(
    messages: list[dict[str, Any]], expected: dict[str, list[dict[str, Any]]], since_epoch: int = 0
) -> int:
    """At every STATE, each (stream, message) its plan records as fetched has all its expected rows out.

    Returns:
        How many STATEs the run wrote while activity was still being emitted (mid-run checkpoints).
    """
    emitted: dict[str, Counter[tuple[Any, ...]]] = {t: Counter() for t in STREAM_NAMES}
    states = []
    for position, message in enumerate(messages):
        if message["type"] == "RECORD":
            stream = STREAMS_BY_NAME[message["stream"]]
            emitted[stream.name][record_row(stream, message["record"])] += 1
        elif message["type"] == "STATE":
            states.append(position)
            for table, done in recorded(message["value"], since_epoch).items():
                stream = STREAMS_BY_NAME[table]
                want = Counter(truth_row(stream, row) for row in expected.get(table, []) if row["MsgID"] in done)
                assert not want - emitted[table], f"STATE claims {table} rows that were not emitted yet"
    activity = [i for i, m in enumerate(messages)
                if m["type"] == "RECORD" and STREAMS_BY_NAME[m["stream"]].parent == "messages"]
    return sum(1 for i in states if activity and i < activity[-1])


def test_tap_piped_into_a_singer_target_writes_every_table_as_ground_truth(tmp_path: Path) -> None:
    target = singer_target()
    out_dir = tmp_path / "target-out"
    with Simulator(scale="tiny", page_size=7) as sim:
        config = write_json(tmp_path / "config.json",
                            config_for(sim, start_date=START, concurrency=4))
        catalog = write_json(tmp_path / "catalog.json", discovered_catalog())
        target_config = write_json(tmp_path / "target.json",
                                   {"destination_path": str(out_dir), "do_timestamp_file": False})
        with (tmp_path / "tap.log").open("w") as tap_log:
            tap = subprocess.Popen([*TAP, "--config", config, "--catalog", catalog],
                                   stdout=subprocess.PIPE, stderr=tap_log, stdin=subprocess.DEVNULL, env=clean_env())
            assert tap.stdout is not None
            loaded = subprocess.run([str(target), "--config", target_config], stdin=tap.stdout,
                                    capture_output=True, text=True, timeout=300)
            tap.stdout.close()
            assert tap.wait(timeout=60) == 0, (tmp_path / "tap.log").read_text()
        assert loaded.returncode == 0, loaded.stderr
        for table in STREAM_NAMES:
            lines = (out_dir / f"{table}.jsonl").read_text().splitlines()
            assert_records_match(table, [json.loads(line) for line in lines], sim.account.ground_truth(table, EPOCH))
        # The target hands back the tap's last STATE: every bookmark, in tap-listrak's shape.
        final = json.loads(loaded.stdout.strip().splitlines()[-1])
        bookmarks = final["bookmarks"]
        assert set(bookmarks) == set(BOOKMARK_FIELDS)
        for stream, date_field in BOOKMARK_FIELDS.items():
            assert set(bookmarks[stream]) == {date_field}, bookmarks[stream]
        assert parse_rfc3339(bookmarks["message_sends"]["SendDate"]) == max(send_dates(sim).values())
        assert parse_rfc3339(bookmarks["message_clicks"]["ClickDate"]) >= sim.account.now


def test_output_is_well_formed_and_no_checkpoint_runs_ahead_of_its_records(tmp_path: Path) -> None:
    # Jittered latency makes the concurrent workers finish out of order.
    with Simulator(scale="tiny", page_size=4, latency_ms=1, jitter_ms=6, fault_seed=3) as sim:
        messages = sync(tmp_path, sim, concurrency=3)
        truth = {t: sim.account.ground_truth(t, EPOCH) for t in STREAM_NAMES}
        list_ids = sorted(row["ListID"] for row in truth["lists"])
    for table, records in records_of(messages).items():
        assert_records_match(table, records, truth[table])
        stream = STREAMS_BY_NAME[table]
        for record in records:
            for column in stream.table_columns:
                value = record.get(column.name)
                if column.type.value == "timestamp" and value is not None:
                    parse_sent_date(value) if TEXT_DATES.get(table) == column.name else parse_rfc3339(value)
    checkpoints = assert_checkpoints_follow_records(messages, truth)
    assert checkpoints >= 3, "expected checkpoints while the streams ran"
    assert list_ids  # the subscribed_contacts checkpoints walked real lists


def zeep_event_dates(sim: Simulator, table: str) -> Counter[tuple[int, str, str]]:
    """(MsgID, EmailAddress, date) of every row, as tap-listrak 1.3.1 read them: zeep, pages until empty."""
    stream = STREAMS_BY_NAME[table]
    service = getattr(zeep.Client(sim.wsdl_url).service, stream.operation)
    header = {"WSUser": {"UserName": DEFAULT_USERNAME, "Password": DEFAULT_PASSWORD}}
    rows: Counter[tuple[int, str, str]] = Counter()
    for msg_id in send_dates(sim):
        for page in range(1, 1000):
            items = service(MsgID=msg_id, StartDate=EPOCH, EndDate=datetime(2100, 1, 1), Page=page,
                            _soapheaders=header)
            if not items:
                break
            rows.update((msg_id, item["EmailAddress"], item[TEXT_DATES[table]]) for item in items)
    return rows


def test_event_dates_are_emitted_as_the_service_sent_them_unless_typed_event_dates(tmp_path: Path) -> None:
    with Simulator(scale="tiny", page_size=7) as sim:
        as_sent = sync(tmp_path, sim)
        typed = sync(tmp_path, sim, typed_event_dates=True)
        wire = {table: zeep_event_dates(sim, table) for table in TEXT_DATES}
        truth = {table: sim.account.ground_truth(table, EPOCH) for table in TEXT_DATES}
    for messages, typed_dates in ((as_sent, False), (typed, True)):
        schemas = {m["stream"]: m["schema"]["properties"] for m in messages if m["type"] == "SCHEMA"}
        records = records_of(messages)
        for table, field in TEXT_DATES.items():
            assert_records_match(table, records[table], truth[table])
            emitted = Counter((r["MsgID"], r["EmailAddress"], r[field]) for r in records[table])
            if typed_dates:
                assert schemas[table][field] == {"type": ["null", "string"], "format": "date-time",
                                                 "description": schemas[table][field]["description"]}
                assert all(parse_rfc3339(date) for _, _, date in emitted)
                continue
            # Character for character what zeep (and so tap-listrak) got, and what the simulator wrote.
            assert "format" not in schemas[table][field] and schemas[table][field]["type"] == ["null", "string"]
            assert emitted == wire[table], table
            assert emitted == Counter((r["MsgID"], r["EmailAddress"], format_datetime(r[field])) for r in truth[table])
        # Only those four: every other date is RFC 3339 UTC in both modes.
        assert all(RFC3339_UTC.match(r["SendDate"]) for r in records["messages"])
        assert all(RFC3339_UTC.match(r["RemovalDate"]) for r in records["message_unsubs"])
    fractions = [r[f] for t, f in TEXT_DATES.items() for r in records_of(as_sent)[t] if "." in r[f]]
    assert fractions and all(len(text.rpartition(".")[2]) <= 3 for text in fractions)  # as sent, not padded


def test_us_format_event_dates_pass_through_verbatim_and_parse_when_typed(tmp_path: Path) -> None:
    # The format of the string-typed dates is undocumented; the simulator can write .NET's en-US one.
    with Simulator(scale="tiny", page_size=7, profile=Profile.friendly().replace(event_date_format="us")) as sim:
        as_sent = records_of(sync(tmp_path, sim))
        typed = records_of(sync(tmp_path, sim, typed_event_dates=True))
        wire = {table: zeep_event_dates(sim, table) for table in TEXT_DATES}
        truth = {table: sim.account.ground_truth(table, EPOCH) for table in TEXT_DATES}
    for table, field in TEXT_DATES.items():
        emitted = Counter((r["MsgID"], r["EmailAddress"], r[field]) for r in as_sent[table])
        assert emitted == wire[table], table
        assert all(re.fullmatch(r"\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2}:\d{2} [AP]M", date) for _, _, date in emitted)
        assert_records_match(table, typed[table], truth[table])


def test_schema_messages_carry_tap_listrak_s_keys_and_nullable_properties(tmp_path: Path) -> None:
    with Simulator(scale="tiny", page_size=7) as sim:
        messages = sync(tmp_path, sim)
    schemas = {m["stream"]: m for m in messages if m["type"] == "SCHEMA"}
    assert {name: m["key_properties"] for name, m in schemas.items()} == TAP_LISTRAK_KEYS
    for message in schemas.values():
        for prop in message["schema"]["properties"].values():
            assert "null" in prop["type"]
    records = records_of(messages)["subscribed_contacts"]
    assert len({(r["ListID"], r["ContactID"]) for r in records}) == len(records)


def _select(
    catalog: dict[str, Any], streams: set[str], drop_field: tuple[str, str] | None, legacy: bool
) -> dict[str, Any]:
    """Select ``streams`` (and deselect one field), as Meltano writes a catalog or as a legacy file."""
    for entry in catalog["streams"]:
        chosen = entry["tap_stream_id"] in streams
        if legacy:  # an old --properties file: flags on the schema, no metadata
            entry.pop("metadata")
            entry["schema"]["selected"] = chosen
            if drop_field and entry["tap_stream_id"] == drop_field[0]:
                entry["schema"]["properties"][drop_field[1]]["selected"] = False
            continue
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = chosen
            elif drop_field and [entry["tap_stream_id"], *item["breadcrumb"]] == [drop_field[0], "properties",
                                                                                   drop_field[1]]:
                item["metadata"]["selected"] = False
    return catalog


def test_selection_is_honoured_from_catalog_and_properties_with_lists_and_messages_deselected(tmp_path: Path) -> None:
    with Simulator(scale="tiny", page_size=7) as sim:
        for flag in ("--catalog", "--properties"):
            catalog = _select(discovered_catalog(), {"message_clicks", "subscribed_contacts"},
                              ("message_clicks", "LinkDescription"), legacy=flag == "--properties")
            messages = sync(tmp_path, sim, flag, write_json(tmp_path / "catalog.json", catalog))
            schemas = {m["stream"]: m for m in messages if m["type"] == "SCHEMA"}
            assert set(schemas) == {"message_clicks", "subscribed_contacts"}, flag
            assert "LinkDescription" not in schemas["message_clicks"]["schema"]["properties"]
            assert schemas["message_clicks"]["key_properties"] == ["MsgID", "EmailAddress"]
            assert schemas["subscribed_contacts"]["key_properties"] == ["ListID", "ContactID"]
            records = records_of(messages)
            assert set(records) == {"message_clicks", "subscribed_contacts"}, flag
            assert all("LinkDescription" not in r and "MsgID" in r for r in records["message_clicks"])
            clicks_truth = [{**r, "LinkDescription": None} for r in sim.account.ground_truth("message_clicks", EPOCH)]
            assert_records_match("message_clicks", records["message_clicks"], clicks_truth)
            assert_records_match("subscribed_contacts", records["subscribed_contacts"],
                                 sim.account.ground_truth("subscribed_contacts", EPOCH))
            assert set(states_of(messages)[-1]["bookmarks"]) == {"message_clicks", "subscribed_contacts"}


def test_a_tap_listrak_state_file_is_continued_from(tmp_path: Path) -> None:
    since = datetime(2025, 6, 1)
    overlap = since - LOOKBACK - EDGE  # ranges start lookback_hours early, widened a second
    pendulum_style = "2025-06-01T00:00:00+00:00"  # what tap-listrak's pendulum wrote
    state = {
        "bookmarks": {
            "message_clicks": {"ClickDate": pendulum_style},
            "message_opens": {"OpenDate": "2025-06-01T00:00:00Z"},
            "message_reads": {"ReadDate": pendulum_style},
            "message_unsubs": {"RemovalDate": pendulum_style},
            "message_bounces": {"BounceDate": pendulum_style},
            "message_sends": {"SendDate": "2025-06-01T00:00:00.000000Z"},
            "subscribed_contacts": {"AdditionDate": pendulum_style},
        },
        "currently_syncing": None,
    }
    with Simulator(scale="tiny", page_size=7) as sim:
        messages = sync(tmp_path, sim, "--state", write_json(tmp_path / "state.json", state),
                        start_date="2024-01-01T00:00:00Z")
        truth = {t: sim.account.ground_truth(t, EPOCH) for t in STREAM_NAMES}
        sent = send_dates(sim)
    records = records_of(messages)
    assert_records_match("lists", records["lists"], truth["lists"])
    assert_records_match("messages", records["messages"], truth["messages"])  # always in full
    for table in RANGE_STREAMS:
        cursor = STREAMS_BY_NAME[table].cursor
        expected = [row for row in truth[table] if row[cursor] >= since]
        assert len(expected) < len(truth[table]), f"the bookmark should cut {table}"
        # Every row since the bookmark; besides, only rows of the lookback before it.
        assert_records_cover(table, records.get(table, []), expected,
                             [row for row in truth[table] if row[cursor] >= overlap])
    assert_records_match("message_sends", records["message_sends"],
                         [row for row in truth["message_sends"] if sent[row["MsgID"]] >= since - LOOKBACK])
    # In full every run: a resubscribed contact keeps its first AdditionDate (docs/listrak-api.md §4.6).
    assert_records_match("subscribed_contacts", records["subscribed_contacts"], truth["subscribed_contacts"])
    final = states_of(messages)[-1]
    assert "currently_syncing" in final  # keys we do not use are kept: a strict superset
    for stream, date_field in BOOKMARK_FIELDS.items():
        assert parse_rfc3339(final["bookmarks"][stream][date_field]) > since


def test_a_run_continued_from_a_mid_run_checkpoint_loses_nothing(tmp_path: Path) -> None:
    with Simulator(scale="tiny", page_size=7) as sim:
        first = sync(tmp_path, sim, concurrency=2)
        activity = [i for i, m in enumerate(first)
                    if m["type"] == "RECORD" and STREAMS_BY_NAME[m["stream"]].parent == "messages"]
        cut = next(i for i, m in enumerate(first) if m["type"] == "STATE" and recorded(m["value"]).get("message_opens")
                   and i < activity[-1])
        checkpoint = first[cut]["value"]
        done = recorded(checkpoint)["message_opens"]
        second = sync(tmp_path, sim, "--state", write_json(tmp_path / "state.json", checkpoint), concurrency=2)
        truth = {t: sim.account.ground_truth(t, EPOCH) for t in STREAM_NAMES}
    before, after = records_of(first[:cut]), records_of(second)
    for table in (*RANGE_STREAMS, "message_sends"):
        stream = STREAMS_BY_NAME[table]
        got = Counter(record_row(stream, r) for r in before.get(table, []) + after.get(table, []))
        want = Counter(truth_row(stream, r) for r in truth[table])
        assert not want - got, f"{table}: rows lost across the interrupted run"
    # The second run asked the messages the checkpoint had done at most from their fetch - lookback.
    assert after.get("message_opens")
    assert any(r["MsgID"] not in done for r in after["message_opens"])
    for r in after["message_opens"]:
        if r["MsgID"] in done:
            fetched = datetime.fromtimestamp(done[r["MsgID"]], timezone.utc)
            assert parse_sent_date(r["OpenDate"]) >= fetched - LOOKBACK - EDGE, r


def test_a_refused_list_is_skipped_and_the_rest_is_emitted(tmp_path: Path) -> None:
    with Simulator(scale="tiny") as probe:
        list_ids = probe.account.list_ids()
    refused = list_ids[0]
    user = User("partial", "partial-pw", refused_list_ids=frozenset({refused}))
    with Simulator(scale="tiny", page_size=7, users=[user]) as sim:
        config = write_json(tmp_path / "config.json", config_for(sim, username="partial", password="partial-pw"))
        result = run_tap("--config", config)
        allowed = [i for i in list_ids if i != refused]
        truth = {t: sim.account.ground_truth(t, EPOCH, list_ids=allowed) for t in ("messages", "message_opens")}
    assert result.returncode == 0, result.stderr
    assert "Skipped" in result.stderr and str(refused) in result.stderr
    records = records_of(parse_messages(result.stdout))
    for table, rows in truth.items():
        assert_records_match(table, records[table], rows)


def test_state_time_format_is_rfc3339_utc() -> None:
    from listrak_sync.engine.state import format_time, parse_time

    moment = datetime(2026, 6, 1, 12, 30, 5, 120000, tzinfo=timezone.utc)
    assert format_time(moment) == "2026-06-01T12:30:05.120000Z"
    for text in ("2026-06-01T12:30:05.12Z", "2026-06-01T14:30:05.120000+02:00", "2026-06-01T12:30:05.120000"):
        assert parse_time(text, where="test") == moment


def test_checkpoints_of_different_streams_are_each_continued_from(tmp_path: Path) -> None:
    # opens and clicks were both done through one message, but up to different times: each
    # stream asks the done messages only for what is newer than its own `until`.
    with Simulator(scale="tiny", page_size=7) as sim:
        sent = send_dates(sim)
        order = sorted((date, msg_id) for msg_id, date in sent.items())
        through_date, through_id = order[len(order) // 2]
        until = {"message_opens": datetime(2024, 9, 1), "message_clicks": datetime(2026, 3, 1)}
        state = {"bookmarks": {
            table: {"progress": {"until": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                 "SendDate": through_date.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "MsgID": through_id}}
            for table, moment in until.items()
        }}
        catalog = _select(discover(), set(until), None, legacy=False)
        messages = sync(tmp_path, sim, "--state", write_json(tmp_path / "state.json", state),
                        "--catalog", write_json(tmp_path / "catalog.json", catalog), concurrency=2)
        truth = {t: sim.account.ground_truth(t, EPOCH) for t in until}
    def since(moment: datetime) -> dict[str, list[dict[str, Any]]]:
        return {
            table: [row for row in truth[table]
                    if (sent[row["MsgID"]], row["MsgID"]) > (through_date, through_id)
                    or row[STREAMS_BY_NAME[table].cursor] >= moment]
            for table in until
        }

    expected = {table: since(moment)[table] for table, moment in until.items()}
    allowed = {table: since(moment - LOOKBACK - EDGE)[table] for table, moment in until.items()}
    records = records_of(messages)
    for table in until:
        assert 0 < len(expected[table]) < len(truth[table])
        assert_records_cover(table, records.get(table, []), expected[table], allowed[table])
    assert_checkpoints_follow_records(messages, expected)
    final = states_of(messages)[-1]["bookmarks"]
    assert set(final) == set(until) and all(set(entry) == {STREAMS_BY_NAME[t].cursor} for t, entry in final.items())


def test_a_rerun_asks_only_what_the_engine_plans_and_state_stays_small(tmp_path: Path) -> None:
    """The tap keeps the same counter plan as ``listrak-sync run`` (issue #17), packed in STATE.

    With nothing changed, a re-run asks far fewer activity requests than the first run (how many
    exactly is what ``listrak-sync run`` asks too: test_one_engine). The old per-message plan
    key of earlier versions is dropped, and STATE stays a few KB.
    """
    with Simulator(scale="tiny", page_size=7) as sim:
        plan = {"messages": {str(i): {"message_opens": 1} for i in range(500)}}
        legacy = {"bookmarks": {}, "listrak_sync_plan": plan}
        first = sync(tmp_path, sim, "--state", write_json(tmp_path / "legacy.json", legacy))
        states = states_of(first)
        assert "listrak_sync_plan" not in states[-1], "the old per-message plan is dropped"
        assert max(len(json.dumps(state)) for state in states) < 4096
        first_served = sim.stats()["requests"]
        sim.reset_stats()
        again = sync(tmp_path, sim, "--state", write_json(tmp_path / "state.json", states[-1]))
        served = sim.stats()["requests"]
    messages = len(send_dates(sim))
    for operation in ("ReportRangeMessageContactOpen", "ReportRangeMessageContactClick"):
        assert first_served[operation] >= messages
        assert served.get(operation, 0) < messages / 2, (operation, served)
    assert len(records_of(parse_messages_of(again)).get("message_opens", [])) < len(
        records_of(parse_messages_of(first))["message_opens"]) / 2
    assert max(len(json.dumps(state)) for state in states_of(again)) < 4096


def parse_messages_of(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return messages
