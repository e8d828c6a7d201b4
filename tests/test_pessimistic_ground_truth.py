"""``Account.ground_truth`` is what a perfect client reads over HTTP, under every profile.

The client here reads everything visible with raw SOAP (wide windows, every page until an empty
or omitted Result, string dates parsed in whichever format the service writes) and must end up
with exactly the ground-truth rows: after the first run and after clock moves that delete
messages, withdraw a list, bring back contacts and let late events arrive. Every pessimistic
response also validates against the WSDL's schema, and the pessimistic simulator is as
deterministic as the friendly one.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import pytest
import xmlschema
from conftest import SoapCaller, SoapResponse
from lxml import etree

from listrak_sync.simulator import Profile, Simulator
from listrak_sync.simulator.data import DEFAULT_NOW, HORIZON, Account
from listrak_sync.simulator.generate import from_us
from listrak_sync.streams import NAMESPACE, STREAMS, Column, ColumnType, RequestKind, Stream, get_stream

NS = f"{{{NAMESPACE}}}"
START = datetime(2020, 1, 1)
WIDE = {"StartDate": "2019-12-01T00:00:00", "EndDate": "2031-01-01T00:00:00"}
MESSAGE_STREAMS = [s for s in STREAMS if s.parent == "messages"]


def value(column: Column, element: etree._Element | None) -> Any:
    if element is None:
        return None
    raw = element.text or ""
    if column.type is ColumnType.INT:
        return int(raw)
    if column.type is ColumnType.FLOAT:
        return float(raw)
    if column.type is ColumnType.BOOL:
        return raw == "true"
    if column.type is ColumnType.TIMESTAMP:
        if "/" in raw:  # the US format of the string-typed dates
            return datetime.strptime(raw, "%m/%d/%Y %I:%M:%S %p")
        return datetime.fromisoformat(raw)
    return raw


def parse_item(item: etree._Element, stream: Stream) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for column in stream.columns:
        if column.type is ColumnType.TEXT_LIST:
            row[column.name] = [e.text for e in item.findall(NS + column.name)]
            continue
        element: etree._Element | None = item
        for part in column.path:
            element = element.find(NS + part) if element is not None else None
        row[column.name] = value(column, element)
    return row


class PerfectClient:
    """Reads every row the service shows, checking each response against the WSDL schema."""

    def __init__(self, soap: SoapCaller, schema: xmlschema.XMLSchema) -> None:
        self.soap, self.schema = soap, schema

    def call(self, stream: Stream, **params: Any) -> list[dict[str, Any]]:
        response: SoapResponse = self.soap.call(stream.operation, **params)
        assert response.status == 200, response.content[:300]
        errors = [str(e.reason) for e in self.schema.iter_errors(etree.tostring(response.payload).decode())]
        assert not errors, errors[:3]
        result = response.payload.find(NS + stream.result_element)
        if stream.has_ws_exception:
            exception = response.payload.find(NS + "WSException")
            assert exception is not None and len(exception) == 0, "no refusal expected"
        return [] if result is None else [parse_item(item, stream) for item in result]

    def pages(self, stream: Stream, **params: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for page in range(1, 1000):
            found = self.call(stream, Page=page, **params)
            if not found:
                return rows
            rows += found
        raise AssertionError("paging never ended")

    def replicate(self) -> dict[str, list[dict[str, Any]]]:
        tables: dict[str, list[dict[str, Any]]] = defaultdict(list)
        tables["lists"] = self.call(get_stream("lists"))
        for lst in tables["lists"]:
            list_id = lst["ListID"]
            messages = self.call(get_stream("messages"), ListID=list_id, IncludeTestMessages="true",
                                 WSException=None, **WIDE)
            tables["messages"] += messages
            tables["subscribed_contacts"] += [{"ListID": list_id, **row} for row in self.pages(
                get_stream("subscribed_contacts"), ListID=list_id, **WIDE)]
            for message in messages:
                for stream in MESSAGE_STREAMS:
                    params = WIDE if stream.request is RequestKind.MESSAGE_RANGE_PAGED else {"WSException": None}
                    tables[stream.name] += [{"MsgID": message["MsgID"], **row} for row in self.pages(
                        stream, MsgID=message["MsgID"], **params)]
        return tables


def canonical(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(repr(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in row.items())) for row in rows)


@pytest.mark.parametrize("profile", [Profile.friendly(), Profile.pessimistic()], ids=lambda p: p.name)
def test_a_perfect_client_reads_exactly_the_ground_truth_across_clock_moves(
        profile: Profile, wsdl_schema: xmlschema.XMLSchema) -> None:
    with Simulator(scale="tiny", page_size=6, profile=profile) as sim:
        client = PerfectClient(SoapCaller(sim.url), wsdl_schema)
        seen: dict[str, set[str]] = defaultdict(set)
        first_after = min(m["SendDate"] for m in Account(profile=profile, scale="tiny", now=HORIZON)
                          .ground_truth("messages", sim.account.service_now))
        busy = from_us(sim.account.clock.internal_us(first_after)) + timedelta(hours=3)  # reactions pour in
        for moment in (DEFAULT_NOW, busy, DEFAULT_NOW + timedelta(days=3), DEFAULT_NOW + timedelta(days=30)):
            sim.set_now(moment)
            truth = sim.account.expected_tables(START)
            if moment == busy and profile.event_delay_hours:
                instant = Account(profile=profile.replace(event_delay_hours=0), scale="tiny", now=moment)
                assert len(instant.expected_tables(START)["message_opens"]) > len(truth["message_opens"])
            read = client.replicate()
            for table, rows in truth.items():
                assert canonical(read[table]) == canonical(rows), (table, moment)
                seen[table] |= set(canonical(rows))
        assert all(seen.values())


def test_pessimistic_changes_show_in_the_ground_truth() -> None:
    """Between runs the pessimistic account loses a list and a message, and gains late events."""
    with Simulator(scale="tiny", profile="pessimistic") as sim:
        first = sim.account.expected_tables(START)
        sim.advance(3)
        later = sim.account.expected_tables(START)
    assert len(later["lists"]) == len(first["lists"]) - 1
    old_ids = {m["MsgID"] for m in first["messages"]}
    assert old_ids - {m["MsgID"] for m in later["messages"]}, "a message was deleted"
    late = [r for r in later["message_opens"] if r["MsgID"] in old_ids and r not in first["message_opens"]]
    assert late, "old messages gained opens"
    assert all(isinstance(r["OpenDate"], datetime) and not r["OpenDate"].microsecond for r in late)


def test_pessimistic_responses_are_deterministic() -> None:
    def bodies() -> list[bytes]:
        with Simulator(scale="tiny", seed=4, page_size=5, profile="pessimistic") as sim:
            soap = SoapCaller(sim.url)
            out = [soap.call("GetContactListCollection").content]
            for list_id in sim.account.list_ids():
                for message in sim.account.messages(list_id, START, datetime(2031, 1, 1))[:3]:
                    for stream in MESSAGE_STREAMS:
                        params = WIDE if stream.request is RequestKind.MESSAGE_RANGE_PAGED else {"WSException": None}
                        out.append(soap.call(stream.operation, MsgID=message["MsgID"], Page=1, **params).content)
            sim.advance(3)
            out += [soap.call("ReportListMessageActivity", ListID=lid, IncludeTestMessages="true",
                              WSException=None, **WIDE).content for lid in sim.account.list_ids()]
            return out

    assert bodies() == bodies()
