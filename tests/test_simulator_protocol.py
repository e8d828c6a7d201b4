"""The wire protocol: routing, SOAP 1.2, lenient request reading, malformed requests, paging."""

from __future__ import annotations

import http.client
from datetime import datetime
from urllib.parse import urlsplit

import pytest
import requests
from conftest import SOAP11_NS, SOAP12_NS, SoapCaller, SoapResponse, call_body, envelope
from lxml import etree

from listrak_sync.simulator import Simulator
from listrak_sync.streams import NAMESPACE

OPENS = "ReportRangeMessageContactOpen"
WIDE = {"StartDate": "2020-01-01", "EndDate": "2030-01-01"}


def busiest(sim: Simulator, stream: str = "message_opens") -> int:
    messages = [m for i in sim.account.list_ids()
                for m in sim.account.messages(i, datetime(2020, 1, 1), datetime(2030, 1, 1))]
    return max(messages, key=lambda m: len(sim.account.events(stream, m["MsgID"])))["MsgID"]


def item_count(response: SoapResponse) -> int:
    assert response.status == 200, response.content[:400]
    return len(response.payload[0])


def opens_request(msg_id: int) -> bytes:
    return envelope(call_body(OPENS, MsgID=msg_id, Page=1, **WIDE))


@pytest.mark.parametrize("soap_action", [f'"{NAMESPACE}{OPENS}"', f"{NAMESPACE}{OPENS}", None, '""'])
def test_soap11_routing_by_soap_action_quoted_unquoted_or_body(simulator: Simulator, soap: SoapCaller,
                                                               soap_action: str | None) -> None:
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    if soap_action is not None:
        headers["SOAPAction"] = soap_action
    response = soap.post(opens_request(busiest(simulator)), headers)
    assert item_count(response) > 0
    assert response.payload.tag == f"{{{NAMESPACE}}}{OPENS}Response"
    assert simulator.stats()["requests"] == {OPENS: 1}


@pytest.mark.parametrize("action", [f'; action="{NAMESPACE}{OPENS}"', f"; action={NAMESPACE}{OPENS}", ""])
def test_soap12_routing_by_action_parameter_or_body(simulator: Simulator, soap: SoapCaller, action: str) -> None:
    body = envelope(call_body(OPENS, MsgID=busiest(simulator), Page=1, **WIDE), version="1.2")
    response = soap.post(body, {"Content-Type": f"application/soap+xml; charset=utf-8{action}"})
    assert item_count(response) > 0
    assert response.content_type == "application/soap+xml; charset=utf-8"
    assert response.root.nsmap["soap"] == SOAP12_NS


def test_soap11_envelope_and_content_type(simulator: Simulator, soap: SoapCaller) -> None:
    response = soap.call("GetContactListCollection")
    assert response.content_type == "text/xml; charset=utf-8"
    root = response.root
    assert root.tag == f"{{{SOAP11_NS}}}Envelope"
    assert [etree.QName(c).localname for c in root] == ["Body"]  # no soap:Header in responses
    assert response.content.startswith(b'<?xml version="1.0" encoding="utf-8"?>')


@pytest.mark.parametrize(("body", "headers", "needle"), [
    (b"<not-closed", {}, "unable to read request"),
    (b"", {}, "unable to read request"),
    (b"<a xmlns='urn:x'/>", {}, "not a SOAP"),
    (envelope(""), {}, "no operation"),
    (envelope(call_body("DeleteEverything")), {}, "did not recognize"),
    (envelope(call_body(OPENS, MsgID=1)), {"SOAPAction": f'"{NAMESPACE}NoSuchOperation"'}, "did not recognize"),
    (envelope(call_body(OPENS, MsgID=1)), {"SOAPAction": f'"{NAMESPACE}GetContactList"'}, "does not match"),
    (envelope(f"<{OPENS}><MsgID>1</MsgID></{OPENS}>"), {}, "not in namespace"),
    (envelope(call_body(OPENS, MsgID="abc", Page=1, **WIDE)), {}, "MsgID"),
    (envelope(call_body(OPENS, MsgID=1, Page=1, StartDate="yesterday", EndDate="2030-01-01")), {}, "StartDate"),
    (envelope(call_body("ReportListMessageActivity", ListID=1, IncludeTestMessages="yes", **WIDE)), {},
     "IncludeTestMessages"),
])
def test_malformed_requests_get_a_client_fault(simulator: Simulator, soap: SoapCaller, body: bytes,
                                               headers: dict[str, str], needle: str) -> None:
    response = soap.post(body, {"Content-Type": "text/xml; charset=utf-8", **headers})
    assert response.status == 500
    assert response.fault_code == "soap:Client"
    assert needle in response.fault_string
    assert soap.call("GetContactListCollection").status == 200  # the connection and server live on


def test_page_below_one_is_a_client_fault(simulator: Simulator, soap: SoapCaller) -> None:
    response = soap.call(OPENS, MsgID=busiest(simulator), Page=0, **WIDE)
    assert response.fault_code == "soap:Client" and "Page" in response.fault_string


def test_external_entities_are_never_resolved(soap: SoapCaller) -> None:
    body = (b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            + envelope(call_body("GetContactListCollection"), username="&xxe;").split(b"?>", 1)[1])
    response = soap.post(body, {"Content-Type": "text/xml; charset=utf-8"})
    assert b"root:" not in response.content
    assert response.status == 500


