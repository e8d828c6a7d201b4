"""Extraction against the simulator over real HTTP: every stream equals the ground truth, row for row.

Also: refused lists and messages are skipped and reported, faults and overload are survived
with exact results, and the concurrent activity fetch stays bounded and cleans up after itself.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from destination import normalize
from helpers import settings_for

from listrak_sync.errors import ConfigError, ServerFaultError
from listrak_sync.extract import ACTIVITY_STREAMS, Extractor, arrow_schema, date_windows
from listrak_sync.simulator import DEFAULT_PASSWORD, DEFAULT_USERNAME, Simulator, User
from listrak_sync.simulator.data import EPOCH
from listrak_sync.soap.client import ListrakClient
from listrak_sync.streams import STREAMS, Stream, get_stream

FILTERED_START = EPOCH + timedelta(days=45)  # later than the first data, so the start date really filters
# The shared settings from FILTERED_START, in windows of 120 days.
filtered_settings = functools.partial(settings_for, start_date=FILTERED_START, interval_days=120)


def virtual_now(sim: Simulator) -> Callable[[], datetime]:
    """The simulator's virtual clock as an injectable ``now`` (an aware instant)."""
    return lambda: sim.now.replace(tzinfo=timezone.utc)


def extract_all(extractor: Extractor) -> dict[str, pa.Table]:
    """A full run by hand: lists -> messages -> six activity streams; lists -> subscribed contacts."""
    lists = extractor.lists()
    list_ids = lists.column("ListID").to_pylist()
    messages = pa.concat_tables([extractor.messages(list_id) for list_id in list_ids])
    tables: dict[str, list[pa.Table]] = {"lists": [lists], "messages": [messages]}
    for stream, table in extractor.message_activity(ACTIVITY_STREAMS, messages.column("MsgID").to_pylist()):
        tables.setdefault(stream.name, []).append(table)
    for list_id in list_ids:
        tables.setdefault("subscribed_contacts", []).extend(extractor.subscribed_contacts(list_id))
    return {
        stream.name: pa.concat_tables(tables.get(stream.name) or [arrow_schema(stream).empty_table()])
        for stream in STREAMS
    }


def assert_equals_truth(stream: Stream, table: pa.Table, truth: list[dict[str, Any]]) -> None:
    assert table.schema == arrow_schema(stream)
    got = normalize(stream, table.to_pylist(), listrak_names=True)
    want = normalize(stream, truth, listrak_names=True)
    assert got == want, (
        f"{stream.name}: missing {list(want - got)[:2]}, unexpected {list(got - want)[:2]}"
    )


@pytest.fixture(scope="module")
def full_run() -> Iterator[tuple[Simulator, dict[str, pa.Table]]]:
    with Simulator(scale="tiny", page_size=7) as sim, ListrakClient(filtered_settings(sim)) as client:
        yield sim, extract_all(Extractor(client, client.settings, now=virtual_now(sim)))


@pytest.mark.parametrize("stream", STREAMS, ids=lambda s: s.name)
def test_every_stream_equals_ground_truth(full_run: tuple[Simulator, dict[str, pa.Table]], stream: Stream) -> None:
    sim, tables = full_run
    truth = sim.account.ground_truth(stream.name, FILTERED_START)
    assert truth, f"the tiny account should have {stream.name} rows"
    assert_equals_truth(stream, tables[stream.name], truth)


def test_two_clicks_by_one_contact_are_two_rows(full_run: tuple[Simulator, dict[str, pa.Table]]) -> None:
    sim, tables = full_run
    truth = Counter((r["MsgID"], r["EmailAddress"]) for r in sim.account.ground_truth("message_clicks", FILTERED_START))
    repeated = [pair for pair, count in truth.items() if count >= 2]
    assert repeated, "the tiny account should have a contact clicking twice"
    clicks = tables["message_clicks"]
    got = Counter(zip(clicks.column("MsgID").to_pylist(), clicks.column("EmailAddress").to_pylist(), strict=True))
    assert all(got[pair] == truth[pair] for pair in repeated)


