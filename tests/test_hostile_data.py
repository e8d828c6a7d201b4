"""Hostile data: the simulator behind a proxy that rewrites its answers, and the CLI and the tap
run through it as users run them.

Pages that never end, characters XML forbids, pages that overlap, values that cannot be read.
Each case checks what is left in the destination against the simulator's ground truth.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
import requests
from destination import assert_matches_truth, read_duckdb
from helpers import RUN, cli, cli_env
from lxml import etree
from rewriting_proxy import RewritingProxy, operation_of, page_of, with_page
from tap_helpers import config_for, parse_messages, records_of, run_tap, write_json

from listrak_sync.errors import EXIT_ERROR, EXIT_INCOMPLETE, EXIT_OK
from listrak_sync.simulator import Simulator, User
from listrak_sync.simulator.data import EPOCH
from listrak_sync.simulator.render import stream_writer
from listrak_sync.streams import STREAM_NAMES, get_stream

OPENS = "ReportRangeMessageContactOpen"
MESSAGES = "ReportListMessageActivity"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(scale="tiny", page_size=7) as simulator:
        yield simulator


def env_for(endpoint: str, tmp_path: Path) -> dict[str, str]:
    return cli_env(endpoint, DLT_DATA_DIR=str(tmp_path / "dlt"), RUNTIME__LOG_LEVEL="WARNING",
                   LISTRAK_BACKOFF_BASE="0.01", LISTRAK_BACKOFF_MAX="0.05")


def truth(sim: Simulator, table: str) -> list[dict]:
    return sim.account.ground_truth(table, EPOCH)


def assert_tables_equal_truth(db: str, sim: Simulator, tables: tuple[str, ...] = STREAM_NAMES) -> None:
    for table in tables:
        assert_matches_truth(table, read_duckdb(db, "listrak", table), truth(sim, table))


def every_page_is_page_one(operation: str):  # type: ignore[no-untyped-def]
    def rewrite(request: bytes) -> bytes:
        return with_page(request, 1) if operation_of(request) == operation else request
    return rewrite


def test_pages_that_repeat_forever_end_the_message_s_stream_and_the_run_goes_on(sim: Simulator,
                                                                                  tmp_path: Path) -> None:
    db = str(tmp_path / "out.duckdb")
    with RewritingProxy(sim.url, on_request=every_page_is_page_one(OPENS)) as proxy:
        started = time.monotonic()
        result = cli(*RUN, "--duckdb", db, env=env_for(proxy.url, tmp_path), timeout=120)
        took = time.monotonic() - started
    assert result.returncode == EXIT_INCOMPLETE, result.stderr
    assert took < 120
    assert "never end" in result.stdout and "Traceback" not in result.stderr
    assert_tables_equal_truth(db, sim, tuple(t for t in STREAM_NAMES if t != "message_opens"))
    # Each message's opens stop after its first page (7 rows); nothing is repeated.
    opens = read_duckdb(db, "listrak", "message_opens")
    assert len(opens) <= len(truth(sim, "message_opens"))
    keys = [tuple(sorted(row.items())) for row in opens]
    assert len(keys) == len(set(keys))
    # The plan did not move for the cut messages: the next run, straight to the service, heals them.
    healed = cli(*RUN, "--duckdb", db, env=env_for(sim.url, tmp_path))
    assert healed.returncode == EXIT_OK, healed.stderr
    assert_tables_equal_truth(db, sim)


def test_the_tap_ends_on_pages_that_repeat_forever_within_twice_the_true_records(sim: Simulator,
                                                                                 tmp_path: Path) -> None:
    with RewritingProxy(sim.url, on_request=every_page_is_page_one(OPENS)) as proxy:
        config = write_json(tmp_path / "config.json", {**config_for(sim), "endpoint": proxy.url,
                                                       "start_date": EPOCH.strftime("%Y-%m-%d")})
        result = run_tap("--config", config, timeout=120)
    assert result.returncode == EXIT_INCOMPLETE, result.stderr[-2000:]
    messages = parse_messages(result.stdout)
    records = records_of(messages)
    assert 0 < len(records["message_opens"]) <= 2 * len(truth(sim, "message_opens"))
    assert any(m["type"] == "STATE" for m in messages)


def test_characters_xml_forbids_are_replaced_and_the_run_completes(sim: Simulator, tmp_path: Path) -> None:
    messages = truth(sim, "messages")
    subjects = [m["Subject"] for m in messages]
    subject = next(s for s in subjects if subjects.count(s) == 1)
    plain = f"<Subject>{escape(subject)}</Subject>".encode()
    poisoned = f"<Subject>{escape(subject)}&#1;&#x1b;</Subject>".encode()

    def poison(request: bytes, answer: bytes) -> bytes:
        return answer.replace(plain, poisoned) if operation_of(request) == MESSAGES else answer

    db = str(tmp_path / "out.duckdb")
    with RewritingProxy(sim.url, on_answer=poison) as proxy:
        started = time.monotonic()
        result = cli(*RUN, "--duckdb", db, env=env_for(proxy.url, tmp_path), timeout=60)
        took = time.monotonic() - started
    assert result.returncode == EXIT_OK, result.stderr
    assert took < 60
    msg_id = next(m["MsgID"] for m in messages if m["Subject"] == subject)
    warning = [line for line in result.stderr.splitlines() if "U+FFFD" in line]
    assert warning and "Subject" in warning[0] and str(msg_id) in warning[0], result.stderr
    expected = [{**m, "Subject": subject + "\ufffd\ufffd"} if m["Subject"] == subject else m for m in messages]
    assert_matches_truth("messages", read_duckdb(db, "listrak", "messages"), expected)
    assert_tables_equal_truth(db, sim, tuple(t for t in STREAM_NAMES if t != "messages"))


def test_pages_that_overlap_load_every_row_once(tmp_path: Path) -> None:
    def shift(request: bytes) -> bytes:
        page = page_of(request)
        return with_page(request, page - 1) if page and page > 1 else request

    with Simulator(scale="tiny", page_size=3) as sim, RewritingProxy(sim.url, on_request=shift) as proxy:
        db = str(tmp_path / "out.duckdb")
        result = cli(*RUN, "--duckdb", db, env=env_for(proxy.url, tmp_path))
        assert result.returncode == EXIT_OK, result.stderr
        assert_tables_equal_truth(db, sim)


@pytest.mark.parametrize(("counter", "needle"), [
    ("<OpenCount>9223372036854775808</OpenCount>", "beyond a 64-bit"),
    ("<OpenCount />", "an empty OpenCount"),
])
def test_a_value_that_cannot_be_read_is_one_line_naming_it_and_is_not_retried(
        sim: Simulator, tmp_path: Path, counter: str, needle: str) -> None:
    served: list[int] = []

    def spoil(request: bytes, answer: bytes) -> bytes:
        if operation_of(request) != MESSAGES or not served and b"<OpenCount>" not in answer:
            return answer
        if served and served[0] != hash(request):
            return answer
        served.append(hash(request))
        return re.sub(rb"<OpenCount>\d+</OpenCount>", counter.encode(), answer, count=1)

    db = str(tmp_path / "out.duckdb")
    with RewritingProxy(sim.url, on_answer=spoil) as proxy:
        result = cli(*RUN, "--duckdb", db, env=env_for(proxy.url, tmp_path), timeout=60)
    assert result.returncode == EXIT_ERROR
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert needle in lines[0] and MESSAGES in lines[0] and "list " in lines[0].lower(), lines[0]
    assert len(served) == 1  # the spoiled answer was asked for once: never retried


def test_rows_repeated_across_pages_and_lists_load_once(tmp_path: Path) -> None:
    """Page N starts with the last two rows of page N-1 (data shifted while it was paged), and the
    first list's first message is listed under every list."""
    with Simulator(scale="tiny", page_size=5) as sim:
        upstream = requests.Session()
        first = truth(sim, "messages")[0]

        def shift_and_share(request: bytes, answer: bytes) -> bytes:
            page = page_of(request)
            if operation_of(request) == "ReportRangeSubscribedContacts" and page and page > 1:
                before = upstream.post(sim.url, data=with_page(request, page - 1),
                                       headers={"Content-Type": "text/xml; charset=utf-8",
                                                "SOAPAction": '"http://webservices.listrak.com/v31/'
                                                              'ReportRangeSubscribedContacts"'}).content
                return prepend_items(answer, items(before)[-2:])
            if operation_of(request) == MESSAGES and f"<ListID>{first['ListID']}<".encode() not in request:
                return prepend_items(answer, [message_item(first)])
            return answer

        with RewritingProxy(sim.url, on_answer=shift_and_share) as proxy:
            db = str(tmp_path / "out.duckdb")
            result = cli(*RUN, "--duckdb", db, "--json", env=env_for(proxy.url, tmp_path))
        upstream.close()
        assert result.returncode == EXIT_OK, result.stderr
        repeated = json.loads(result.stdout)["repeated_rows"]
        assert repeated["subscribed_contacts"] > 0 and repeated["messages"] > 0
        assert_matches_truth("subscribed_contacts", read_duckdb(db, "listrak", "subscribed_contacts"),
                             truth(sim, "subscribed_contacts"))
        loaded = read_duckdb(db, "listrak", "messages")
        assert sorted(m["msg_id"] for m in loaded) == sorted(m["MsgID"] for m in truth(sim, "messages"))


