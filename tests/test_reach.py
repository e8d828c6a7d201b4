"""What a re-run asks for each list's messages, from what the last read recorded."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from listrak_sync.engine.reach import ONE_WINDOW_MESSAGES, MessageReach, message_reach, record_reach

START = datetime(2000, 1, 1, tzinfo=timezone.utc)
READ = datetime(2026, 5, 1, tzinfo=timezone.utc)


def reach_after(count: int, *, later: timedelta, first_sent: datetime | None = None, **options: object) -> MessageReach:
    plan: dict[str, object] = {}
    sent = [first_sent or datetime(2024, 3, 1, tzinfo=timezone.utc)] * count
    record_reach(plan, 7, sent, reach=MessageReach(START), start=START, read_at=READ, lookback_hours=48)
    settings = {"interval_days": 365, "recheck_days": 7.0, "full_refresh": False, **options}
    return message_reach(plan, 7, start=START, now=READ + later, **settings)  # type: ignore[arg-type]


def test_the_quiet_past_ends_at_the_first_message_or_the_lookback_horizon() -> None:
    assert reach_after(3, later=timedelta(days=1)) == MessageReach(datetime(2024, 3, 1, tzinfo=timezone.utc), True)
    # No message at all: quiet until L before the read, never later.
    assert reach_after(0, later=timedelta(days=1)).ask_from == READ - timedelta(hours=48)
    # A message within L of the read: the horizon is the message.
    recent = READ - timedelta(hours=1)
    assert reach_after(1, later=timedelta(days=1), first_sent=recent).ask_from == READ - timedelta(hours=48)


def test_many_messages_or_a_long_pause_keep_interval_windows() -> None:
    assert not reach_after(ONE_WINDOW_MESSAGES + 1, later=timedelta(days=1)).one_window
    assert reach_after(ONE_WINDOW_MESSAGES, later=timedelta(days=1)).one_window
    assert not reach_after(3, later=timedelta(days=6), interval_days=5).one_window


def test_the_recheck_a_full_refresh_and_another_start_date_ask_from_the_start() -> None:
    assert reach_after(3, later=timedelta(days=7)) == MessageReach(START)
    assert reach_after(3, later=timedelta(days=1), recheck_days=0) == MessageReach(START)
    assert reach_after(3, later=timedelta(days=1), full_refresh=True) == MessageReach(START)
    plan: dict[str, object] = {}
    record_reach(plan, 7, [], reach=MessageReach(START), start=START, read_at=READ, lookback_hours=48)
    other = START + timedelta(days=1)
    assert message_reach(plan, 7, start=other, now=READ, interval_days=365, recheck_days=7,
                         full_refresh=False) == MessageReach(other)
    assert message_reach(plan, 8, start=START, now=READ, interval_days=365, recheck_days=7,
                         full_refresh=False) == MessageReach(START)


def test_a_read_from_the_quiet_past_keeps_the_time_of_the_last_read_from_the_start() -> None:
    plan: dict[str, object] = {}
    record_reach(plan, 7, [], reach=MessageReach(START), start=START, read_at=READ, lookback_hours=48)
    later = READ + timedelta(days=5)
    reach = message_reach(plan, 7, start=START, now=later, interval_days=365, recheck_days=7, full_refresh=False)
    assert reach.ask_from > START
    record_reach(plan, 7, [], reach=reach, start=START, read_at=later, lookback_hours=48)
    # 8 days after the read from the start: the recheck is due although the last read was 3 days ago.
    assert message_reach(plan, 7, start=START, now=READ + timedelta(days=8), interval_days=365, recheck_days=7,
                         full_refresh=False) == MessageReach(START)