def test_refused_list_and_messages_are_skipped_and_the_rest_loads(caplog: pytest.LogCaptureFixture) -> None:
    with Simulator(scale="tiny", page_size=7) as probe:
        all_ids = probe.account.list_ids()
    refused_id, allowed = all_ids[0], all_ids[1:]
    user = User(DEFAULT_USERNAME, DEFAULT_PASSWORD, refused_list_ids=frozenset({refused_id}))
    caplog.set_level(logging.WARNING)
    with Simulator(scale="tiny", page_size=7, users=[user]) as sim, ListrakClient(filtered_settings(sim)) as client:
        extractor = Extractor(client, client.settings, now=virtual_now(sim))
        tables = extract_all(extractor)
        assert [(e.kind, e.object_id) for e in extractor.skipped] == [("list", refused_id)]
        for stream in STREAMS:
            if stream.name != "lists":
                truth = sim.account.ground_truth(stream.name, FILTERED_START, allowed)
                assert_equals_truth(stream, tables[stream.name], truth)
        # The refused list's messages, asked for directly, are skipped one by one as well.
        refused_msgs = [r["MsgID"] for r in sim.account.ground_truth("messages", FILTERED_START, [refused_id])]
        allowed_msgs = tables["messages"].column("MsgID").to_pylist()[:3]
        opens = get_stream("message_opens")
        results = list(extractor.message_activity([opens], refused_msgs[:2] + allowed_msgs))
        got = pa.concat_tables([arrow_schema(opens).empty_table(), *(t for _, t in results)])
        truth = [r for r in sim.account.ground_truth("message_opens", FILTERED_START, allowed)
                 if r["MsgID"] in allowed_msgs]
        assert_equals_truth(opens, got, truth)
        assert {(e.kind, e.object_id) for e in extractor.skipped[1:]} == {("message", m) for m in refused_msgs[:2]}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"list {refused_id}" in w for w in warnings)
    assert any(f"message {refused_msgs[0]}" in w for w in warnings)


def test_list_ids_filter_and_unknown_ids(simulator: Simulator) -> None:
    ids = simulator.account.list_ids()
    with ListrakClient(filtered_settings(simulator, list_ids=[ids[1]])) as client:
        assert Extractor(client, client.settings).lists().column("ListID").to_pylist() == [ids[1]]
    with ListrakClient(filtered_settings(simulator, list_ids=[ids[0], 424242])) as client, \
            pytest.raises(ConfigError) as info:
        Extractor(client, client.settings).lists()
    assert "424242" in str(info.value) and all(str(i) in str(info.value) for i in ids)


@pytest.mark.parametrize("kind", ["server_fault", "unavailable", "drop", "truncated", "slow"])
def test_transient_faults_still_give_exact_results(kind: str) -> None:
    with Simulator(scale="tiny", page_size=7, fail_rate=0.1, fault_kinds=[kind], fault_seed=7,
                   slow_seconds=1.0) as sim:
        settings = filtered_settings(sim, max_retries=8, read_timeout=0.4, concurrency=4)
        with ListrakClient(settings) as client:
            tables = extract_all(Extractor(client, settings, now=virtual_now(sim)))
        assert sim.stats()["faults"][kind] > 0 and client.stats.as_dict()["retries"] > 0
        for stream in STREAMS:
            assert_equals_truth(stream, tables[stream.name], sim.account.ground_truth(stream.name, FILTERED_START))


def test_concurrency_ceiling_makes_the_client_back_off_and_finish() -> None:
    with Simulator(scale="tiny", page_size=7, max_concurrency=2, latency_ms=5) as sim:
        settings = filtered_settings(sim, concurrency=8, max_retries=10, backoff_max=0.05)
        with ListrakClient(settings, sleep=lambda seconds: threading.Event().wait(min(seconds, 0.05))) as client:
            tables = extract_all(Extractor(client, settings, now=virtual_now(sim)))
        assert sim.stats()["over_capacity"] > 0
        assert client.limiter.snapshot()["decreases"] >= 1 and client.limiter.snapshot()["lowest"] <= 4
        for stream in STREAMS:
            assert_equals_truth(stream, tables[stream.name], sim.account.ground_truth(stream.name, FILTERED_START))


def _activity_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("listrak-activity")]


def test_an_error_stops_the_other_tasks_and_reaches_the_caller(full_run: tuple[Simulator, Any]) -> None:
    sim, tables = full_run
    msg_ids = tables["messages"].column("MsgID").to_pylist()
    with Simulator(scale="tiny", page_size=7, fail_rate=0.3, fault_kinds=["server_fault"], fault_seed=3) as faulty, \
            ListrakClient(filtered_settings(faulty, max_retries=0, concurrency=4)) as client:
        extractor = Extractor(client, client.settings, now=virtual_now(faulty))
        with pytest.raises(ServerFaultError):
            for _ in extractor.message_activity(ACTIVITY_STREAMS, msg_ids):
                pass
    assert not _activity_threads()


