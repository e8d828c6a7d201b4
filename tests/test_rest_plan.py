"""The REST plan (engine/rest_plan.py): which reads a run makes and how each table is written."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from listrak_sync.engine.rest_plan import RestPlanner, gating_message, message_like
from listrak_sync.streams import get_stream

START = datetime(2024, 1, 1, tzinfo=timezone.utc)
NOW = datetime(2024, 6, 1, tzinfo=timezone.utc)
MESSAGES, LISTS = get_stream("rest_messages"), get_stream("rest_lists")
ACTIVITY, CONTACTS = get_stream("message_activity"), get_stream("contacts")


def planner(plan: dict, now: datetime = NOW, **options: object) -> RestPlanner:
    made = RestPlanner(plan, start=START, now=now, lookback_hours=48, full_recheck_days=7, **options)  # type: ignore[arg-type]
    made.begin([1, 2])
    return made


def test_the_tree_gates_per_message_streams_on_their_message() -> None:
    assert message_like(MESSAGES) and message_like(get_stream("conversation_messages"))
    assert gating_message(get_stream("message_link_clickers")) is MESSAGES
    assert gating_message(get_stream("conversation_message_activity")).name == "conversation_messages"
    assert gating_message(get_stream("campaigns")) is None


def test_a_first_run_reads_and_replaces_everything_then_a_re_run_reads_only_recent_messages() -> None:
    plan: dict = {}
    first = planner(plan)
    old = {"messageId": 7, "sendDate": NOW - timedelta(days=30)}
    recent = {"messageId": 8, "sendDate": NOW - timedelta(hours=3)}
    assert first.full and first.write(ACTIVITY).disposition == "replace"
    assert first.reason(ACTIVITY, 1, MESSAGES, old) == "first run"
    assert first.passes(CONTACTS, 1) == [("Subscribed", {}), ("Unsubscribed", {})]
    first.reason(ACTIVITY, 1, MESSAGES, recent)
    first.saw(CONTACTS, 1, "Subscribed", NOW - timedelta(days=2))
    first.finish()

    again = planner(plan, NOW + timedelta(hours=1))
    assert not again.full
    write = again.write(ACTIVITY)
    assert (write.disposition, write.merge_key, write.markers) == ("merge", ("listId", "messageId"), True)
    campaigns = again.write(get_stream("campaigns"))
    assert (campaigns.disposition, campaigns.merge_key) == ("merge", ("listId",))
    assert again.write(CONTACTS).disposition == "merge" and again.write(CONTACTS).merge_key == ()
    assert again.reason(ACTIVITY, 1, MESSAGES, old) is None
    assert again.reason(ACTIVITY, 1, MESSAGES, recent) == "sent within the lookback"
    assert again.reason(ACTIVITY, 1, MESSAGES, {"messageId": 9, "sendDate": NOW - timedelta(days=90)}) == \
        "new to the plan"
    # contacts from the bookmark less the lookback, in the service's wall time; a pass never read: whole
    assert again.passes(CONTACTS, 1) == [("Subscribed", {"startDate": "2024-05-28T00:00:00"}), ("Unsubscribed", {})]
    # what has no date filter waits for the list's recheck; what has one is read every run
    assert again.reason(get_stream("campaigns"), 1, LISTS, {"listId": 1}) is None
    assert again.reason(MESSAGES, 1, LISTS, {"listId": 1}) == "read every run"


def test_the_recheck_reads_every_message_and_replaces_the_tables() -> None:
    plan: dict = {}
    planner(plan).finish()
    later = planner(plan, NOW + timedelta(days=8))
    assert later.full and later.mode_reason == "list recheck due"
    assert later.reason(ACTIVITY, 1, MESSAGES, {"messageId": 7, "sendDate": START}) == "list recheck due"
    assert later.passes(CONTACTS, 2) == [("Subscribed", {}), ("Unsubscribed", {})]


def test_transactional_activity_is_read_from_the_last_run_less_the_lookback() -> None:
    plan: dict = {}
    planner(plan).finish()
    stream = get_stream("transactional_message_activity")
    again = planner(plan, NOW + timedelta(hours=5))
    write = again.write(stream)
    assert (write.disposition, write.merge_key) == ("merge", ("listId", "transactionalMessageId", "sendDate"))
    assert again.passes(stream, 1) == [(None, {"startDate": "2024-05-30T00:00:00"})]


def test_a_changed_start_date_or_a_full_refresh_replaces_everything() -> None:
    plan: dict = {}
    planner(plan).finish()
    assert planner(plan, full_refresh=True).mode_reason == "full refresh requested"
    moved = RestPlanner(plan, start=START + timedelta(days=1), now=NOW, lookback_hours=48, full_recheck_days=7)
    assert moved.mode_reason == "the start date changed"


def test_between_rechecks_children_reach_their_parents_through_what_the_recheck_remembered() -> None:
    conversations, messages = get_stream("conversations"), get_stream("conversation_messages")
    activity = get_stream("conversation_message_activity")
    plan: dict = {}
    first = planner(plan)
    old = {"listId": 1, "conversationId": 4, "messageId": 7, "sendDate": NOW - timedelta(days=30)}
    recent = {"listId": 1, "conversationId": 4, "messageId": 8, "sendDate": NOW - timedelta(hours=3)}
    assert first.reason(messages, 1, conversations, {"listId": 1, "conversationId": 4}) == "first run"
    for row in (old, recent):
        assert first.reason(activity, 1, messages, row) == "first run"
    first.finish()

    again = planner(plan, NOW + timedelta(hours=1))
    assert again.reason(conversations, 1, LISTS, {"listId": 1}) is None
    assert again.remembered(conversations, {"listId": 1}) == [{"listId": 1, "conversationId": 4}]
    assert again.reason(messages, 1, conversations, {"listId": 1, "conversationId": 4}) is None
    found = again.remembered(messages, {"listId": 1, "conversationId": 4})
    assert [m["messageId"] for m in found] == [7, 8] and found[1]["sendDate"] == recent["sendDate"]
    assert again.remembered(messages, {"listId": 1, "conversationId": 5}) == []
    assert [again.reason(activity, 1, messages, m) for m in found] == [None, "sent within the lookback"]
    again.finish()
    assert plan["lists"]["1"]["remembered"]["conversation_messages"][0]["messageId"] == 7