def items(answer: bytes) -> list[etree._Element]:
    result = next(etree.fromstring(answer).iter("{*}ReportRangeSubscribedContactsResult"), None)
    return [] if result is None else list(result)


def prepend_items(answer: bytes, extra: list[etree._Element]) -> bytes:
    root = etree.fromstring(answer)
    result = next(el for el in root.iter() if isinstance(el.tag, str) and el.tag.endswith("Result"))
    for position, item in enumerate(extra):
        result.insert(position, copy.deepcopy(item))
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def message_item(row: dict) -> etree._Element:
    """A WSMessageActivity element holding ``row``, as the simulator writes one."""
    return etree.fromstring(stream_writer(get_stream("messages")).item(row))


def test_an_empty_page_in_the_middle_names_the_short_messages_and_the_next_run_reads_them_again(
        sim: Simulator, tmp_path: Path) -> None:
    def hole_at_page_two(request: bytes) -> bytes:
        return with_page(request, 9999) if operation_of(request) == OPENS and page_of(request) == 2 else request

    counted = {m["MsgID"]: m["OpenCount"] for m in truth(sim, "messages")}
    opened: dict[int, int] = {}
    for row in truth(sim, "message_opens"):
        opened[row["MsgID"]] = opened.get(row["MsgID"], 0) + 1
    cut = {msg: n for msg, n in opened.items() if n > 7}  # more than one page of 7
    assert cut, "no message has a second page of opens: the case tests nothing"
    db = str(tmp_path / "out.duckdb")
    with RewritingProxy(sim.url, on_request=hole_at_page_two) as proxy:
        result = cli(*RUN, "--duckdb", db, "--json", env=env_for(proxy.url, tmp_path))
        assert result.returncode == EXIT_OK, result.stderr
        asked_twice = proxy.requests[OPENS]
    short = {s["msg_id"]: s for s in json.loads(result.stdout)["short"] if s["stream"] == "message_opens"}
    assert set(short) == set(cut)
    assert all(s["fetched"] == 7 and s["counted"] == counted[msg] for msg, s in short.items())
    # page 1 of each message, page 2 of each full page 1, once more for each cut one
    assert asked_twice == len(counted) + sum(n >= 7 for n in opened.values()) + len(cut)
    assert_tables_equal_truth(db, sim, tuple(t for t in STREAM_NAMES if t != "message_opens"))

    healed = cli(*RUN, "--duckdb", db, "--json", env=env_for(sim.url, tmp_path))
    assert healed.returncode == EXIT_OK, healed.stderr
    assert json.loads(healed.stdout)["short"] == []
    assert_tables_equal_truth(db, sim)


