"""Response items to Arrow: types, formats, missing and nested elements, and loud failures."""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa
import pytest

from listrak_sync.errors import MalformedResponseError, UnreadableValueError
from listrak_sync.soap.parse import (
    arrow_schema,
    body_payload,
    find_fault,
    item_schema,
    parse_answer,
    parse_service_datetime,
    parse_xml,
    read_items,
    response_wrapper,
    ws_exception,
)
from listrak_sync.streams import NAMESPACE, STREAMS, ColumnType, Stream, get_stream

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
UTC = timezone.utc


def response(stream: Stream, items: str, *, result: bool = True, extra: str = "") -> bytes:
    inner = f"<{stream.result_element}>{items}</{stream.result_element}>" if result else ""
    return (f'<soap:Envelope xmlns:soap="{SOAP}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            f'<soap:Body><{stream.operation}Response xmlns="{NAMESPACE}">{inner}{extra}'
            f"</{stream.operation}Response></soap:Body></soap:Envelope>").encode()


def read(stream: Stream, body: bytes, zone: str = "UTC") -> pa.Table:
    return read_items(response_wrapper(body_payload(parse_xml(body)), stream.operation), stream, zone)


def opens(*dates: str) -> bytes:
    stream = get_stream("message_opens")
    items = "".join(f"<WSContactOpen><ContactID>c{i}</ContactID><EmailAddress>e{i}@x.io</EmailAddress>"
                    f"<OpenDate>{d}</OpenDate></WSContactOpen>" for i, d in enumerate(dates))
    return response(stream, items)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-04T05:06:07", datetime(2024, 3, 4, 5, 6, 7)),
        ("2024-03-04T05:06:07.1", datetime(2024, 3, 4, 5, 6, 7, 100000)),
        ("2024-03-04T05:06:07.123", datetime(2024, 3, 4, 5, 6, 7, 123000)),
        ("2024-03-04T05:06:07.1234567", datetime(2024, 3, 4, 5, 6, 7, 123456)),
        ("2024-03-04 05:06:07", datetime(2024, 3, 4, 5, 6, 7)),
        ("2024-03-04", datetime(2024, 3, 4)),
        ("2024-03-04T05:06:07Z", datetime(2024, 3, 4, 5, 6, 7)),
        ("2024-03-04T05:06:07-05:00", datetime(2024, 3, 4, 10, 6, 7)),
        ("3/4/2024 5:06:07 AM", datetime(2024, 3, 4, 5, 6, 7)),
        ("3/4/2024 5:06:07 PM", datetime(2024, 3, 4, 17, 6, 7)),
        ("03/04/2024 12:00:01 AM", datetime(2024, 3, 4, 0, 0, 1)),
        ("3/4/2024 12:30:00 pm", datetime(2024, 3, 4, 12, 30)),
        ("3/4/2024 17:06:07", datetime(2024, 3, 4, 17, 6, 7)),
        ("3/4/2024", datetime(2024, 3, 4)),
    ],
)
def test_service_datetime_forms(text: str, expected: datetime) -> None:
    assert parse_service_datetime(text) == expected


@pytest.mark.parametrize("text", ["2024-02-30T00:00:00", "13/1/2024 1:00:00 PM", "3/4/2024 13:00:00 PM",
                                  "yesterday", "2024-03-04T05:06:07+5", "1712345678"])
def test_bad_datetimes_raise(text: str) -> None:
    with pytest.raises(ValueError):
        parse_service_datetime(text)


def test_string_dates_in_mixed_formats_all_parse() -> None:
    table = read(get_stream("message_opens"), opens("2024-03-04T05:06:07.5", "3/4/2024 5:06:07 PM",
                                                     "2024-03-04T05:06:07.1234567"))
    assert table.column("OpenDate").to_pylist() == [
        datetime(2024, 3, 4, 5, 6, 7, 500000, tzinfo=UTC),
        datetime(2024, 3, 4, 17, 6, 7, tzinfo=UTC),
        datetime(2024, 3, 4, 5, 6, 7, 123456, tzinfo=UTC),
    ]


def test_unparseable_value_names_field_and_value() -> None:
    # Permanent, not transient: the same page would hold the same value on every retry.
    with pytest.raises(UnreadableValueError) as info:
        read(get_stream("message_opens"), opens("2024-03-04T05:06:07", "last tuesday"))
    assert "OpenDate" in str(info.value) and "'last tuesday'" in str(info.value)
    bounces = get_stream("message_bounces")
    body = response(bounces, "<WSContactBounce><EmailAddress>a@b.c</EmailAddress><BounceCount>two</BounceCount>"
                             "</WSContactBounce>")
    with pytest.raises(UnreadableValueError, match="BounceCount='two'"):
        read(bounces, body)


