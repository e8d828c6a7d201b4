"""Request envelopes: exact SOAP 1.1 shape, order per request kind, valid against the bundled WSDL."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
import xmlschema
from lxml import etree

from listrak_sync.errors import ConfigError
from listrak_sync.settings import Secret
from listrak_sync.soap.envelope import (
    CONTENT_TYPE,
    REQUEST_FIELDS,
    build_envelope,
    format_value,
    order_params,
    request_headers,
    soap_action,
)
from listrak_sync.streams import NAMESPACE, STREAMS, RequestKind, Stream
from listrak_sync.time import ServiceClock

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"

SAMPLE_PARAMS: dict[RequestKind, dict[str, Any]] = {
    RequestKind.COLLECTION: {},
    RequestKind.LIST_WINDOW: {"ListID": 12, "StartDate": datetime(2024, 1, 1),
                              "EndDate": datetime(2024, 12, 31, 23, 59, 59), "IncludeTestMessages": True},
    RequestKind.MESSAGE_RANGE_PAGED: {"MsgID": 34, "StartDate": datetime(2024, 1, 1), "EndDate": datetime(2024, 2, 1),
                                      "Page": 2},
    RequestKind.MESSAGE_PAGED: {"MsgID": 34, "Page": 1},
    RequestKind.LIST_RANGE_PAGED: {"ListID": 12, "StartDate": datetime(2024, 1, 1), "EndDate": datetime(2024, 2, 1),
                                   "Page": 3},
}


def _envelope(stream: Stream, username: str = "api-user", password: str = "secret") -> etree._Element:
    body = build_envelope(stream.operation, SAMPLE_PARAMS[stream.request], username=username,
                          password=Secret(password))
    assert body.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    return etree.fromstring(body)


@pytest.mark.parametrize("stream", STREAMS, ids=lambda s: s.name)
def test_envelope_shape_and_order(stream: Stream) -> None:
    root = _envelope(stream)
    assert root.tag == f"{{{SOAP}}}Envelope"
    header, body = list(root)
    assert header.tag == f"{{{SOAP}}}Header" and body.tag == f"{{{SOAP}}}Body"
    (user,) = list(header)
    assert user.tag == f"{{{NAMESPACE}}}WSUser"
    assert [(c.tag, c.text) for c in user] == [(f"{{{NAMESPACE}}}UserName", "api-user"),
                                               (f"{{{NAMESPACE}}}Password", "secret")]
    (wrapper,) = list(body)
    assert wrapper.tag == f"{{{NAMESPACE}}}{stream.operation}"
    names = [etree.QName(c).localname for c in wrapper]
    assert names == list(REQUEST_FIELDS[stream.request])
    assert all(etree.QName(c).namespace == NAMESPACE for c in wrapper)
    for child in wrapper:
        if etree.QName(child).localname == "WSException":
            assert child.get(XSI_NIL) == "true" and len(child) == 0


@pytest.mark.parametrize("stream", STREAMS, ids=lambda s: s.name)
def test_envelope_validates_against_bundled_wsdl(stream: Stream, wsdl_schema: xmlschema.XMLSchema) -> None:
    root = _envelope(stream, username="a&b<c>", password="p]]>&'\"<x>")
    header, body = list(root)
    wsdl_schema.validate(etree.tostring(header[0]).decode())
    wsdl_schema.validate(etree.tostring(body[0]).decode())


def test_sample_values_are_formatted_as_the_service_reads_them() -> None:
    stream = next(s for s in STREAMS if s.request is RequestKind.LIST_WINDOW)
    wrapper = _envelope(stream)[1][0]
    assert [c.text for c in wrapper] == ["12", "2024-01-01T00:00:00", "2024-12-31T23:59:59", "true", None]


def test_include_test_messages_false_and_explicit_order() -> None:
    params = {"IncludeTestMessages": False, "EndDate": date(2024, 2, 1), "StartDate": date(2024, 1, 1), "ListID": 5}
    assert [name for name, _ in order_params("ReportListMessageActivity", params)] == list(
        REQUEST_FIELDS[RequestKind.LIST_WINDOW]
    )
    body = build_envelope("ReportListMessageActivity", params, username="u", password=Secret("p"))
    wrapper = etree.fromstring(body)[1][0]
    assert [c.text for c in wrapper][:4] == ["5", "2024-01-01T00:00:00", "2024-02-01T00:00:00", "false"]


def test_credentials_are_escaped_not_injected() -> None:
    nasty_user = "</UserName><UserName>admin"
    nasty_password = "<![CDATA[x]]>&amp;\"'</Password>"
    body = build_envelope("GetContactListCollection", {}, username=nasty_user, password=Secret(nasty_password))
    user = etree.fromstring(body)[0][0]
    assert [c.text for c in user] == [nasty_user, nasty_password]


def test_unencodable_password_is_a_config_error_without_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        build_envelope("GetContactListCollection", {}, username="u", password=Secret("bad\x01pw-xyz"))
    assert "pw-xyz" not in str(info.value) and "password" in str(info.value)


def test_wrong_parameters_are_a_bug_not_a_request() -> None:
    with pytest.raises(ValueError, match="missing"):
        order_params("ReportRangeMessageContactOpen", {"MsgID": 1, "Page": 1})
    with pytest.raises(ValueError, match="unknown"):
        order_params("ReportMessageContactSent", {"MsgID": 1, "Page": 1, "StartDate": datetime(2024, 1, 1)})
    assert order_params("GetCharacterSetCollection", {}) == []


def test_headers_and_values() -> None:
    assert soap_action("ReportRangeMessageContactOpen") == '"http://webservices.listrak.com/v31/ReportRangeMessageContactOpen"'
    assert request_headers("X") == {"Content-Type": CONTENT_TYPE, "SOAPAction": f'"{NAMESPACE}X"'}
    assert CONTENT_TYPE == "text/xml; charset=utf-8"
    assert format_value(True) == "true" and format_value(0) == "0"
    assert format_value(datetime(2024, 3, 4, 5, 6, 7, 890000)) == "2024-03-04T05:06:07"
    with pytest.raises(TypeError):
        format_value(1.5)


def test_request_dates_are_the_service_clocks_wall_times_and_aware_ones_are_refused() -> None:
    """No silent conversion: only ServiceClock knows the service's zone (issue 17, item 3)."""
    aware = datetime(2024, 3, 4, 1, 0, tzinfo=timezone(timedelta(hours=-5)))
    with pytest.raises(TypeError, match=r"2024, 3, 4, 1, 0.*aware.*wall time"):
        format_value(aware)
    params = dict(SAMPLE_PARAMS[RequestKind.LIST_RANGE_PAGED], StartDate=aware)
    with pytest.raises(TypeError, match="aware"):
        build_envelope("ReportRangeSubscribedContacts", params, username="u", password=Secret("p"))
    first, last = ServiceClock("America/New_York").request_range(aware, aware + timedelta(hours=1))
    params = dict(SAMPLE_PARAMS[RequestKind.LIST_RANGE_PAGED], StartDate=first, EndDate=last)
    wrapper = etree.fromstring(build_envelope("ReportRangeSubscribedContacts", params, username="u",
                                              password=Secret("p")))[1][0]
    assert [c.text for c in wrapper][1:3] == ["2024-03-04T00:59:59", "2024-03-04T02:00:01"]  # EST wall, widened


def test_schema_check_would_catch_a_wrong_order(wsdl_schema: xmlschema.XMLSchema) -> None:
    stream = next(s for s in STREAMS if s.request is RequestKind.MESSAGE_RANGE_PAGED)
    wrapper = _envelope(stream)[1][0]
    wrapper.insert(0, wrapper[1])  # StartDate before MsgID
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        wsdl_schema.validate(etree.tostring(wrapper).decode())
