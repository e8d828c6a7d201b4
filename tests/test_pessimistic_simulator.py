"""Each knob of the simulator's profiles is really played, checked over HTTP (raw SOAP and zeep).

Every test starts from the friendly profile and turns on one knob (or the pessimistic preset),
so a failure names the knob that is not played. docs/listrak-api.md §12 lists the facts behind them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
import zeep
from conftest import SoapCaller, SoapResponse, call_body, envelope
from lxml import etree

from listrak_sync.simulator import DEFAULT_PASSWORD, DEFAULT_USERNAME, Profile, Simulator, User
from listrak_sync.simulator.data import DEFAULT_NOW, HORIZON, Account
from listrak_sync.streams import NAMESPACE

NS = f"{{{NAMESPACE}}}"
WIDE = {"StartDate": "2020-01-01T00:00:00", "EndDate": "2030-01-01T00:00:00"}
OPENS = "ReportRangeMessageContactOpen"
ASMX = "Server was unable to process request. ---> "
HEADER = {"WSUser": {"UserName": DEFAULT_USERNAME, "Password": DEFAULT_PASSWORD}}
ONE_US = timedelta(microseconds=1)
US_DATE = re.compile(r"^(1[0-2]|[1-9])/([1-9]|[12]\d|3[01])/\d{4} (1[0-2]|[1-9]):[0-5]\d:[0-5]\d (AM|PM)$")


@contextmanager
def serve(profile: Profile, **settings: Any) -> Iterator[tuple[Simulator, SoapCaller]]:
    """A running tiny simulator playing ``profile``, and raw SOAP calls to it."""
    with Simulator(scale="tiny", page_size=settings.pop("page_size", 7), profile=profile, **settings) as sim:
        soap = SoapCaller(sim.url)
        try:
            yield sim, soap
        finally:
            soap.session.close()


def knob(**changes: Any) -> Profile:
    return Profile.friendly().replace(**changes)


def items(response: SoapResponse) -> list[etree._Element]:
    """The items of a response's Result (none when the Result is empty or omitted)."""
    assert response.status == 200, response.content[:400]
    result = response.payload.find(f"{NS}{etree.QName(response.payload).localname[:-8]}Result")
    return [] if result is None else list(result)


def text(item: etree._Element, name: str) -> str:
    value = item.findtext(NS + name)
    assert value is not None, name
    return value


def messages(soap: SoapCaller, list_id: int, **window: str) -> list[etree._Element]:
    return items(soap.call("ReportListMessageActivity", ListID=list_id, IncludeTestMessages="true",
                           WSException=None, **(window or WIDE)))


def all_pages(soap: SoapCaller, operation: str, **params: Any) -> list[etree._Element]:
    rows: list[etree._Element] = []
    for page in range(1, 500):
        found = items(soap.call(operation, Page=page, **params))
        if not found:
            return rows
        rows += found
    raise AssertionError("paging never ended")


def message_counter(soap: SoapCaller, list_id: int, msg_id: int, counter: str) -> int:
    found = [m for m in messages(soap, list_id) if int(text(m, "MsgID")) == msg_id]
    assert len(found) == 1
    return int(text(found[0], counter))


def every_message(sim: Simulator) -> list[dict]:
    return [m for lid in sim.account.list_ids() for m in sim.account.messages(lid, datetime(2020, 1, 1),
                                                                              datetime(2030, 1, 1))]


# -- counters (§12.17) -----------------------------------------------------------------------------


def later_repeat_open(profile: Profile) -> tuple[int, int, datetime]:
    """(ListID, MsgID, time) of an open after DEFAULT_NOW by a contact who had opened before it."""
    future = Account(seed=1, scale="tiny", profile=profile, now=HORIZON)
    for row in future.ground_truth("message_opens", datetime(2020, 1, 1)):
        if row["OpenDate"] <= DEFAULT_NOW:
            continue
        earlier = [r for r in future.events("message_opens", row["MsgID"], None, DEFAULT_NOW)
                   if r["ContactID"] == row["ContactID"]]
        list_id = future.message_list_id(row["MsgID"])
        if earlier and list_id is not None:
            return list_id, row["MsgID"], row["OpenDate"]
    raise AssertionError("no repeat open after DEFAULT_NOW")


