"""Paging against the simulator: exact rows under per-operation page sizes, and few requests.

The client ends paging at an empty page, or at a page shorter than the largest page of the
same operation seen so far (a lower bound of that operation's page size). These tests check
both halves of that rule: no row is lost whatever order objects are read in, each operation
learns its own bound (the pessimistic profile pages operations at different sizes and omits
the empty Result element), and read largest first the requests are the minimum plus one per
object that ties the largest page.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from helpers import settings_for

from listrak_sync.extract import ACTIVITY_STREAMS, Extractor
from listrak_sync.simulator import Profile, Simulator
from listrak_sync.simulator.data import EPOCH
from listrak_sync.soap.client import ListrakClient
from listrak_sync.streams import Stream, get_stream

SENDS = get_stream("message_sends")
CLICKS = get_stream("message_clicks")
OPENS = get_stream("message_opens")


@pytest.fixture(scope="module")
def pessimistic() -> Iterator[Simulator]:
    with Simulator(scale="tiny", page_size=6, profile=Profile.pessimistic()) as sim:
        yield sim


def counts(sim: Simulator, stream: Stream) -> dict[int, int]:
    """Ground-truth rows per message of ``stream`` (every message sent since EPOCH)."""
    per_message = Counter(row["MsgID"] for row in sim.account.ground_truth(stream.name, EPOCH))
    return {row["MsgID"]: per_message[row["MsgID"]] for row in sim.account.ground_truth("messages", EPOCH)}


def read(sim: Simulator, client: ListrakClient, stream: Stream, msg_id: int) -> tuple[int, int]:
    """Rows of one message's ``stream`` and the requests it took."""
    before = sim.stats()["requests_total"]
    params: dict[str, Any] = {"MsgID": msg_id}
    if stream is not SENDS:
        # Wide bounds (the pessimistic service excludes them and runs on Eastern time).
        params.update(StartDate=EPOCH - timedelta(days=2), EndDate=sim.account.service_now + timedelta(days=2))
    rows = sum(page.num_rows for page in client.iter_pages(stream, **params))
    return rows, sim.stats()["requests_total"] - before


@pytest.mark.parametrize("order", ["smallest first", "largest first"])
def test_every_row_under_per_operation_page_sizes(pessimistic: Simulator, order: str) -> None:
    # Sends page at 12, clicks at 3, the others at 6: a bound learnt on one operation must
    # never end another's paging.
    with ListrakClient(settings_for(pessimistic)) as client:
        for stream in ACTIVITY_STREAMS:
            expected = counts(pessimistic, stream)
            ids = sorted(expected, key=expected.__getitem__, reverse=order == "largest first")
            for msg_id in ids:
                assert read(pessimistic, client, stream, msg_id)[0] == expected[msg_id], (stream.name, msg_id)
        for stream in ACTIVITY_STREAMS:
            size = pessimistic.profile.page_size(stream.operation, pessimistic.page_size)
            largest = max(counts(pessimistic, stream).values())
            assert client.page_size_bound(stream.operation) == min(size, largest), stream.name


def test_a_page_as_long_as_the_largest_seen_is_not_trusted_to_be_the_last(pessimistic: Simulator) -> None:
    expected = counts(pessimistic, OPENS)
    msg_id = max(expected, key=expected.__getitem__)
    rows = expected[msg_id]
    assert rows > 2
    pessimistic.page_size = rows  # exactly one full page: only an empty page 2 can tell
    try:
        with ListrakClient(settings_for(pessimistic)) as client:
            assert read(pessimistic, client, OPENS, msg_id) == (rows, 2)
            assert read(pessimistic, client, OPENS, msg_id) == (rows, 2)  # equal to the bound: ask again
    finally:
        pessimistic.page_size = 6


def test_requests_largest_first_are_the_minimum_plus_ties() -> None:
    page_size = 5
    with Simulator(scale="tiny", page_size=page_size) as sim:
        for stream in (SENDS, CLICKS, OPENS):
            expected = counts(sim, stream)
            largest = max(expected.values())
            bound = min(page_size, largest)
            minimum = sum(max(1, math.ceil(rows / page_size)) for rows in expected.values())
            # An object ends with a page as long as the bound (a multiple of the page size, or
            # a tie with the largest object when that is under a page) only an empty page ends.
            ties = sum(1 for rows in expected.values() if rows and rows % page_size in (0, bound % page_size))
            with ListrakClient(settings_for(sim)) as client:
                spent = sum(read(sim, client, stream, m)[1]
                            for m in sorted(expected, key=expected.__getitem__, reverse=True))
            assert spent == minimum + ties, stream.name


def test_without_trusting_short_pages_every_object_ends_with_an_empty_page(pessimistic: Simulator) -> None:
    expected = counts(pessimistic, CLICKS)
    with ListrakClient(settings_for(pessimistic, trust_short_pages=False)) as client:
        for msg_id, rows in expected.items():
            size = pessimistic.profile.page_size(CLICKS.operation, pessimistic.page_size)
            assert read(pessimistic, client, CLICKS, msg_id) == (rows, math.ceil(rows / size) + 1)


def test_the_extractor_reads_each_stream_largest_first() -> None:
    # One worker, so the order the tasks start in is the order the service sees; friendly
    # counters count every event, so the hint is exact and only ties cost an extra page.
    page_size = 1000  # no message has a full page: the bound is the largest message
    with Simulator(scale="tiny", page_size=page_size) as sim:
        extractor = Extractor(ListrakClient(settings_for(sim, concurrency=1)), settings_for(sim, concurrency=1))
        msg_ids = [m for lst in extractor.lists().column("ListID").to_pylist()
                   for m in extractor.messages(lst).column("MsgID").to_pylist()]
        for stream in (CLICKS, OPENS):
            expected = counts(sim, stream)
            largest = max(expected.values())
            before = sim.stats()["requests_total"]
            rows = sum(t.num_rows for _, t in extractor.message_activity([stream], msg_ids))
            assert rows == sum(expected.values())
            ties = sum(1 for m in msg_ids if expected[m] == largest)
            assert sim.stats()["requests_total"] - before == len(msg_ids) + ties, stream.name
