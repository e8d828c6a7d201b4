"""zeep, an independent SOAP client, against the running simulator: every operation, the shapes
docs/listrak-api.md §10 describes, and values equal to the account's own rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import zeep
from zeep.helpers import serialize_object

from listrak_sync.simulator import DEFAULT_PASSWORD, DEFAULT_USERNAME, Simulator
from listrak_sync.simulator.service import CHARACTER_SETS
from listrak_sync.streams import STREAMS, ColumnType, RequestKind, Stream, get_stream

HEADER = {"WSUser": {"UserName": DEFAULT_USERNAME, "Password": DEFAULT_PASSWORD}}
START, END = datetime(2020, 1, 1), datetime(2030, 1, 1)
PAGED_MESSAGE_STREAMS = [s for s in STREAMS if s.request in (RequestKind.MESSAGE_RANGE_PAGED,
                                                             RequestKind.MESSAGE_PAGED)]


@pytest.fixture
def client(simulator: Simulator) -> zeep.Client:
    return zeep.Client(simulator.wsdl_url)


def as_row(item: Any, stream: Stream) -> dict[str, Any]:
    """A zeep item as a row of the stream table (Vmta flattened, string dates parsed)."""
    data = serialize_object(item, dict)
    row: dict[str, Any] = {}
    for column in stream.columns:
        value = data
        for part in column.path:
            value = value.get(part) if value is not None else None
        if column.type is ColumnType.TIMESTAMP and isinstance(value, str):
            value = datetime.fromisoformat(value)
        if column.type is ColumnType.TEXT_LIST:
            value = list(value or [])
        row[column.name] = value
    return row


def truth_row(row: dict[str, Any], stream: Stream) -> dict[str, Any]:
    return {c.name: (list(row.get(c.name) or []) if c.type is ColumnType.TEXT_LIST else row.get(c.name))
            for c in stream.columns}


def all_messages(sim: Simulator) -> list[dict[str, Any]]:
    return [m for list_id in sim.account.list_ids() for m in sim.account.messages(list_id, START, END)]


def busiest_message(sim: Simulator, stream: Stream) -> int:
    return max(all_messages(sim), key=lambda m: len(sim.account.events(stream.name, m["MsgID"])))["MsgID"]


def zeep_pages(call: Any, stream: Stream, **params: Any) -> Iterator[list[Any]]:
    """Pages 1, 2, ... as the singer tap reads them: stop at the first empty page."""
    for page in range(1, 1000):
        result = call(Page=page, _soapheaders=HEADER, **params)
        if stream.has_ws_exception:
            assert set(result) == {stream.result_element, "WSException"}
            result = result[stream.result_element]
            result = result[stream.item_element] if result is not None else None
        if not result:
            return
        yield result
    raise AssertionError("paging never ended")


def test_collection_is_a_plain_list_equal_to_the_account(simulator: Simulator, client: zeep.Client) -> None:
    stream = get_stream("lists")
    lists = client.service.GetContactListCollection(_soapheaders=HEADER)
    assert isinstance(lists, list)
    assert [as_row(item, stream) for item in lists] == [truth_row(r, stream) for r in simulator.account.lists()]


def test_get_contact_list_returns_one_list(simulator: Simulator, client: zeep.Client) -> None:
    stream = get_stream("lists")
    for row in simulator.account.lists():
        item = client.service.GetContactList(ListID=row["ListID"], _soapheaders=HEADER)
        assert as_row(item, stream) == truth_row(row, stream)


def test_message_activity_is_a_wrapper_with_result_and_nil_exception(simulator: Simulator,
                                                                      client: zeep.Client) -> None:
    stream = get_stream("messages")
    for list_id in simulator.account.list_ids():
        response = client.service.ReportListMessageActivity(
            ListID=list_id, StartDate=START, EndDate=END, IncludeTestMessages=True, WSException=None,
            _soapheaders=HEADER)
        assert list(response) == ["ReportListMessageActivityResult", "WSException"]
        assert all(value is None for value in serialize_object(response["WSException"], dict).values())
        items = response["ReportListMessageActivityResult"]["WSMessageActivity"]
        expected = simulator.account.messages(list_id, START, END, True)
        assert [as_row(i, stream) for i in items] == [truth_row(r, stream) for r in expected]


@pytest.mark.parametrize("stream", PAGED_MESSAGE_STREAMS, ids=lambda s: s.name)
def test_message_reports_page_through_every_event(simulator: Simulator, client: zeep.Client,
                                                   stream: Stream) -> None:
    msg_id = busiest_message(simulator, stream)
    call = getattr(client.service, stream.operation)
    params: dict[str, Any] = {"MsgID": msg_id}
    if stream.request is RequestKind.MESSAGE_RANGE_PAGED:
        params.update(StartDate=START, EndDate=END)
        expected = simulator.account.events(stream.name, msg_id, START, END)
    else:
        params.update(WSException=None)
        expected = simulator.account.events(stream.name, msg_id)
    pages = list(zeep_pages(call, stream, **params))
    assert pages, "the busiest message should have events"
    assert all(isinstance(page, list) for page in pages)
    assert [len(p) for p in pages[:-1]] == [simulator.page_size] * (len(pages) - 1)
    assert [as_row(i, stream) for page in pages for i in page] == [truth_row(r, stream) for r in expected]


def test_subscribed_contacts_page_through_every_contact(simulator: Simulator, client: zeep.Client) -> None:
    stream = get_stream("subscribed_contacts")
    for list_id in simulator.account.list_ids():
        pages = list(zeep_pages(client.service.ReportRangeSubscribedContacts, stream,
                                ListID=list_id, StartDate=START, EndDate=END))
        expected = simulator.account.subscribed_contacts(list_id, START, END)
        assert [as_row(i, stream) for page in pages for i in page] == [truth_row(r, stream) for r in expected]


def test_pages_past_the_end_are_empty(simulator: Simulator, client: zeep.Client) -> None:
    msg_id = all_messages(simulator)[0]["MsgID"]
    assert client.service.ReportRangeMessageContactOpen(
        MsgID=msg_id, StartDate=START, EndDate=END, Page=99, _soapheaders=HEADER) is None
    sent = client.service.ReportMessageContactSent(MsgID=msg_id, Page=99, WSException=None, _soapheaders=HEADER)
    assert list(sent) == ["ReportMessageContactSentResult", "WSException"]
    assert sent["ReportMessageContactSentResult"] is None


def test_connection_check_operations(simulator: Simulator, client: zeep.Client) -> None:
    charsets = client.service.GetCharacterSetCollection(_soapheaders=HEADER)
    assert [(c.CharacterSetID, c.Name) for c in charsets] == list(CHARACTER_SETS)
    vmtas = client.service.GetAccountVmtaCollection(WSException=None, _soapheaders=HEADER)
    expected = {r["VmtaID"]: r["VmtaDescription"] for r in simulator.account.lists() if r["VmtaID"] is not None}
    assert {v.VmtaID: v.Description for v in vmtas["GetAccountVmtaCollectionResult"]["WSVmta"]} == expected


def test_soap12_binding_gives_the_same_answers(simulator: Simulator, client: zeep.Client) -> None:
    soap12 = client.bind("IntegrationService", "IntegrationServiceSoap12")
    stream = get_stream("message_opens")
    msg_id = busiest_message(simulator, stream)
    for service in (client.service, soap12):
        lists = service.GetContactListCollection(_soapheaders=HEADER)
        assert [item.ListID for item in lists] == simulator.account.list_ids()
        page = service.ReportRangeMessageContactOpen(MsgID=msg_id, StartDate=START, EndDate=END, Page=1,
                                                     _soapheaders=HEADER)
        assert [as_row(i, stream) for i in page] == [
            truth_row(r, stream) for r in simulator.account.events(stream.name, msg_id, START, END)[:7]]
    assert simulator.stats()["requests"]["ReportRangeMessageContactOpen"] == 2


def test_zeep_sees_the_bracketed_fault_token(simulator: Simulator, client: zeep.Client) -> None:
    bad = {"WSUser": {"UserName": DEFAULT_USERNAME, "Password": "not-it"}}
    with pytest.raises(zeep.exceptions.Fault) as raised:
        client.service.GetContactListCollection(_soapheaders=bad)
    assert "[InvalidLogonAttempt]" in raised.value.message
    assert raised.value.code == "soap:Client"