@pytest.mark.parametrize("unique", [True, False])
def test_a_later_repeat_open_moves_open_count_only_when_counts_are_not_unique(unique: bool) -> None:
    profile = knob(unique_open_count=unique, late_reopen_rate=1.0)
    list_id, msg_id, moment = later_repeat_open(profile)
    with serve(profile) as (sim, soap):
        sim.set_now(moment - ONE_US)
        count_before = message_counter(soap, list_id, msg_id, "OpenCount")
        opens_before = all_pages(soap, OPENS, MsgID=msg_id, **WIDE)
        sim.set_now(moment)
        assert len(all_pages(soap, OPENS, MsgID=msg_id, **WIDE)) == len(opens_before) + 1
        assert message_counter(soap, list_id, msg_id, "OpenCount") == count_before + (0 if unique else 1)
        if unique:
            contacts = {text(o, "ContactID") for o in all_pages(soap, OPENS, MsgID=msg_id, **WIDE)}
            assert message_counter(soap, list_id, msg_id, "OpenCount") == len(contacts)


def test_late_reopens_come_days_after_the_first_open() -> None:
    account = Account(seed=1, scale="tiny", profile=knob(late_reopen_rate=0.5), now=HORIZON)
    plain = Account(seed=1, scale="tiny", now=HORIZON)
    opens, before = account.ground_truth("message_opens", DEFAULT_NOW), plain.ground_truth("message_opens",
                                                                                          DEFAULT_NOW)
    extra = [row for row in opens if row not in before]
    assert extra and all(row in opens for row in before)
    first = {(r["MsgID"], r["ContactID"]): r["OpenDate"] for r in reversed(before)}
    assert all(row["OpenDate"] - first[row["MsgID"], row["ContactID"]] >= timedelta(hours=12) for row in extra)


def test_unique_read_count_counts_readers() -> None:
    with serve(knob(unique_read_count=True, late_reopen_rate=1.0)) as (sim, soap):
        sim.advance(60)
        list_id = sim.account.list_ids()[0]
        repeated = 0
        for message in messages(soap, list_id):
            reads = all_pages(soap, "ReportRangeMessageContactRead", MsgID=int(text(message, "MsgID")), **WIDE)
            readers = {text(r, "ContactID") for r in reads}
            assert int(text(message, "ReadCount")) == len(readers)
            repeated += len(reads) - len(readers)
        assert repeated > 0


@pytest.mark.parametrize("unique", [True, False])
def test_click_count_counts_clicks_or_clickers(unique: bool) -> None:
    with serve(knob(unique_click_count=unique)) as (sim, soap):
        list_id = sim.account.list_ids()[0]
        repeated = 0
        for message in messages(soap, list_id):
            clicks = all_pages(soap, "ReportRangeMessageContactClick", MsgID=int(text(message, "MsgID")), **WIDE)
            clickers = {text(c, "ContactID") for c in clicks}
            assert int(text(message, "ClickerCount")) == len(clickers)
            assert int(text(message, "ClickCount")) == (len(clickers) if unique else len(clicks))
            repeated += len(clicks) - len(clickers)
        assert repeated > 0


# -- range bounds and the clock (§12.7) ------------------------------------------------------------

BOUNDS = {  # range_bounds -> (start on the value included, end on the value included)
    "inclusive": (True, True),
    "exclusive": (False, False),
    "start-inclusive": (True, False),
}


