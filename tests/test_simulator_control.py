"""Counters and the clock, over HTTP and from Python; determinism; the Simulator object itself."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
import requests
from conftest import SoapCaller

from listrak_sync.simulator import Simulator
from listrak_sync.simulator.data import DEFAULT_NOW
from listrak_sync.streams import NAMESPACE

FAR = "2030-01-01T00:00:00"
EARLY = "2020-01-01T00:00:00"


def soap_message_ids(soap: SoapCaller, sim: Simulator) -> list[int]:
    ids = []
    for list_id in sim.account.list_ids():
        response = soap.call("ReportListMessageActivity", ListID=list_id, StartDate=EARLY, EndDate=FAR,
                             IncludeTestMessages="true", WSException=None)
        ids += [int(m.findtext(f"{{{NAMESPACE}}}MsgID")) for m in response.payload[0]]
    return ids


def soap_open_count(soap: SoapCaller, msg_id: int) -> int:
    total = 0
    for page in range(1, 1000):
        response = soap.call("ReportRangeMessageContactOpen", MsgID=msg_id, StartDate=EARLY, EndDate=FAR, Page=page)
        if len(response.payload[0]) == 0:
            return total
        total += len(response.payload[0])
    raise AssertionError("paging never ended")


def test_stats_count_requests_per_operation_over_http_and_python(simulator: Simulator, soap: SoapCaller) -> None:
    stats_url = simulator.base_url + "/_simulator/stats"
    soap.call("GetContactListCollection")
    soap.call("GetContactListCollection")
    soap.call("GetContactListCollection", password="wrong")
    msg_id = soap_message_ids(soap, simulator)[0]
    soap.call("ReportRangeMessageContactOpen", MsgID=msg_id, StartDate=EARLY, EndDate=FAR, Page=1)
    soap.post(b"<broken", {"Content-Type": "text/xml"})
    over_http = requests.get(stats_url, timeout=10).json()
    assert over_http == simulator.stats()
    lists = len(simulator.account.list_ids())
    assert over_http["requests"] == {"(unrouted)": 1, "GetContactListCollection": 3,
                                     "ReportListMessageActivity": lists, "ReportRangeMessageContactOpen": 1}
    assert over_http["requests_total"] == 5 + lists
    assert over_http["requests_by_object"]["ReportRangeMessageContactOpen"] == {str(msg_id): 1}
    assert over_http["rows"]["GetContactListCollection"] == 2 * lists
    assert over_http["auth_failures"] == {"InvalidLogonAttempt": 1}
    assert over_http["malformed"] == 1

    reset = requests.post(simulator.base_url + "/_simulator/stats/reset", timeout=10)
    assert reset.status_code == 200
    zero = requests.get(stats_url, timeout=10).json()
    assert zero["requests"] == {} and zero["requests_total"] == 0 and zero["auth_failures"] == {}
    soap.call("GetContactListCollection")
    assert simulator.stats()["requests"] == {"GetContactListCollection": 1}
    simulator.reset_stats()
    assert simulator.stats()["requests_total"] == 0


def test_clock_over_http(simulator: Simulator) -> None:
    clock_url = simulator.base_url + "/_simulator/clock"
    assert requests.get(clock_url, timeout=10).json() == {"now": DEFAULT_NOW.isoformat()}
    moved = requests.post(clock_url, json={"advance_days": 1.5}, timeout=10)
    assert moved.json() == {"now": (DEFAULT_NOW + timedelta(days=1.5)).isoformat()}
    assert simulator.now == DEFAULT_NOW + timedelta(days=1.5)
    moved = requests.post(clock_url, json={"now": "2026-07-04T12:30:00"}, timeout=10)
    assert moved.status_code == 200 and simulator.now == datetime(2026, 7, 4, 12, 30)
    for bad in ({}, {"advance_days": 1, "now": "2026-01-01"}, {"now": "tomorrow"}, {"advance_days": "x"}, [1]):
        assert requests.post(clock_url, json=bad, timeout=10).status_code == 400
    assert requests.post(clock_url, data=b"{not json", timeout=10).status_code == 400
    assert simulator.now == datetime(2026, 7, 4, 12, 30)


def test_advancing_the_clock_adds_messages_and_late_events(simulator: Simulator, soap: SoapCaller) -> None:
    before_ids = soap_message_ids(soap, simulator)
    before = {msg_id: soap_open_count(soap, msg_id) for msg_id in before_ids}
    requests.post(simulator.base_url + "/_simulator/clock", json={"advance_days": 30}, timeout=10)
    after_ids = soap_message_ids(soap, simulator)
    assert set(after_ids) > set(before_ids), "a month later, new messages have been sent"
    after = {msg_id: soap_open_count(soap, msg_id) for msg_id in before_ids}
    assert all(after[m] >= before[m] for m in before_ids)
    assert sum(after.values()) > sum(before.values()), "old messages gained late opens"
    assert after == {m: len(simulator.account.events("message_opens", m)) for m in before_ids}

    simulator.set_now(DEFAULT_NOW)
    assert soap_message_ids(soap, simulator) == before_ids
    simulator.advance(30)
    assert soap_message_ids(soap, simulator) == after_ids


def responses_for(seed: int) -> list[bytes]:
    with Simulator(seed=seed, scale="tiny", page_size=5) as sim:
        soap = SoapCaller(sim.url)
        bodies = [soap.call("GetContactListCollection").content]
        for msg_id in soap_message_ids(soap, sim)[:4]:
            bodies.append(soap.call("ReportRangeMessageContactClick", MsgID=msg_id, StartDate=EARLY, EndDate=FAR,
                                    Page=1).content)
            bodies.append(soap.call("ReportMessageContactSent", MsgID=msg_id, Page=2, WSException=None).content)
        list_id = sim.account.list_ids()[0]
        bodies.append(soap.call("ReportRangeSubscribedContacts", ListID=list_id, StartDate=EARLY, EndDate=FAR,
                                Page=1).content)
        return bodies


def test_same_seed_same_bytes() -> None:
    first, again, other = responses_for(5), responses_for(5), responses_for(6)
    assert first == again
    assert first[0] != other[0]


def test_the_simulator_object() -> None:
    sim = Simulator(scale="tiny", page_size=3)
    with pytest.raises(RuntimeError):
        _ = sim.url
    assert not sim.running
    with sim:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v31/IntegrationService\.asmx", sim.url)
        assert sim.wsdl_url == sim.url + "?WSDL"
        assert sim.port > 0 and sim.running
        assert "demo-password" not in repr(sim)
        with pytest.raises(RuntimeError):
            sim.start()
        sim.page_size = 2
        assert sim.service.page_size == 2
        with pytest.raises(ValueError):
            sim.page_size = 0
    assert not sim.running
    sim.stop()  # stopping twice is harmless
    with pytest.raises(ValueError):
        Simulator(scale="tiny", page_size=0)