def test_source_timezone_reads_wall_time_and_converts() -> None:
    table = read(get_stream("message_opens"), opens("2024-07-01T12:00:00", "2024-01-15T12:00:00",
                                                     "3/10/2024 2:30:00 AM", "2024-11-03T01:30:00"),
                 "America/New_York")
    assert table.column("OpenDate").to_pylist() == [
        datetime(2024, 7, 1, 16, tzinfo=UTC),  # EDT
        datetime(2024, 1, 15, 17, tzinfo=UTC),  # EST
        datetime(2024, 3, 10, 7, tzinfo=UTC),  # in the spring gap: the first instant after it
        datetime(2024, 11, 3, 5, 30, tzinfo=UTC),  # twice that night: the first (EDT)
    ]


def test_lists_nested_vmta_repeated_domains_booleans_and_missing_optionals() -> None:
    lists = get_stream("lists")
    flags = "".join(f"<{c.name}>{v}</{c.name}>" for c, v in zip(
        [c for c in lists.columns if c.type is ColumnType.BOOL], ["true", "false", "1", "0"] * 4, strict=False))
    first = (f"<WSContactList><ListID>7</ListID><ListName>News &amp; Offers</ListName>"
             f"<CreateDate>2024-01-02T03:04:05.12</CreateDate><bounceHandling>2</bounceHandling>"
             f"<Vmta><VmtaID>3</VmtaID><Description>Pool A</Description></Vmta>"
             f"<BounceUnsubscribeCount>4</BounceUnsubscribeCount>{flags}"
             f"<GoogleTrackingDomains>a.com</GoogleTrackingDomains><GoogleTrackingDomains>b.com</GoogleTrackingDomains>"
             f"<FutureElement>ignored</FutureElement></WSContactList>")
    second = (f"<WSContactList><ListID>8</ListID><CreateDate>2024-01-02T00:00:00</CreateDate>"
              f"<bounceHandling>0</bounceHandling><BounceUnsubscribeCount>0</BounceUnsubscribeCount>{flags}"
              f"</WSContactList>")
    table = read(lists, response(lists, first + '<WSContactList xsi:nil="true" />' + second))
    assert table.schema == arrow_schema(lists)
    rows = table.to_pylist()
    assert [r["ListID"] for r in rows] == [7, 8]
    assert rows[0]["ListName"] == "News & Offers" and rows[1]["ListName"] is None
    assert rows[0]["CreateDate"] == datetime(2024, 1, 2, 3, 4, 5, 120000, tzinfo=UTC)
    assert (rows[0]["VmtaID"], rows[0]["VmtaDescription"]) == (3, "Pool A")
    assert (rows[1]["VmtaID"], rows[1]["VmtaDescription"]) == (None, None)
    assert rows[0]["GoogleTrackingDomains"] == ["a.com", "b.com"] and rows[1]["GoogleTrackingDomains"] == []
    assert [rows[0][c.name] for c in lists.columns if c.type is ColumnType.BOOL][:4] == [True, False, True, False]


def test_items_are_read_by_local_name_in_any_order_and_namespace_form() -> None:
    clicks = get_stream("message_clicks")
    items = ("<WSContactClick><ClickDate>2024-01-01T00:00:00</ClickDate><LinkUrl>https://x.io/?a=1&amp;b=2</LinkUrl>"
             "<EmailAddress>a@x.io</EmailAddress><!-- a comment --></WSContactClick>"
             '<WSContactClick xsi:nil="true" />'
             '<v:WSContactClick xmlns:v="urn:other"><v:EmailAddress>b@x.io</v:EmailAddress><v:LinkDescription/>'
             "</v:WSContactClick>")
    rows = read(clicks, response(clicks, items)).to_pylist()
    assert rows[0] == {"ContactID": None, "EmailAddress": "a@x.io", "LinkDescription": None,
                       "LinkUrl": "https://x.io/?a=1&b=2", "ClickDate": datetime(2024, 1, 1, tzinfo=UTC)}
    assert len(rows) == 2 and rows[1]["EmailAddress"] == "b@x.io" and rows[1]["LinkDescription"] == ""
    complete = ("<WSContactOpen><ContactID>1</ContactID><EmailAddress>a</EmailAddress><OpenDate>2024-01-01</OpenDate>"
                "</WSContactOpen>")
    opens_stream = get_stream("message_opens")
    assert read(opens_stream, response(opens_stream, complete + '<WSContactOpen xsi:nil="true"/>' + complete)
                ).num_rows == 2