@pytest.mark.parametrize("bounds", list(BOUNDS))
def test_range_bounds_decide_whether_a_boundary_value_is_in(bounds: str) -> None:
    start_in, end_in = BOUNDS[bounds]
    with serve(knob(range_bounds=bounds)) as (sim, soap):
        list_id = sim.account.list_ids()[0]
        message = messages(soap, list_id)[2]
        msg_id, sent = text(message, "MsgID"), text(message, "SendDate")
        later, earlier = "2030-01-01T00:00:00", "2020-01-01T00:00:00"
        assert [text(m, "MsgID") for m in messages(soap, list_id, StartDate=sent, EndDate=later)
                if text(m, "MsgID") == msg_id] == ([msg_id] if start_in else [])
        assert (msg_id in [text(m, "MsgID") for m in messages(soap, list_id, StartDate=earlier, EndDate=sent)]) \
            == end_in
        assert bool(messages(soap, list_id, StartDate=sent, EndDate=sent)) == (bounds == "inclusive")

        opens = all_pages(soap, OPENS, MsgID=int(msg_id), **WIDE)
        pivot = text(opens[len(opens) // 2], "OpenDate")
        after = all_pages(soap, OPENS, MsgID=int(msg_id), StartDate=pivot, EndDate=later)
        before = all_pages(soap, OPENS, MsgID=int(msg_id), StartDate=earlier, EndDate=pivot)
        assert any(text(o, "OpenDate") == pivot for o in after) == start_in
        assert any(text(o, "OpenDate") == pivot for o in before) == end_in

        contacts = all_pages(soap, "ReportRangeSubscribedContacts", ListID=list_id, **WIDE)
        added = text(contacts[-1], "AdditionDate")
        tail = all_pages(soap, "ReportRangeSubscribedContacts", ListID=list_id, StartDate=added, EndDate=later)
        assert any(text(c, "AdditionDate") == added for c in tail) == start_in


def test_eastern_wall_clock_in_responses_and_requests() -> None:
    eastern, utc = ZoneInfo("America/New_York"), ZoneInfo("UTC")
    with serve(Profile.friendly()) as (_, plain), serve(knob(service_timezone="America/New_York")) as (sim, soap):
        list_id = sim.account.list_ids()[0]
        sent_utc = [datetime.fromisoformat(text(m, "SendDate")) for lid in sim.account.list_ids()
                    for m in messages(plain, lid)]
        sent_wall = [datetime.fromisoformat(text(m, "SendDate")) for lid in sim.account.list_ids()
                     for m in messages(soap, lid)]
        assert sent_wall == [d.replace(tzinfo=utc).astimezone(eastern).replace(tzinfo=None) for d in sent_utc]
        offsets = {round((u - w).total_seconds() / 3600) for u, w in zip(sent_utc, sent_wall, strict=True)}
        assert offsets == {4, 5}  # summer and winter sends

        created = [datetime.fromisoformat(text(x, "CreateDate")) for x in items(soap.call("GetContactListCollection"))]
        assert created == [datetime.fromisoformat(text(x, "CreateDate")).replace(tzinfo=utc).astimezone(eastern)
                           .replace(tzinfo=None) for x in items(plain.call("GetContactListCollection"))]
        # A naive request date is wall time; one with a zone is converted to it.
        pick = messages(soap, list_id)[1]
        wall = datetime.fromisoformat(text(pick, "SendDate")).replace(microsecond=0)
        as_utc = wall.replace(tzinfo=eastern).astimezone(utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        naive = [text(m, "MsgID") for m in messages(soap, list_id, StartDate=wall.isoformat(),
                                                    EndDate="2030-01-01T00:00:00")]
        zoned = [text(m, "MsgID") for m in messages(soap, list_id, StartDate=as_utc, EndDate="2030-01-01T00:00:00")]
        assert naive == zoned and text(pick, "MsgID") in naive
        stats = requests.get(sim.base_url + "/_simulator/stats", timeout=10).json()
        assert datetime.fromisoformat(stats["service_now"]) == datetime(2026, 5, 31, 20, 0)


def test_us_string_dates_parse_in_the_stated_format() -> None:
    profile = knob(event_date_format="us")
    with serve(profile) as (sim, soap), serve(Profile.friendly()) as (_, plain):
        msg_id = max(every_message(sim), key=lambda m: m["ClickCount"])["MsgID"]
        for operation, column in (("ReportRangeMessageContactOpen", "OpenDate"),
                                  ("ReportRangeMessageContactClick", "ClickDate"),
                                  ("ReportRangeMessageContactRead", "ReadDate")):
            shown = [text(i, column) for i in all_pages(soap, operation, MsgID=msg_id, **WIDE)]
            iso = [datetime.fromisoformat(text(i, column)) for i in all_pages(plain, operation, MsgID=msg_id,
                                                                                 **WIDE)]
            assert shown and all(US_DATE.match(value) for value in shown), shown[:3]
            parsed = [datetime.strptime(value, "%m/%d/%Y %I:%M:%S %p") for value in shown]
            assert parsed == [d.replace(microsecond=0) for d in iso]
            assert any(d.hour >= 12 for d in parsed) and any(d.hour < 12 for d in parsed)
        bounces = [b for m in every_message(sim) for b in sim.account.events("message_bounces", m["MsgID"])]
        assert bounces and all(isinstance(b["BounceDate"], datetime) and not b["BounceDate"].microsecond
                               for b in bounces)
        message = messages(soap, sim.account.list_ids()[0])[0]
        datetime.fromisoformat(text(message, "SendDate"))  # dateTime values stay ISO
        page = zeep.Client(sim.wsdl_url).service.ReportRangeMessageContactOpen(
            MsgID=msg_id, Page=1, _soapheaders=HEADER, **WIDE)
        assert all(US_DATE.match(item.OpenDate) for item in page)


def test_late_events_appear_hours_after_their_time() -> None:
    profile = knob(event_delay_hours=6)
    future = Account(seed=1, scale="tiny", now=HORIZON)
    row = next(r for r in future.ground_truth("message_opens", DEFAULT_NOW) if r["OpenDate"] > DEFAULT_NOW)
    moment, msg_id = row["OpenDate"], row["MsgID"]
    list_id = future.message_list_id(msg_id)
    assert list_id is not None

    def seen(now_text: str) -> bool:
        found = all_pages(soap, OPENS, MsgID=msg_id, StartDate="2020-01-01T00:00:00", EndDate=now_text)
        return any(text(o, "ContactID") == row["ContactID"] and datetime.fromisoformat(text(o, "OpenDate")) == moment
                   for o in found)

    with serve(profile) as (sim, soap):
        sim.set_now(moment + timedelta(hours=5, minutes=59))
        assert not seen(sim.now.isoformat()) and not seen("2030-01-01T00:00:00")
        instant = Account(seed=1, scale="tiny", now=sim.now)
        assert message_counter(soap, list_id, msg_id, "OpenCount") == len(instant.events("message_opens", msg_id))
        assert len(all_pages(soap, OPENS, MsgID=msg_id, **WIDE)) < len(instant.events("message_opens", msg_id))
        sim.set_now(moment + timedelta(hours=6))
        assert seen(sim.now.isoformat())


# -- faults and refusals (§12.10) ------------------------------------------------------------------


def test_asmx_faults_are_server_faults_with_the_prefix_and_the_token() -> None:
    users = [User(DEFAULT_USERNAME, DEFAULT_PASSWORD, refused_list_ids=frozenset({310000}))]
    with serve(knob(fault_style="asmx"), users=users, lockout_after=2) as (sim, soap):
        refused_list = sim.account.list_ids()[0]
        assert refused_list == 310000
        cases = [
            (soap.call("GetContactList", ListID=refused_list), "[AccessDenied]"),
            (soap.call("ReportListMessageActivity", ListID=refused_list, IncludeTestMessages="true",
                       WSException=None, **WIDE), "[AccessDenied]"),
            (soap.call(OPENS, MsgID=1, Page=1, **WIDE), "[AccessDenied]"),
            (soap.call(OPENS, MsgID=1, Page=0, **WIDE), "Page"),
            (soap.call("GetContactListCollection", password="wrong"), "[InvalidLogonAttempt]"),
            (soap.call("GetContactListCollection", password="wrong"), "[InvalidLogonAttempt]"),
            (soap.call("GetContactListCollection"), "[LoginAttemptsExceeded]"),
        ]
        for response, token in cases:
            assert response.status == 500
            assert response.fault_code == "soap:Server"
            assert response.fault_string.startswith(ASMX) and token in response.fault_string
        with pytest.raises(zeep.exceptions.Fault) as raised:
            zeep.Client(sim.wsdl_url).service.GetContactListCollection(_soapheaders=HEADER)
        assert raised.value.code == "soap:Server" and "[LoginAttemptsExceeded]" in raised.value.message
        assert sim.stats()["access_denied"] == 3


def test_refusals_in_band_where_a_ws_exception_exists() -> None:
    with serve(knob(in_band_refusals=True), users=[User(DEFAULT_USERNAME, DEFAULT_PASSWORD,
                                                        refused_list_ids=frozenset({310000}))]) as (sim, soap):
        allowed = sim.account.list_ids()[1]
        refused_msg = sim.account.messages(310000, datetime(2020, 1, 1), datetime(2030, 1, 1))[0]["MsgID"]
        for response in (soap.call("ReportListMessageActivity", ListID=310000, IncludeTestMessages="true",
                                   WSException=None, **WIDE),
                         soap.call("ReportMessageContactSent", MsgID=refused_msg, Page=1, WSException=None)):
            assert response.status == 200
            assert [etree.QName(c).localname for c in response.payload] == ["WSException"]
            exception = response.payload[0]
            assert [etree.QName(c).localname for c in exception] == ["SoapMethod", "DateTime", "Description"]
            assert "[AccessDenied]" in text(exception, "Description")
            assert text(exception, "DateTime") == sim.now.isoformat()
        assert soap.call(OPENS, MsgID=refused_msg, Page=1, **WIDE).fault_code == "soap:Client"  # no WSException
        assert messages(soap, allowed)
        answer = zeep.Client(sim.wsdl_url).service.ReportListMessageActivity(
            ListID=310000, StartDate=datetime(2020, 1, 1), EndDate=datetime(2030, 1, 1), IncludeTestMessages=True,
            WSException=None, _soapheaders=HEADER)
        assert answer["ReportListMessageActivityResult"] is None
        assert "[AccessDenied]" in answer["WSException"]["Description"]


# -- things that change between runs (§12.18) ------------------------------------------------------


def test_withdrawn_list_is_gone_and_refused_after_the_clock_moves() -> None:
    with serve(knob(list_withdrawal_days=1.5)) as (sim, soap):
        before = [int(text(x, "ListID")) for x in items(soap.call("GetContactListCollection"))]
        messages_of = {lid: [int(text(m, "MsgID")) for m in messages(soap, lid)] for lid in before}
        sim.advance(1)
        assert [int(text(x, "ListID")) for x in items(soap.call("GetContactListCollection"))] == before
        sim.advance(1)
        after = [int(text(x, "ListID")) for x in items(soap.call("GetContactListCollection"))]
        (gone,) = set(before) - set(after)
        assert gone != before[0] and set(after) < set(before)
        refused = soap.call("ReportListMessageActivity", ListID=gone, IncludeTestMessages="true",
                            WSException=None, **WIDE)
        assert "[AccessDenied]" in refused.fault_string
        assert "[AccessDenied]" in soap.call(OPENS, MsgID=messages_of[gone][0], Page=1, **WIDE).fault_string
        assert "[AccessDenied]" in soap.call("ReportRangeSubscribedContacts", ListID=gone, Page=1,
                                             **WIDE).fault_string
        assert messages(soap, after[0])
        truth = sim.account.expected_tables(datetime(2020, 1, 1))
        assert gone not in {r["ListID"] for name in ("lists", "messages", "subscribed_contacts")
                            for r in truth[name]}
        assert not set(messages_of[gone]) & {r["MsgID"] for r in truth["message_sends"]}


def test_deleted_messages_and_their_events_vanish() -> None:
    with serve(knob(message_deletion_rate=0.05)) as (sim, soap):
        list_id = sim.account.list_ids()[0]
        before = {int(text(m, "MsgID")) for m in messages(soap, list_id)}
        sim.advance(3)
        after = {int(text(m, "MsgID")) for m in messages(soap, list_id)}
        vanished = before - after
        assert vanished
        for msg_id in vanished:
            assert all_pages(soap, OPENS, MsgID=msg_id, **WIDE) == []
            assert all_pages(soap, "ReportMessageContactSent", MsgID=msg_id, WSException=None) == []
        truth = sim.account.expected_tables(datetime(2020, 1, 1))
        assert not vanished & {r["MsgID"] for name in truth if name not in ("lists", "subscribed_contacts")
                               for r in truth[name]}


@pytest.mark.parametrize("addition_date", ["original", "new"])
def test_unsubscribed_contacts_come_back(addition_date: str) -> None:
    profile = knob(resubscribe_rate=0.3, resubscribe_addition_date=addition_date)
    with serve(profile) as (sim, soap):
        unsubs = {(sim.account.message_list_id(r["MsgID"]), r["ContactID"]): r
                  for r in sim.account.ground_truth("message_unsubs", datetime(2020, 1, 1))
                  if r["RemovalDate"] <= sim.now}

        def subscribed(list_id: int) -> dict[str, str]:
            rows = all_pages(soap, "ReportRangeSubscribedContacts", ListID=list_id, **WIDE)
            return {text(r, "ContactID"): text(r, "AdditionDate") for r in rows}

        lists = sim.account.list_ids()
        before = {lid: subscribed(lid) for lid in lists}
        sim.advance(3.5)
        back = {(lid, cid): added for lid in lists for cid, added in subscribed(lid).items()
                if cid not in before[lid] and (lid, cid) in unsubs}
        assert len(back) >= 2, "the last unsubscriber of each list comes back within days"
        for key, added in back.items():
            removal = unsubs[key]["RemovalDate"]
            if addition_date == "original":
                assert datetime.fromisoformat(added) == unsubs[key]["AdditionDate"]
            else:
                assert removal < datetime.fromisoformat(added) <= sim.now
        truth = {(r["ListID"], r["ContactID"]) for r in sim.account.ground_truth("subscribed_contacts",
                                                                                  datetime(2020, 1, 1))}
        assert set(back) <= truth


# -- protocol (§2, §11, §12.5, §12.6) --------------------------------------------------------------


def test_strict_http_wants_soap_action_and_content_type() -> None:
    with serve(knob(strict_http=True)) as (sim, soap):
        body = envelope(call_body("GetContactListCollection"))
        for headers in ({"Content-Type": "text/xml; charset=utf-8"},
                        {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}):
            missing = soap.post(body, headers)
            assert missing.status == 500 and missing.fault_code == "soap:Client"
            assert missing.fault_string == "Server did not recognize the value of HTTP Header SOAPAction: ."
        action = {"SOAPAction": f'"{NAMESPACE}GetContactListCollection"'}
        for content_type in ("application/json", "application/xml", None):
            refused = soap.post(body, {**action, **({"Content-Type": content_type} if content_type else {})})
            assert refused.status == 415
        mismatch = soap.post(envelope(call_body("GetContactListCollection"), version="1.2"),
                             {"Content-Type": "text/xml; charset=utf-8", **action})
        assert mismatch.status == 500 and mismatch.fault_code == "soap:VersionMismatch"
        assert soap.post(body, {"Content-Type": "text/xml", **action}).status == 200
        assert soap.call("GetContactListCollection").status == 200
        client = zeep.Client(sim.wsdl_url)
        assert client.service.GetContactListCollection(_soapheaders=HEADER)
        soap12 = client.bind("IntegrationService", "IntegrationServiceSoap12")
        assert soap12.GetContactListCollection(_soapheaders=HEADER)
        assert sim.stats()["malformed"] == 6


def test_page_size_per_operation_and_omitted_empty_pages() -> None:
    factors = {"ReportMessageContactSent": 2.0, "ReportRangeSubscribedContacts": 0.4}
    with serve(knob(page_size_factors=factors, empty_result="omitted"), page_size=5) as (sim, soap):
        msg_id = max(every_message(sim), key=lambda m: m["DeliverCount"])["MsgID"]
        list_id = sim.account.list_ids()[0]
        sends = soap.call("ReportMessageContactSent", MsgID=msg_id, Page=1, WSException=None)
        assert len(items(sends)) == 10
        assert len(items(soap.call("ReportRangeSubscribedContacts", ListID=list_id, Page=1, **WIDE))) == 2
        assert len(items(soap.call(OPENS, MsgID=msg_id, Page=1, **WIDE))) == 5
        past_opens = soap.call(OPENS, MsgID=msg_id, Page=99, **WIDE)
        assert past_opens.status == 200 and len(past_opens.payload) == 0
        past_sends = soap.call("ReportMessageContactSent", MsgID=msg_id, Page=99, WSException=None)
        assert [etree.QName(c).localname for c in past_sends.payload] == ["WSException"]
        client = zeep.Client(sim.wsdl_url)
        assert client.service.ReportRangeMessageContactOpen(MsgID=msg_id, Page=99, _soapheaders=HEADER,
                                                            **WIDE) is None
        zeep_sends = client.service.ReportMessageContactSent(MsgID=msg_id, Page=99, WSException=None,
                                                             _soapheaders=HEADER)
        assert zeep_sends["ReportMessageContactSentResult"] is None


# -- the profile itself ----------------------------------------------------------------------------


def test_profile_validation_presets_and_stats() -> None:
    assert Profile.named("friendly") == Profile() and Profile.named("pessimistic").name == "pessimistic"
    custom = Profile.pessimistic().replace(range_bounds="inclusive")
    assert custom.name == "pessimistic+custom" and custom.replace(fault_style="client").name == custom.name
    for bad in ({"range_bounds": "open"}, {"late_reopen_rate": 2}, {"service_timezone": "Mars/Olympus"},
                {"page_size_factors": {"GetContactList": 2}}, {"page_size_factors": {OPENS: 0}},
                {"event_date_format": "eu"}, {"event_delay_hours": -1}):
        with pytest.raises(ValueError):
            Profile.friendly().replace(**bad)
    with pytest.raises(ValueError):
        Profile.named("grumpy")
    with pytest.raises(ValueError):
        Simulator(account=Account(seed=1, scale="tiny"), profile="pessimistic")
    with serve(Profile.pessimistic()) as (sim, _):
        stats = requests.get(sim.base_url + "/_simulator/stats", timeout=10).json()
        assert stats["profile"] == Profile.pessimistic().settings()
        assert stats["profile"]["name"] == "pessimistic" and stats["profile"]["range_bounds"] == "exclusive"
        assert "pessimistic" in repr(sim)
