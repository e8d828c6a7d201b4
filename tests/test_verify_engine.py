"""The comparison of `verify` (engine/verify.py) on hand-made counts: readings, behind and off, vanished rows."""

from __future__ import annotations

from typing import Any

import pytest

from listrak_sync.engine.verify import (
    AGREES,
    BEHIND,
    COUNTERS,
    OFF,
    UNCHECKED,
    compare,
    infer_reading,
    parse_readings,
)


def message(msg_id: int, **counters: int) -> dict[str, Any]:
    base = {"DeliverCount": 0, "RemoveCount": 0, "OpenCount": 0, "ReadCount": 0, "ClickCount": 0, "ClickerCount": 0}
    return {"ListID": 1, "MsgID": msg_id, "Subject": f"m{msg_id}", **base, **counters}


def statuses(found: Any, counter: str) -> dict[int, tuple[str, int]]:
    return {r.msg_id: (r.status, r.difference) for r in found.results if r.counter == counter}


def test_parse_readings_pins_all_one_or_none_and_refuses_unknown_names() -> None:
    assert parse_readings("auto") == {} and parse_readings(None) == {}
    assert parse_readings("unique") == dict.fromkeys(COUNTERS, "unique")
    assert parse_readings("OpenCount=unique, ReadCount=events") == {"OpenCount": "unique", "ReadCount": "events"}
    with pytest.raises(ValueError, match="unknown counter 'Opens'"):
        parse_readings("Opens=unique")
    with pytest.raises(ValueError, match="unknown reading"):
        parse_readings("OpenCount=contacts")


@pytest.mark.parametrize(("pairs", "fits"), [
    ([(5, 5, 3), (4, 4, 4), (6, 6, 2)], "events"),
    ([(3, 5, 3), (4, 4, 4), (2, 6, 2)], "unique"),
    ([(4, 4, 4), (2, 2, 2)], "both"),
    ([(9, 5, 3), (8, 4, 4), (7, 6, 2)], "neither"),
    ([(5, 5, 3), (5, 4, 3), (6, 6, 2)], "events"),  # one damaged message does not flip the reading
    ([], "unknown"),
])
def test_the_reading_is_the_one_most_settled_messages_fit(pairs: list[tuple[int, int, int]], fits: str) -> None:
    assert infer_reading("OpenCount", pairs).fits == fits


def test_off_only_where_the_next_run_would_not_fetch_and_vanished_rows_are_behind_when_removed() -> None:
    messages = [message(1, OpenCount=5), message(2, OpenCount=5), message(3, OpenCount=5), message(4, OpenCount=4)]
    counts = {"message_opens": {1: (5, 3), 2: (3, 3), 3: (6, 3), 4: (4, 4), 8: (2, 2), 9: (1, 1)}}
    pending = {"message_opens": {3: "counter moved"}}
    found = compare(messages, counts, pending, vanished={8: 1})
    assert found.readings["OpenCount"].used == "events"
    assert statuses(found, "OpenCount") == {1: (AGREES, 0), 2: (OFF, -2), 3: (BEHIND, 1), 4: (AGREES, 0),
                                            8: (BEHIND, 2), 9: (OFF, 1)}
    assert found.repair_units() == {("message_opens", 2), ("message_opens", 9)}
    assert "message_sends-message_bounces.DeliverCount" in found.unchecked  # tables not replicated: not checked
    pinned = compare(messages, counts, pending, pinned={"OpenCount": "unique"}, vanished={8: 1})
    assert statuses(pinned, "OpenCount")[1] == (OFF, -2)


def test_deliveries_are_sends_minus_bounces_and_a_counter_fitting_neither_reading_is_not_checked() -> None:
    messages = [message(m, DeliverCount=8, OpenCount=50) for m in (1, 2, 3)]
    counts = {"message_sends": {1: (10, 10), 2: (10, 10), 3: (10, 10)}, "message_bounces": {1: (2, 2), 2: (2, 2)},
              "message_opens": {1: (5, 5), 2: (4, 4), 3: (5, 3)}}
    found = compare(messages, counts, {})
    assert statuses(found, "DeliverCount") == {1: (AGREES, 0), 2: (AGREES, 0), 3: (OFF, 2)}
    assert found.readings["OpenCount"].fits == "neither"
    assert {status for status, _ in statuses(found, "OpenCount").values()} == {UNCHECKED}
    assert found.ok is False and found.repair_units() == {("message_sends", 3), ("message_bounces", 3)}