def test_request_children_are_read_leniently(simulator: Simulator, soap: SoapCaller) -> None:
    msg_id = busiest(simulator, "message_sends")
    expected = item_count(soap.call("ReportMessageContactSent", MsgID=msg_id, Page=1, WSException=None))
    variants = [
        f"<Page>1</Page><MsgID>{msg_id}</MsgID>",  # any order
        f"<MsgID>{msg_id}</MsgID><Page>1</Page>",  # WSException omitted
        f"<MsgID> {msg_id} </MsgID><Page>1</Page><WSException><SoapMethod>x</SoapMethod>"
        "<DateTime>2026-01-01T00:00:00</DateTime><Description>in</Description></WSException>",  # populated
        f"<MsgID>{msg_id}</MsgID><Page>1</Page><Unknown>ignored</Unknown>",
    ]
    for children in variants:
        body = envelope(f'<ReportMessageContactSent xmlns="{NAMESPACE}">{children}</ReportMessageContactSent>')
        response = soap.post(body, {"Content-Type": "text/xml; charset=utf-8"})
        assert item_count(response) == expected
        assert response.payload[1].get("{http://www.w3.org/2001/XMLSchema-instance}nil") == "true"


def test_every_request_date_form_selects_the_same_events(simulator: Simulator, soap: SoapCaller) -> None:
    msg_id = busiest(simulator)
    events = simulator.account.events("message_opens", msg_id)
    pivot = sorted(e["OpenDate"] for e in events)[len(events) // 2].replace(microsecond=0)
    start_forms = {
        pivot.strftime("%Y-%m-%dT%H:%M:%S"): pivot,
        pivot.strftime("%Y-%m-%dT%H:%M:%SZ"): pivot,
        pivot.strftime("%Y-%m-%dT%H:%M:%S.0000000"): pivot,
        pivot.strftime("%Y-%m-%dT%H:%M:%S.000001Z"): pivot.replace(microsecond=1),
        (pivot.replace(hour=(pivot.hour + 2) % 24)).strftime("%Y-%m-%dT%H:%M:%S+02:00"): None,
        pivot.strftime("%Y-%m-%d"): pivot.replace(hour=0, minute=0, second=0),
    }
    simulator.page_size = 1000
    for text, start in start_forms.items():
        if start is None:
            if pivot.hour >= 22:
                continue  # the +02:00 form crossed midnight; the others cover this
            start = pivot
        response = soap.call(OPENS, MsgID=msg_id, StartDate=text, EndDate="2030-01-01T00:00:00", Page=1)
        expected = simulator.account.events("message_opens", msg_id, start, datetime(2030, 1, 1))
        assert item_count(response) == len(expected), text
    inclusive = soap.call(OPENS, MsgID=msg_id, StartDate=pivot.isoformat(), EndDate=pivot.isoformat(), Page=1)
    assert item_count(inclusive) == sum(1 for e in events if e["OpenDate"].replace(microsecond=0) == pivot
                                        and e["OpenDate"].microsecond == 0)


@pytest.mark.parametrize(("text", "include"), [("true", True), ("1", True), ("false", False), ("0", False)])
def test_booleans_in_every_form(simulator: Simulator, soap: SoapCaller, text: str, include: bool) -> None:
    for list_id in simulator.account.list_ids():
        response = soap.call("ReportListMessageActivity", ListID=list_id, IncludeTestMessages=text,
                             WSException=None, **WIDE)
        expected = simulator.account.messages(list_id, datetime(2020, 1, 1), datetime(2030, 1, 1), include)
        assert item_count(response) == len(expected)


@pytest.mark.parametrize("stream", ["message_sends", "message_opens"])
def test_paging_at_exact_multiples_of_the_page_size(simulator: Simulator, soap: SoapCaller, stream: str) -> None:
    msg_id = busiest(simulator, stream)
    total = len(simulator.account.events(stream, msg_id))
    assert total >= 4
    divisors = [d for d in range(1, total + 1) if total % d == 0]
    operation = {"message_sends": "ReportMessageContactSent", "message_opens": OPENS}[stream]
    params = {"WSException": None} if stream == "message_sends" else WIDE
    for page_size in sorted({divisors[1], total}):  # the smallest divisor above 1, and one full page
        simulator.page_size = page_size
        counts = [item_count(soap.call(operation, MsgID=msg_id, Page=page, **params))
                  for page in range(1, total // page_size + 3)]
        assert counts == [page_size] * (total // page_size) + [0, 0]
    simulator.page_size = total + 1
    assert [item_count(soap.call(operation, MsgID=msg_id, Page=p, **params)) for p in (1, 2)] == [total, 0]


def test_connections_are_kept_alive(simulator: Simulator) -> None:
    parts = urlsplit(simulator.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        for _ in range(3):
            connection.request("POST", parts.path, body=envelope(call_body("GetContactListCollection")),
                               headers={"Content-Type": "text/xml; charset=utf-8"})
            response = connection.getresponse()
            assert response.status == 200
            assert int(response.getheader("Content-Length")) == len(response.read())
            assert response.getheader("Connection") != "close"
        assert connection.sock is not None  # the same socket served all three
    finally:
        connection.close()


def test_other_paths_and_methods(simulator: Simulator) -> None:
    assert requests.get(simulator.base_url + "/nothing", timeout=10).status_code == 404
    assert requests.post(simulator.base_url + "/v31/Other.asmx", data=b"x", timeout=10).status_code == 404
    page = requests.get(simulator.url, timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    lower = requests.post(simulator.url.lower(), data=envelope(call_body("GetContactListCollection")),
                          headers={"Content-Type": "text/xml"}, timeout=10)
    assert lower.status_code == 200  # IIS paths are case-insensitive