def test_tasks_are_queued_in_a_bounded_window_and_closing_early_cleans_up(
    full_run: tuple[Simulator, dict[str, pa.Table]],
) -> None:
    sim, tables = full_run
    msg_ids = tables["messages"].column("MsgID").to_pylist()
    pulled = []

    def lazy_ids() -> Iterator[int]:
        for msg_id in msg_ids * 50:
            pulled.append(msg_id)
            yield msg_id

    with ListrakClient(filtered_settings(sim, concurrency=2)) as client:
        activity = Extractor(client, client.settings, now=virtual_now(sim)).message_activity(
            [get_stream("message_sends")], lazy_ids()  # type: ignore[arg-type]
        )
        next(activity)
        assert len(pulled) <= 2 * 2 + 1
        activity.close()
    assert not _activity_threads()


def test_short_date_windows_lose_and_double_nothing(full_run: tuple[Simulator, dict[str, pa.Table]]) -> None:
    sim, _ = full_run
    stream = get_stream("messages")
    with ListrakClient(filtered_settings(sim, interval_days=11)) as client:
        extractor = Extractor(client, client.settings, now=virtual_now(sim))
        table = pa.concat_tables([extractor.messages(list_id) for list_id in sim.account.list_ids()])
    assert_equals_truth(stream, table, sim.account.ground_truth("messages", FILTERED_START))


def test_date_windows_overlap_by_a_second() -> None:
    # With exclusive bounds, windows that only shared an instant would lose a message on it.
    start, end = datetime(2024, 1, 1), datetime(2024, 1, 10, 12)
    windows = date_windows(start, end, 4)
    second = timedelta(seconds=1)
    assert windows == [(start, datetime(2024, 1, 5)), (datetime(2024, 1, 5) - second, datetime(2024, 1, 9) - second),
                       (datetime(2024, 1, 9) - 2 * second, end)]
    assert date_windows(start, start, 365) == [(start, start)]
    assert date_windows(end, start, 365) == []


def test_later_start_gives_the_matching_subset(full_run: tuple[Simulator, dict[str, pa.Table]]) -> None:
    sim, _ = full_run
    later = sim.now - timedelta(days=200)
    list_id = sim.account.list_ids()[0]
    with ListrakClient(filtered_settings(sim)) as client:
        extractor = Extractor(client, client.settings, now=virtual_now(sim))
        messages = extractor.messages(list_id, start=later.replace(tzinfo=timezone.utc))
        contacts = list(extractor.subscribed_contacts(list_id, start=later.replace(tzinfo=timezone.utc)))
    assert_equals_truth(get_stream("messages"), messages, sim.account.ground_truth("messages", later, [list_id]))
    assert_equals_truth(get_stream("subscribed_contacts"), pa.concat_tables(contacts),
                        sim.account.ground_truth("subscribed_contacts", later, [list_id]))


def test_source_timezone_converts_wall_times_to_utc(full_run: tuple[Simulator, dict[str, pa.Table]]) -> None:
    sim, _ = full_run
    eastern = ZoneInfo("America/New_York")
    with ListrakClient(filtered_settings(sim, source_timezone="America/New_York")) as client:
        extractor = Extractor(client, client.settings, now=lambda: sim.now.replace(tzinfo=eastern))
        table = pa.concat_tables([extractor.messages(list_id) for list_id in sim.account.list_ids()])
    got = dict(zip(table.column("MsgID").to_pylist(), table.column("SendDate").to_pylist(), strict=True))
    truth = {r["MsgID"]: r["SendDate"] for r in sim.account.ground_truth("messages", FILTERED_START)}
    assert got.keys() == truth.keys()
    assert all(got[m] == truth[m].replace(tzinfo=eastern).astimezone(timezone.utc) for m in truth)
    assert any(got[m].hour != truth[m].hour for m in truth)


def test_a_message_s_pages_are_handed_on_as_they_arrive_not_held_whole(simulator: Simulator) -> None:
    sends = get_stream("message_sends")
    counts = Counter(row["MsgID"] for row in simulator.account.ground_truth("message_sends", FILTERED_START))
    msg_id, rows = counts.most_common(1)[0]
    with ListrakClient(filtered_settings(simulator, concurrency=1)) as client:
        page_size = simulator.page_size
        assert rows > 3 * page_size, "the largest message should span several pages"
        activity = Extractor(client, client.settings, now=virtual_now(simulator)).message_activity([sends], [msg_id])
        _, first = next(activity)
        # The first page comes back while the message's later pages are still unasked: at most
        # the next one is on its way.
        assert first.num_rows == page_size
        assert client.stats.as_dict()["requests_total"] <= 2
        rest = [table for _, table in activity]
    assert first.num_rows + sum(t.num_rows for t in rest) == rows
    assert {m for t in rest for m in t.column("MsgID").to_pylist()} == {msg_id}
