"""Every response body validates against the XML Schema embedded in the WSDL, for every operation,
with data, on empty pages, with nil and omitted values, and with hostile text."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
import xmlschema
from conftest import SoapCaller
from lxml import etree

from listrak_sync.simulator import Simulator
from listrak_sync.simulator.data import Account
from listrak_sync.streams import NAMESPACE, STREAMS, RequestKind, Stream

XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
START, END = "2020-01-01T00:00:00", "2030-01-01T00:00:00"


def request_params(sim: Simulator, stream: Stream, page: int) -> dict[str, Any]:
    list_id = sim.account.list_ids()[0]
    msg_id = 0
    if stream.request in (RequestKind.MESSAGE_RANGE_PAGED, RequestKind.MESSAGE_PAGED):
        messages = [m for i in sim.account.list_ids()
                    for m in sim.account.messages(i, datetime(2020, 1, 1), datetime(2030, 1, 1))]
        msg_id = max(messages, key=lambda m: len(sim.account.events(stream.name, m["MsgID"])))["MsgID"]
    return {
        RequestKind.COLLECTION: {},
        RequestKind.LIST_WINDOW: {"ListID": list_id, "StartDate": START, "EndDate": END,
                                  "IncludeTestMessages": "true", "WSException": None},
        RequestKind.MESSAGE_RANGE_PAGED: {"MsgID": msg_id, "StartDate": START, "EndDate": END, "Page": page},
        RequestKind.MESSAGE_PAGED: {"MsgID": msg_id, "Page": page, "WSException": None},
        RequestKind.LIST_RANGE_PAGED: {"ListID": list_id, "StartDate": START, "EndDate": END, "Page": page},
    }[stream.request]


def assert_valid(schema: xmlschema.XMLSchema, payload: etree._Element) -> None:
    errors = [str(e.reason) for e in schema.iter_errors(etree.tostring(payload).decode())]
    assert not errors, errors[:3]


@pytest.mark.parametrize("stream", STREAMS, ids=lambda s: s.name)
def test_stream_responses_validate_with_data_and_when_empty(simulator: Simulator, soap: SoapCaller,
                                                            wsdl_schema: xmlschema.XMLSchema,
                                                            stream: Stream) -> None:
    pages = (1, 500) if stream.paged else (1,)
    for page in pages:
        response = soap.call(stream.operation, **request_params(simulator, stream, page))
        assert response.status == 200, response.content[:300]
        assert response.content_type == "text/xml; charset=utf-8"
        payload = response.payload
        assert payload.tag == f"{{{NAMESPACE}}}{stream.operation}Response"
        assert_valid(wsdl_schema, payload)
        children = [etree.QName(c).localname for c in payload]
        expected = [stream.result_element] + (["WSException"] if stream.has_ws_exception else [])
        assert children == expected
        if stream.has_ws_exception:
            assert payload[1].get(XSI_NIL) == "true" and len(payload[1]) == 0
        items = len(payload[0])
        if page == 1:
            assert items > 0
        else:
            assert items == 0 and payload[0].text is None and not payload[0].attrib


def test_empty_non_paged_results_validate(simulator: Simulator, soap: SoapCaller,
                                          wsdl_schema: xmlschema.XMLSchema) -> None:
    list_id = simulator.account.list_ids()[0]
    response = soap.call("ReportListMessageActivity", ListID=list_id, StartDate="2030-01-01",
                         EndDate="2030-02-01", IncludeTestMessages="false", WSException=None)
    assert len(response.payload[0]) == 0
    assert_valid(wsdl_schema, response.payload)


@pytest.mark.parametrize("operation", ["GetContactList", "GetCharacterSetCollection", "GetAccountVmtaCollection"])
def test_other_operations_validate(simulator: Simulator, soap: SoapCaller, wsdl_schema: xmlschema.XMLSchema,
                                   operation: str) -> None:
    params: dict[str, Any] = {
        "GetContactList": {"ListID": simulator.account.list_ids()[0]},
        "GetCharacterSetCollection": {},
        "GetAccountVmtaCollection": {"WSException": None},
    }[operation]
    response = soap.call(operation, **params)
    assert response.status == 200
    assert len(response.payload[0]) > 0
    assert_valid(wsdl_schema, response.payload)


class HostileTextAccount(Account):
    """The real account, with list settings full of text that XML writers get wrong."""

    def lists(self) -> list[dict]:
        rows = [dict(row) for row in super().lists()]
        rows[0].update(ListName="a & b < c > d ]]> \"q\" 'a'", FromName="ctrl\x01\x1f\ufffe chars",
                       DomainAliasEmail="cr\r\nlf", VmtaID=None, VmtaDescription=None, GoogleTrackingDomains=[],
                       CreateDate=datetime(2024, 1, 2, 3, 4, 5, 120000))
        rows[1].update(FromEmail=None, ListName="", GoogleTrackingDomains=["x&y.example", "z.example"])
        return rows


def test_hostile_text_is_escaped_and_nulls_omitted(wsdl_schema: xmlschema.XMLSchema) -> None:
    with Simulator(HostileTextAccount(seed=1, scale="tiny")) as sim:
        response = SoapCaller(sim.url).call("GetContactListCollection")
    assert response.status == 200
    payload = response.payload
    assert_valid(wsdl_schema, payload)
    first, second = payload[0][0], payload[0][1]
    text = {etree.QName(c).localname: c.text for c in first}
    assert text["ListName"] == "a & b < c > d ]]> \"q\" 'a'"
    assert text["FromName"] == "ctrl chars"
    assert text["DomainAliasEmail"] == "cr\r\nlf"
    assert text["CreateDate"] == "2024-01-02T03:04:05.12"
    assert "Vmta" not in text and "GoogleTrackingDomains" not in text
    names = [etree.QName(c).localname for c in second]
    assert "FromEmail" not in names
    assert [c.text for c in second if etree.QName(c).localname == "GoogleTrackingDomains"] == [
        "x&y.example", "z.example"]
    assert second.find(f"{{{NAMESPACE}}}ListName") is not None


def test_datetimes_have_no_zone_and_milliseconds_only_when_set(simulator: Simulator, soap: SoapCaller) -> None:
    stream = next(s for s in STREAMS if s.name == "message_opens")
    texts = []
    for list_id in simulator.account.list_ids():
        for message in simulator.account.messages(list_id, datetime(2020, 1, 1), datetime(2030, 1, 1)):
            response = soap.call(stream.operation, MsgID=message["MsgID"], StartDate=START, EndDate=END, Page=1)
            texts += [e.text for e in response.payload.iter(f"{{{NAMESPACE}}}OpenDate")]
    assert texts
    for text in texts:
        parsed = datetime.fromisoformat(text)
        assert parsed.tzinfo is None and not text.endswith("Z")
        assert ("." in text) == (parsed.microsecond != 0)
        assert len(text) in (19, 21, 22, 23)
    assert any("." in t for t in texts), "the tiny account has some millisecond event times"
