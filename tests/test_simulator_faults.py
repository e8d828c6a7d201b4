"""Faults on demand: each injected kind, latency, the concurrency ceiling, seeds and live reconfiguration."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from conftest import SoapCaller, SoapResponse, call_body, envelope
from helpers import wait_until
from lxml import etree

from listrak_sync.simulator import FAULT_KINDS, Simulator

BODY = envelope(call_body("GetContactListCollection"))
HEADERS = {"Content-Type": "text/xml; charset=utf-8"}
HOUR = 3600  # seconds: a delay no test waits out; only stopping the simulator ends it


def outcome(caller: SoapCaller, timeout: float = 10) -> str:
    """What a client sees for one call: 'ok', an HTTP status, 'dropped', 'timeout' or 'truncated'."""
    try:
        response = caller.post(BODY, HEADERS, timeout=timeout)
    except requests.Timeout:
        return "timeout"
    except requests.ConnectionError:
        caller.session.close()  # a fresh connection for the next call
        return "dropped"
    if response.status != 200:
        return str(response.status)
    try:
        etree.fromstring(response.content)
    except etree.XMLSyntaxError:
        return "truncated"
    return "ok"


def only(kind: str, **settings: object) -> Simulator:
    return Simulator(scale="tiny", fail_rate=1.0, fault_kinds=[kind], **settings)  # type: ignore[arg-type]


def test_server_fault_is_a_soap_server_fault_without_a_token() -> None:
    with only("server_fault") as sim:
        response: SoapResponse = SoapCaller(sim.url).post(BODY, HEADERS)
        assert response.status == 500
        assert response.fault_code == "soap:Server"
        assert "[" not in response.fault_string
        assert sim.stats()["faults"]["server_fault"] == 1


def test_unavailable_is_http_503() -> None:
    with only("unavailable") as sim:
        assert outcome(SoapCaller(sim.url)) == "503"
        assert sim.stats()["faults"] == {kind: int(kind == "unavailable") for kind in FAULT_KINDS}


def test_drop_closes_the_connection_without_a_response() -> None:
    with only("drop") as sim:
        caller = SoapCaller(sim.url)
        assert [outcome(caller) for _ in range(2)] == ["dropped", "dropped"]
        assert sim.stats()["faults"]["drop"] == 2


def test_truncated_is_http_200_with_cut_xml() -> None:
    with only("truncated") as sim:
        caller = SoapCaller(sim.url)
        response = caller.post(BODY, HEADERS)
        assert response.status == 200
        assert response.content.startswith(b'<?xml version="1.0" encoding="utf-8"?><soap:Envelope')
        with pytest.raises(etree.XMLSyntaxError):
            etree.fromstring(response.content)
        sim.configure_faults(fail_rate=0)
        full = caller.post(BODY, HEADERS).content
        assert full.startswith(response.content) and len(response.content) == len(full) // 2


def test_slow_answers_correctly_but_after_any_sane_timeout() -> None:
    with only("slow", slow_seconds=1.0) as sim:
        caller = SoapCaller(sim.url)
        assert outcome(caller, timeout=0.3) == "timeout"
        started = time.monotonic()
        assert outcome(SoapCaller(sim.url), timeout=10) == "ok"
        assert time.monotonic() - started >= 1.0


def test_stop_does_not_wait_for_slow_responses() -> None:
    sim = only("slow", slow_seconds=HOUR).start()
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(outcome, SoapCaller(sim.url), 2 * HOUR)
        wait_until(lambda: sim.faults.in_flight == 1)
        sim.stop()  # had it waited for the slow answer, it would not return within the hour
        assert pending.result() == "dropped"


def test_latency_and_jitter_delay_every_soap_request() -> None:
    with Simulator(scale="tiny", latency_ms=150, jitter_ms=100) as sim:
        caller = SoapCaller(sim.url)
        for _ in range(3):
            started = time.monotonic()
            assert outcome(caller) == "ok"
            assert time.monotonic() - started >= 0.15
        delays = [sim.faults.plan().delay_seconds for _ in range(100)]  # the delays drawn, not the clock
        assert all(0.15 <= delay <= 0.25 for delay in delays) and len(set(delays)) > 1, delays


def test_the_wsdl_and_control_routes_are_never_delayed() -> None:
    with ThreadPoolExecutor(1) as pool, Simulator(scale="tiny", latency_ms=HOUR * 1000) as sim:
        delayed = pool.submit(outcome, SoapCaller(sim.url), 2 * HOUR)
        wait_until(lambda: sim.faults.in_flight == 1)
        assert requests.get(sim.wsdl_url, timeout=30).status_code == 200
        assert requests.get(sim.base_url + "/_simulator/stats", timeout=30).json()["in_flight"] == 1
        assert not delayed.done()  # answered while a SOAP request waits out its hour
    assert delayed.result() == "dropped"


def test_requests_are_served_concurrently() -> None:
    with ThreadPoolExecutor(6) as pool:
        with Simulator(scale="tiny", latency_ms=HOUR * 1000) as sim:
            waiting = [pool.submit(outcome, SoapCaller(sim.url), 2 * HOUR) for _ in range(6)]
            wait_until(lambda: sim.faults.in_flight == 6)  # all six inside the server at once
        assert [future.result() for future in waiting] == ["dropped"] * 6
        with Simulator(scale="tiny", latency_ms=50) as sim:
            assert list(pool.map(lambda _: outcome(SoapCaller(sim.url)), range(6))) == ["ok"] * 6


def test_concurrency_ceiling_answers_503_beyond_it() -> None:
    with Simulator(scale="tiny", latency_ms=600, max_concurrency=2) as sim:
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda _: outcome(SoapCaller(sim.url)), range(6)))
        assert sorted(results) == ["503"] * 4 + ["ok"] * 2
        stats = sim.stats()
        assert stats["over_capacity"] == 4 and stats["faults_total"] == 0 and stats["in_flight"] == 0
        assert stats["requests"] == {"GetContactListCollection": 2}


def fault_sequence(seed: int, calls: int = 40) -> list[str]:
    kinds = ["server_fault", "unavailable", "drop", "truncated"]
    with Simulator(scale="tiny", fail_rate=0.5, fault_kinds=kinds, fault_seed=seed) as sim:
        caller = SoapCaller(sim.url)
        sequence = [outcome(caller) for _ in range(calls)]
        assert sim.stats()["faults_total"] == sum(1 for o in sequence if o != "ok")
        return sequence


def test_faults_are_reproducible_from_the_seed() -> None:
    first, again, other = fault_sequence(11), fault_sequence(11), fault_sequence(12)
    assert first == again
    assert first != other
    assert {"ok", "500", "503", "dropped", "truncated"} == set(first)


def test_faults_switch_at_run_time_from_python_and_http() -> None:
    with Simulator(scale="tiny") as sim:
        caller = SoapCaller(sim.url)
        assert outcome(caller) == "ok"
        sim.faults.fail_rate = 1.0
        sim.faults.fault_kinds = ("unavailable",)
        assert outcome(caller) == "503"
        sim.configure_faults(fail_rate=0.0)
        assert outcome(caller) == "ok"

        url = sim.base_url + "/_simulator/faults"
        changed = requests.post(url, json={"fail_rate": 1, "fault_kinds": ["server_fault"]}, timeout=10)
        assert changed.status_code == 200 and changed.json()["fault_kinds"] == ["server_fault"]
        assert outcome(caller) == "500"
        assert requests.get(url, timeout=10).json()["fail_rate"] == 1.0
        for bad in ({"fail_rate": 2}, {"fault_kinds": ["meteor"]}, {"colour": "red"}, {"max_concurrency": 0}):
            assert requests.post(url, json=bad, timeout=10).status_code == 400
        requests.post(url, json={"fail_rate": 0}, timeout=10)
        assert outcome(caller) == "ok"


@pytest.mark.parametrize(("name", "value"), [("fail_rate", -0.1), ("fail_rate", 1.5), ("latency_ms", -1),
                                             ("fault_kinds", ["nope"]), ("fault_kinds", []),
                                             ("max_concurrency", 0)])
def test_invalid_fault_settings_are_refused(name: str, value: object) -> None:
    with pytest.raises(ValueError):
        Simulator(scale="tiny", **{name: value})  # type: ignore[arg-type]
    sim = Simulator(scale="tiny")
    with pytest.raises(ValueError):
        setattr(sim.faults, name, value)


def test_an_outage_answers_every_request_503_for_its_seconds_then_ends() -> None:
    # An hour of latency: a 503 that waited for it would be a client timeout, not a 503.
    with Simulator(scale="tiny", latency_ms=HOUR * 1000) as sim:
        caller = SoapCaller(sim.url)
        url = sim.base_url + "/_simulator/faults"
        assert requests.get(url, timeout=10).json()["outage_seconds"] == 0
        left = requests.post(url, json={"outage_seconds": 600}, timeout=10).json()["outage_seconds"]
        assert 0 < left <= 600
        assert [outcome(caller) for _ in range(3)] == ["503"] * 3  # answered at once, without the latency
        assert sim.stats()["faults"]["unavailable"] == 3
        sim.configure_faults(outage_seconds=0, latency_ms=0)
        assert outcome(caller) == "ok"
        sim.faults.outage_seconds = 60  # the Python control API: start one...
        assert outcome(caller) == "503"
        sim.configure_faults(outage_seconds=0)  # ...and end it early
        assert outcome(caller) == "ok"
        started = time.monotonic()  # left alone, an outage ends after its seconds
        requests.post(url, json={"outage_seconds": 0.5}, timeout=10)
        wait_until(lambda: requests.get(url, timeout=10).json()["outage_seconds"] == 0, poll=0.05)
        assert time.monotonic() - started >= 0.5
        assert outcome(caller) == "ok"
        assert requests.post(url, json={"outage_seconds": -1}, timeout=10).status_code == 400


def test_an_outage_does_not_restart_the_fault_sequence() -> None:
    kinds = ["server_fault", "unavailable", "drop", "truncated"]
    with Simulator(scale="tiny", fail_rate=0.5, fault_kinds=kinds, fault_seed=7) as sim:
        caller = SoapCaller(sim.url)
        without_outage = [outcome(caller) for _ in range(12)]
    with Simulator(scale="tiny", fail_rate=0.5, fault_kinds=kinds, fault_seed=7) as sim:
        caller = SoapCaller(sim.url)
        before = [outcome(caller) for _ in range(6)]
        sim.configure_faults(outage_seconds=600)
        assert outcome(caller) == "503"
        sim.configure_faults(outage_seconds=0)
        after = [outcome(caller) for _ in range(6)]
    assert before + after == without_outage
