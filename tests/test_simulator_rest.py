"""The simulator's REST API read with plain HTTP equals its ground truth, and tells SOAP's story.

Every REST table is read by an independent reader (tests/rest_reader.py: requests, cursors,
small pages) and compared with ``Account.rest_ground_truth``; REST summaries and activity are
compared with the SOAP counters and event rows of the same account.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from datetime import datetime

import pytest
from rest_reader import CLIENT_ID, CLIENT_SECRET, Reader, sort_rows

from listrak_sync.simulator import Simulator
from listrak_sync.streams import REST_TABLE_NAMES, get_stream

START = datetime(2024, 1, 1)


@pytest.fixture(scope="module")
def rest_sim() -> Iterator[Simulator]:
    with Simulator(scale="tiny", client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as sim:
        yield sim


@pytest.fixture(scope="module")
def reader(rest_sim: Simulator) -> Reader:
    return Reader(rest_sim.rest_url, rest_sim.token_url)


@pytest.mark.parametrize("table", REST_TABLE_NAMES)
def test_every_rest_table_read_over_http_equals_the_ground_truth(rest_sim: Simulator, reader: Reader,
                                                                 table: str) -> None:
    stream = get_stream(table)
    truth = rest_sim.account.rest_ground_truth(table, START)
    assert truth, f"{table} is empty at tiny"
    assert all(list(row) == [c.name for c in stream.table_columns] for row in truth)
    read = reader.rows(stream, "2024-01-01")
    assert sort_rows(read) == sort_rows(truth)
    keys = [tuple(row[k] for k in stream.key) for row in truth]
    assert len(set(keys)) == len(keys), f"{table}: the key collapses rows"


def test_paging_crosses_several_pages(rest_sim: Simulator, reader: Reader) -> None:
    before = reader.requests
    rows = reader.rows(get_stream("message_activity"), "2024-01-01")
    lists_and_messages = sum(1 for _ in reader.rows(get_stream("rest_messages"), "2024-01-01"))
    assert len(rows) > 3 * reader.count
    assert reader.requests - before > 2 * lists_and_messages  # many messages took more than one page


def test_a_start_date_bounds_messages_and_activity(rest_sim: Simulator, reader: Reader) -> None:
    start = datetime(2025, 6, 1)
    for table in ("message_activity", "message_summaries", "transactional_message_activity", "contacts"):
        truth = rest_sim.account.rest_ground_truth(table, start)
        assert 0 < len(truth) < len(rest_sim.account.rest_ground_truth(table, START))
        assert sort_rows(reader.rows(get_stream(table), "2025-06-01T00:00:00")) == sort_rows(truth)


def test_one_truth_with_soap(rest_sim: Simulator) -> None:
    account = rest_sim.account
    summaries = {row["messageId"]: row for row in account.rest_ground_truth("message_summaries", START)}
    activity = account.rest_ground_truth("message_activity", START)
    clickers = account.rest_ground_truth("message_link_clickers", START)
    soap_messages = account.ground_truth("messages", START)
    assert {m["MsgID"] for m in soap_messages} == set(summaries)
    for message in soap_messages:
        summary = summaries[message["MsgID"]]
        assert summary["listId"] == message["ListID"] and summary["subject"] == message["Subject"]
        assert summary["sendDate"] == message["SendDate"]
        assert (summary["openCount"], summary["readCount"], summary["clickCount"], summary["unsubscribeCount"],
                summary["conversionCount"], summary["revenue"]) == (
            message["OpenCount"], message["ReadCount"], message["ClickCount"], message["RemoveCount"],
            message["ConversionCount"], message["OrderTotal"])
        assert summary["sentCount"] - summary["bounceCount"] == message["DeliverCount"]
    sends = Counter((row["MsgID"], row["EmailAddress"]) for row in account.ground_truth("message_sends", START))
    assert Counter((row["messageId"], row["emailAddress"]) for row in activity) == sends
    for stream, flag in (("message_opens", "open"), ("message_reads", "read"), ("message_clicks", "click"),
                         ("message_bounces", "bounce"), ("message_unsubs", "unsubscribe")):
        soap = {(row["MsgID"], row["EmailAddress"]) for row in account.ground_truth(stream, START)}
        assert {(row["messageId"], row["emailAddress"]) for row in activity if row[flag]} == soap, stream
    clicks = Counter((row["MsgID"], row["EmailAddress"]) for row in account.ground_truth("message_clicks", START))
    assert Counter((row["messageId"], row["emailAddress"]) for row in clickers) == clicks
    assert {(r["messageId"], r["emailAddress"]): r["clickCount"] for r in activity if r["click"]} == dict(clicks)
    orders = Counter()
    for row in activity:
        orders[row["messageId"]] += round(row["orderTotal"] * 100)
    assert all(orders[m] == round(s["revenue"] * 100) for m, s in summaries.items())


def test_contacts_are_the_soap_subscriptions_and_the_unsubscribed(rest_sim: Simulator) -> None:
    account = rest_sim.account
    contacts = account.rest_ground_truth("contacts", START)
    subscribed = {(r["listId"], r["emailAddress"]) for r in contacts if r["subscriptionState"] == "Subscribed"}
    assert subscribed == {(r["ListID"], r["EmailAddress"]) for r in account.ground_truth("subscribed_contacts", START)}
    unsubscribed = {(r["listId"], r["emailAddress"]) for r in contacts if r["subscriptionState"] == "Unsubscribed"}
    unsubs = account.ground_truth("message_unsubs", START)
    list_of = {m["MsgID"]: m["ListID"] for m in account.ground_truth("messages", START)}
    assert unsubscribed and unsubscribed == {(list_of[u["MsgID"]], u["EmailAddress"]) for u in unsubs}
    assert all(r["universalEmailKey"] == hashlib.sha256(r["emailAddress"].strip().lower().encode()).hexdigest()
               for r in contacts)


def test_late_activity_arrives_as_the_clock_moves() -> None:
    with Simulator(scale="tiny", client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as sim:
        before = {t: sim.account.rest_ground_truth(t, START) for t in ("conversation_message_activity",
                                                                      "transactional_message_activity")}
        sim.advance(30)
        for table, rows in before.items():
            after = sim.account.rest_ground_truth(table, START)
            assert len(after) > len(rows) or after != rows, table
            reader = Reader(sim.rest_url, sim.token_url, count=50)
            assert sort_rows(reader.rows(get_stream(table), "2024-01-01")) == sort_rows(after)


@pytest.mark.parametrize("table", ["message_activity", "contacts", "message_link_clickers", "conversation_messages"])
def test_small_tables_equal_the_ground_truth(table: str) -> None:
    with Simulator(scale="small", client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as sim:
        reader = Reader(sim.rest_url, sim.token_url, count=5000)
        start = "2026-03-01" if table != "contacts" else "2024-01-01"
        truth = sim.account.rest_ground_truth(table, datetime.fromisoformat(start))
        assert len(truth) > 40
        assert sort_rows(reader.rows(get_stream(table), start)) == sort_rows(truth)
