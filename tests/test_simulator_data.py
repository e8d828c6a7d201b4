"""The simulator's synthetic account: determinism, consistency, the clock, ground truth, caching."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import datetime, timedelta

import pytest

from listrak_sync.errors import ConfigError
from listrak_sync.simulator.data import DEFAULT_NOW, EPOCH, EVENT_STREAMS, HORIZON, Account, Scale
from listrak_sync.streams import STREAM_NAMES, get_stream

CURSOR = {name: get_stream(name).cursor for name in EVENT_STREAMS if name != "message_sends"}
ONE_US = timedelta(microseconds=1)


@pytest.fixture(scope="module")
def account() -> Account:
    return Account(seed=1, scale="tiny")


@pytest.fixture(scope="module")
def tables(account: Account) -> dict[str, list[dict]]:
    return account.expected_tables(EPOCH)


def digest(tables: dict[str, list[dict]]) -> str:
    return hashlib.sha256(repr(sorted(tables.items())).encode()).hexdigest()


def test_same_seed_same_rows_in_same_order(tables):
    assert Account(seed=1, scale="tiny").expected_tables(EPOCH) == tables
    assert digest(Account(seed=2, scale="tiny").expected_tables(EPOCH)) != digest(tables)


def test_identical_in_another_process_with_other_hash_salt(tables):
    code = (
        "import hashlib; from listrak_sync.simulator.data import Account, EPOCH; "
        "t = Account(seed=1, scale='tiny').expected_tables(EPOCH); "
        "print(hashlib.sha256(repr(sorted(t.items())).encode()).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == digest(tables)


def test_unknown_scale_is_a_config_error():
    with pytest.raises(ConfigError, match="tiny"):
        Account(scale="huge")


def test_tiny_has_the_promised_shape(tables):
    assert 2 <= len(tables["lists"]) <= 3
    regular = Counter(m["ListID"] for m in tables["messages"] if not m["Subject"].startswith("[TEST]"))
    assert all(4 <= regular[lst["ListID"]] <= 6 for lst in tables["lists"])
    events = sum(len(tables[name]) for name in EVENT_STREAMS)
    assert 200 <= events <= 1000
    assert all(tables[name] for name in STREAM_NAMES)


def test_rows_hold_exactly_the_stream_columns_in_order(tables):
    for name in STREAM_NAMES:
        columns = [c.name for c in get_stream(name).table_columns]
        assert all(list(row) == columns for row in tables[name]), name


def test_lists_vary_like_real_ones(tables):
    lists = tables["lists"]
    assert {row["VmtaID"] is None for row in lists} == {True, False}
    assert all(0 <= len(row["GoogleTrackingDomains"]) <= 3 for row in lists)
    assert len({len(row["GoogleTrackingDomains"]) for row in lists}) > 1
    assert any(not row["ListName"].isascii() for row in lists)
    assert len({row["ListID"] for row in lists}) == len(lists)


def test_subjects_exercise_escaping_and_unicode(tables):
    subjects = [m["Subject"] for m in tables["messages"]]
    assert any("&" in s or "<" in s for s in subjects)
    assert any(not s.isascii() for s in subjects)


def test_test_messages_hidden_on_request(account):
    for list_id in account.list_ids():
        every = account.messages(list_id, EPOCH, account.now)
        regular = account.messages(list_id, EPOCH, account.now, include_test=False)
        assert regular == [m for m in every if not m["Subject"].startswith("[TEST]")]
    assert any(
        m["Subject"].startswith("[TEST]")
        for lid in account.list_ids()
        for m in account.messages(lid, EPOCH, account.now)
    )


def test_ids_and_emails(tables):
    assert len({m["MsgID"] for m in tables["messages"]}) == len(tables["messages"])
    email_of = {}
    for row in tables["subscribed_contacts"] + tables["message_unsubs"]:
        assert email_of.setdefault(row["ContactID"], row["EmailAddress"]) == row["EmailAddress"]
    emails = list(email_of.values())
    assert len(set(emails)) == len(emails)
    assert all(e.isascii() and e == e.lower() and e.count("@") == 1 for e in emails)
    assert any("+" in e or "'" in e for e in emails)
    assert all(isinstance(row["ContactID"], str) for row in tables["subscribed_contacts"])


def test_dates_are_naive_mostly_whole_seconds_some_milliseconds(tables):
    dates = [row[CURSOR[name]] for name in CURSOR for row in tables[name]]
    assert all(d.tzinfo is None and d.microsecond % 1000 == 0 for d in dates)
    with_millis = sum(1 for d in dates if d.microsecond)
    assert 0 < with_millis < len(dates) / 3


def test_every_event_is_after_its_send_date(tables):
    sent = {m["MsgID"]: m["SendDate"] for m in tables["messages"]}
    for name, cursor in CURSOR.items():
        assert all(row[cursor] > sent[row["MsgID"]] for row in tables[name]), name


def test_no_two_events_of_a_stream_are_identical(tables):
    for name in EVENT_STREAMS:
        keys = [tuple(row.values()) for row in tables[name]]
        assert len(set(keys)) == len(keys), name


def test_repeat_clicks_by_one_contact_exist(tables):
    clicks = Counter((r["MsgID"], r["ContactID"]) for r in tables["message_clicks"])
    assert max(clicks.values()) >= 2
    same_link = Counter((r["MsgID"], r["ContactID"], r["LinkUrl"]) for r in tables["message_clicks"])
    assert max(same_link.values()) >= 2
    assert len({r["LinkUrl"] for r in tables["message_clicks"]}) > 3
    opens = Counter((r["MsgID"], r["ContactID"]) for r in tables["message_opens"])
    assert max(opens.values()) >= 2


def test_bounced_contacts_do_not_engage(tables):
    bounced = {(r["MsgID"], r["EmailAddress"]) for r in tables["message_bounces"]}
    assert bounced
    for name in ("message_opens", "message_reads", "message_clicks", "message_unsubs"):
        assert not bounced & {(r["MsgID"], r["EmailAddress"]) for r in tables[name]}, name


def test_unsubscribers_leave_the_list(account, tables):
    sent = {m["MsgID"]: m for m in tables["messages"]}
    recipients = defaultdict(set)
    for row in tables["message_sends"]:
        recipients[row["MsgID"]].add(row["EmailAddress"])
    assert tables["message_unsubs"]
    for unsub in tables["message_unsubs"]:
        msg = sent[unsub["MsgID"]]
        assert unsub["EmailAddress"] in recipients[msg["MsgID"]]
        later = [
            m for m in tables["messages"] if m["ListID"] == msg["ListID"] and m["SendDate"] > msg["SendDate"]
        ]
        assert all(unsub["EmailAddress"] not in recipients[m["MsgID"]] for m in later)
        assert unsub["AdditionDate"] <= msg["SendDate"] < unsub["RemovalDate"]
        subscribed = account.subscribed_contacts(msg["ListID"], EPOCH, account.now)
        assert (unsub["ContactID"] in {r["ContactID"] for r in subscribed}) == (
            unsub["RemovalDate"] > account.now
        )


def test_unsubscriber_is_subscribed_until_its_removal_date():
    account = Account(seed=1, scale="tiny")
    unsub = account.ground_truth("message_unsubs", EPOCH)[0]
    list_id = account.message_list_id(unsub["MsgID"])
    assert list_id is not None

    def subscribed_ids() -> set[str]:
        return {r["ContactID"] for r in account.subscribed_contacts(list_id, EPOCH, account.now)}

    account.set_now(unsub["RemovalDate"] - ONE_US)
    assert unsub["ContactID"] in subscribed_ids()
    account.set_now(unsub["RemovalDate"])
    assert unsub["ContactID"] not in subscribed_ids()


@pytest.mark.parametrize(
    "now", [DEFAULT_NOW, DEFAULT_NOW - timedelta(days=200), DEFAULT_NOW - timedelta(hours=30)]
)
def test_counters_agree_with_visible_events(now):
    account = Account(seed=1, scale="tiny", now=now)
    tables = account.expected_tables(EPOCH)
    by_msg: dict[str, Counter] = {name: Counter(r["MsgID"] for r in tables[name]) for name in EVENT_STREAMS}
    clicks_per_clicker = Counter((r["MsgID"], r["ContactID"]) for r in tables["message_clicks"])
    list_of = {m["MsgID"]: m["ListID"] for m in tables["messages"]}
    added = {(r["ListID"], r["ContactID"]): r["AdditionDate"] for r in tables["subscribed_contacts"]}
    added.update({(list_of[r["MsgID"]], r["ContactID"]): r["AdditionDate"] for r in tables["message_unsubs"]})
    for m in tables["messages"]:
        msg_id = m["MsgID"]
        delivered = by_msg["message_sends"][msg_id] - by_msg["message_bounces"][msg_id]
        clickers = [n for (mid, _), n in clicks_per_clicker.items() if mid == msg_id]
        assert m["DeliverCount"] == delivered
        assert m["OpenCount"] == by_msg["message_opens"][msg_id]
        assert m["ReadCount"] == by_msg["message_reads"][msg_id]
        assert m["ClickCount"] == by_msg["message_clicks"][msg_id] == sum(clickers)
        assert m["ClickerCount"] == len(clickers)
        assert m["RepeatClickerCount"] == sum(1 for n in clickers if n > 1)
        previous = [
            p["SendDate"]
            for p in tables["messages"]
            if p["ListID"] == m["ListID"]
            and p["SendDate"] < m["SendDate"]
            and not p["Subject"].startswith("[TEST]")
        ]
        new = {
            c
            for (mid, c) in clicks_per_clicker
            if mid == msg_id
            if not previous or added[m["ListID"], c] > max(previous)
        }
        assert m["NewClickerCount"] == len(new)
        assert m["RemoveCount"] == by_msg["message_unsubs"][msg_id]
        for count, percent in (
            ("OpenCount", "OpenPercent"),
            ("ReadCount", "ReadPercent"),
            ("RemoveCount", "RemovePercent"),
            ("ClickerCount", "ClickerPercent"),
        ):
            assert m[percent] == (round(100 * m[count] / delivered, 2) if delivered else 0.0)
        assert m["ConversionCount"] <= m["ClickerCount"]
        aov = round(m["OrderTotal"] / m["ConversionCount"], 2) if m["ConversionCount"] else 0.0
        assert m["AverageOrderValue"] == aov


def test_advancing_the_clock_adds_messages_subscribers_and_late_events():
    account = Account(seed=1, scale="tiny")
    before = account.expected_tables(EPOCH)
    account.advance(40)
    after = account.expected_tables(EPOCH)
    assert len(after["messages"]) > len(before["messages"])
    new_ids = {r["ContactID"] for r in after["subscribed_contacts"]} - {
        r["ContactID"] for r in before["subscribed_contacts"]
    }
    assert new_ids
    old_ids = {m["MsgID"] for m in before["messages"]}
    late = {
        name: [r for r in after[name] if r["MsgID"] in old_ids and r[CURSOR[name]] > DEFAULT_NOW]
        for name in CURSOR
    }
    assert late["message_opens"] and (late["message_reads"] or late["message_clicks"])
    for name in CURSOR:
        assert all(r in after[name] for r in before[name]), name
    old_counts = {m["MsgID"]: m["OpenCount"] for m in before["messages"]}
    assert any(m["OpenCount"] > old_counts[m["MsgID"]] for m in after["messages"] if m["MsgID"] in old_counts)


def test_nothing_after_now_is_visible():
    account = Account(seed=1, scale="tiny", now=DEFAULT_NOW - timedelta(days=100))
    tables = account.expected_tables(EPOCH)
    assert all(m["SendDate"] <= account.now for m in tables["messages"])
    assert all(r["AdditionDate"] <= account.now for r in tables["subscribed_contacts"])
    for name, cursor in CURSOR.items():
        assert all(r[cursor] <= account.now for r in tables[name])
    future = Account(seed=1, scale="tiny").ground_truth("messages", DEFAULT_NOW - timedelta(days=100))
    assert future and all(
        account.message_list_id(m["MsgID"]) is None for m in future if m["SendDate"] > account.now
    )


def test_date_filters_are_inclusive_at_both_ends(account, tables):
    for name, cursor in CURSOR.items():
        row = tables[name][len(tables[name]) // 2]
        moment = row[cursor]
        assert row in [
            dict(MsgID=row["MsgID"], **r) for r in account.events(name, row["MsgID"], moment, moment)
        ]
        after = account.events(name, row["MsgID"], moment + ONE_US, None)
        before = account.events(name, row["MsgID"], None, moment - ONE_US)
        assert all(r[cursor] > moment for r in after) and all(r[cursor] < moment for r in before)
    msg = tables["messages"][3]
    assert [m["MsgID"] for m in account.messages(msg["ListID"], msg["SendDate"], msg["SendDate"])] == [
        msg["MsgID"]
    ]
    sub = tables["subscribed_contacts"][5]
    found = account.subscribed_contacts(sub["ListID"], sub["AdditionDate"], sub["AdditionDate"])
    assert sub["ContactID"] in {r["ContactID"] for r in found}


def test_sends_ignore_dates(account, tables):
    msg_id = tables["messages"][0]["MsgID"]
    assert list(account.events("message_sends", msg_id, DEFAULT_NOW, DEFAULT_NOW)) == list(
        account.events("message_sends", msg_id)
    )


def test_ground_truth_respects_lists_and_start_date(account, tables):
    chosen = account.list_ids()[1]
    start = datetime(2025, 3, 1)
    part = account.expected_tables(start, [chosen])
    assert [r["ListID"] for r in part["lists"]] == [chosen]
    assert part["messages"] == [
        m for m in tables["messages"] if m["ListID"] == chosen and m["SendDate"] >= start
    ]
    kept = {m["MsgID"] for m in part["messages"]}
    for name in EVENT_STREAMS:
        assert part[name] == [r for r in tables[name] if r["MsgID"] in kept], name
    assert part["subscribed_contacts"] == [
        r for r in tables["subscribed_contacts"] if r["ListID"] == chosen and r["AdditionDate"] >= start
    ]
    assert account.ground_truth("lists", start, []) == []


def test_event_cache_stays_within_its_row_budget():
    scale = Scale(lists=2, contacts_per_list=60, messages_per_list=40)
    everything_visible = HORIZON + timedelta(days=60)
    bounded = Account(seed=3, scale=scale, now=everything_visible, cache_rows=600)
    unbounded = Account(seed=3, scale=scale, now=everything_visible, cache_rows=10**9)
    for list_id in bounded.list_ids():
        for m in bounded.messages(list_id, EPOCH, bounded.now):
            total = 0
            for name in EVENT_STREAMS:
                rows = list(bounded.events(name, m["MsgID"]))
                assert rows == list(unbounded.events(name, m["MsgID"]))
                total += len(rows)
            # Over budget, only the newest message stays: its compact events plus its rows.
            assert bounded.cached_rows <= max(600, 2 * total)
    assert bounded.cached_rows < unbounded.cached_rows / 10
    assert bounded.expected_tables(EPOCH) == unbounded.expected_tables(EPOCH)


def test_some_contacts_are_on_several_lists(tables):
    lists_of = defaultdict(set)
    for row in tables["subscribed_contacts"]:
        lists_of[row["ContactID"]].add(row["ListID"])
    assert any(len(ids) > 1 for ids in lists_of.values())


def test_unknown_ids_give_nothing_and_unknown_streams_raise(account):
    assert account.messages(1, EPOCH, account.now) == []
    assert account.message_list_id(1) is None
    assert len(account.events("message_opens", 1)) == 0
    assert len(account.subscribed_contacts(1, EPOCH, account.now)) == 0
    with pytest.raises(KeyError):
        account.events("subscribed_contacts", account.ground_truth("messages", EPOCH)[0]["MsgID"])
    with pytest.raises(KeyError):
        account.ground_truth("contacts", EPOCH)


def test_rows_view_slices_like_a_list(account, tables):
    msg_id = max(tables["messages"], key=lambda m: m["OpenCount"])["MsgID"]
    view = account.events("message_opens", msg_id, EPOCH, account.now)
    rows = list(view)
    assert len(rows) >= 3
    assert view[1:3] == rows[1:3] and view[-1] == rows[-1] and view[5:2] == []
    with pytest.raises(IndexError):
        view[len(rows)]