@pytest.mark.parametrize("stream", [s for s in STREAMS if s.paged], ids=lambda s: s.name)
def test_empty_or_missing_result_is_zero_rows(stream: Stream) -> None:
    for body in (response(stream, ""), response(stream, "", result=False),
                 response(stream, "", extra='<WSException xsi:nil="true" />')):
        table = read(stream, body)
        assert table.num_rows == 0 and table.schema == item_schema(stream)


def test_required_element_missing_is_unreadable_not_retried() -> None:
    contacts = get_stream("subscribed_contacts")
    body = response(contacts, "<WSContactSubscriptionInfo><ContactID>1</ContactID></WSContactSubscriptionInfo>")
    with pytest.raises(UnreadableValueError, match="no AdditionDate"):
        read(contacts, body)


def test_repeated_single_element_is_unreadable_not_retried() -> None:
    opens_stream = get_stream("message_opens")
    body = response(opens_stream, "<WSContactOpen><EmailAddress>a</EmailAddress><EmailAddress>b</EmailAddress>"
                                  "</WSContactOpen><WSContactOpen><OpenDate>2024-01-01</OpenDate></WSContactOpen>")
    with pytest.raises(UnreadableValueError, match="repeats"):
        read(opens_stream, body)


def test_fast_and_general_paths_agree() -> None:
    stream = get_stream("message_unsubs")
    full = ("<WSContactRemovalInfo><ContactID>{i}</ContactID><EmailAddress>e{i}</EmailAddress>"
            "<AdditionDate>2024-01-01T00:00:0{i}</AdditionDate><RemovalDate>2024-02-01T00:00:00.{i}</RemovalDate>"
            "<RemovalMethod>m{i}</RemovalMethod></WSContactRemovalInfo>")
    complete = "".join(full.format(i=i) for i in range(5))
    reordered = complete.replace("<RemovalMethod>m4</RemovalMethod>", "").replace(
        "<ContactID>4</ContactID>", "<RemovalMethod>m4</RemovalMethod><ContactID>4</ContactID>")
    assert read(stream, response(stream, complete)) == read(stream, response(stream, reordered))


def test_faults_and_ws_exceptions_are_found() -> None:
    body = (f'<soap:Envelope xmlns:soap="{SOAP}"><soap:Body><soap:Fault><faultcode>soap:Client</faultcode>'
            "<faultstring>[AccessDenied] no</faultstring><detail><a>more</a> <b>text</b></detail></soap:Fault>"
            "</soap:Body></soap:Envelope>").encode()
    fault = find_fault(body_payload(parse_xml(body)))
    assert fault is not None and (fault.code, fault.text, fault.detail) == ("Client", "[AccessDenied] no", "more text")
    sends = get_stream("message_sends")
    wrapper = response_wrapper(body_payload(parse_xml(response(
        sends, "", extra="<WSException><SoapMethod>M</SoapMethod><Description>Bad MsgID</Description></WSException>"))),
        sends.operation)
    assert ws_exception(wrapper) == "Bad MsgID (in M)"
    for quiet in ('<WSException xsi:nil="true" />', "<WSException />", ""):
        quiet_wrapper = body_payload(parse_xml(response(sends, "", extra=quiet)))
        assert ws_exception(quiet_wrapper) is None
    with pytest.raises(MalformedResponseError, match="Expected ReportMessageContactSentResponse"):
        response_wrapper(body_payload(parse_xml(response(get_stream("lists"), ""))), sends.operation)
    with pytest.raises(MalformedResponseError, match="not a SOAP envelope"):
        body_payload(parse_xml(b"<html><body>hi</body></html>"))


@pytest.mark.parametrize(("value", "replaced"), [
    (b"x&#1;y", 1), (b"x&#x1b;&#x1B;y", 2), (b"x\x01y", 1), (b"x\x00y", 1), (b"x&#0;y", 1),
    (b"x&#xD800;y", 1), (b"x&#xFFFE;y", 1), (b"x\xff y", 1),
])
def test_characters_xml_forbids_become_u_fffd_and_are_counted(value: bytes, replaced: int) -> None:
    root, count = parse_answer(b"<a><b>" + value + b"</b><c>&#x41;&#9;\xef\xbf\xbd</c></a>")
    assert count == replaced
    assert root[0].text.count("\ufffd") == replaced and root[0].text.startswith("x")
    assert root[1].text == "A\t\ufffd"  # allowed references and a U+FFFD that was sent stay as they were


def test_an_answer_ill_formed_for_another_reason_stays_malformed() -> None:
    with pytest.raises(MalformedResponseError, match="truncated"):
        parse_answer(b"<a><b>x&#1;y</b><c>")
    with pytest.raises(MalformedResponseError):  # not UTF-8 as declared: not repaired
        parse_answer(b"<?xml version='1.0' encoding='latin-1'?><a>\x01</a>")