@pytest.mark.parametrize("second", [["--full-refresh"], []], ids=["full-refresh", "incremental"])
def test_a_refused_list_keeps_its_rows(tmp_path: Path, second: list[str]) -> None:
    with Simulator(scale="tiny") as probe:
        list_ids = probe.account.list_ids()
    refused = list_ids[0]
    users = [User("all", "all-pw"), User("partial", "partial-pw", refused_list_ids=frozenset({refused}))]
    with Simulator(scale="tiny", page_size=7, users=users) as sim:
        db = str(tmp_path / "out.duckdb")
        first = cli(*RUN, "--duckdb", db, env={**env_for(sim.url, tmp_path), "LISTRAK_USERNAME": "all",
                                               "LISTRAK_PASSWORD": "all-pw"})
        assert first.returncode == EXIT_OK, first.stderr
        before = {t: read_duckdb(db, "listrak", t) for t in STREAM_NAMES}
        partial = {**env_for(sim.url, tmp_path), "LISTRAK_USERNAME": "partial", "LISTRAK_PASSWORD": "partial-pw"}
        result = cli(*RUN, *second, "--duckdb", db, "--json", env=partial)
        assert result.returncode == EXIT_OK, result.stderr
        assert any(str(refused) in line for line in json.loads(result.stdout)["skipped"])
        assert_tables_equal_truth(db, sim)  # the refused list's rows are all still there, once each
        for table in STREAM_NAMES:
            assert len(read_duckdb(db, "listrak", table)) == len(before[table])
