"""A full 2,500-row page of every paged operation, under both profiles, through the service's
whole request path (parse, authenticate, query, render).

The account and requests here are also what ``benchmarks/simulator_cpu.py`` times: serving such a
page must cost the simulator well under 50 ms of CPU, so that benchmarks measure the client.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pytest
from conftest import call_body, envelope

from listrak_sync.simulator.access import AccessControl
from listrak_sync.simulator.data import Account
from listrak_sync.simulator.profile import Profile
from listrak_sync.simulator.service import IntegrationService
from listrak_sync.streams import NAMESPACE, STREAMS, RequestKind, Stream

PAGE = 2500
# The pessimistic profile writes US string dates and Eastern times (one page size for all here).
PROFILES = [Profile.friendly(), Profile.pessimistic().replace(page_size_factors=())]
PAGED = [s for s in STREAMS if s.paged]


class TiledAccount(Account):
    """The tiny account with every event and contact list repeated to more than a page's worth."""

    def events(self, stream: str, msg_id: int, start: datetime | None = None,
               end: datetime | None = None) -> Sequence[dict]:
        rows = list(super().events(stream, msg_id, start, end))
        return (rows * (PAGE // max(len(rows), 1) + 1))[: PAGE + 1] if rows else rows

    def subscribed_contacts(self, list_id: int, start: datetime, end: datetime) -> Sequence[dict]:
        rows = list(super().subscribed_contacts(list_id, start, end))
        return (rows * (PAGE // max(len(rows), 1) + 1))[: PAGE + 1]


def request_for(account: Account, stream: Stream) -> bytes:
    wide = {"StartDate": "2020-01-01", "EndDate": "2030-01-01"}
    list_id = account.list_ids()[0]
    messages = account.messages(list_id, datetime(2020, 1, 1), datetime(2030, 1, 1))
    msg_id = 0
    if stream.request is not RequestKind.LIST_RANGE_PAGED:
        msg_id = next(m["MsgID"] for m in messages if Account.events(account, stream.name, m["MsgID"]))
    params = {
        RequestKind.MESSAGE_RANGE_PAGED: {"MsgID": msg_id, "Page": 1, **wide},
        RequestKind.MESSAGE_PAGED: {"MsgID": msg_id, "Page": 1, "WSException": None},
        RequestKind.LIST_RANGE_PAGED: {"ListID": list_id, "Page": 1, **wide},
    }[stream.request]
    return envelope(call_body(stream.operation, **params))


def full_page(stream: Stream, profile: Profile) -> tuple[IntegrationService, bytes, str]:
    """A service whose every page is full, with the body and SOAPAction of ``stream``'s first page."""
    account = TiledAccount(seed=1, scale="tiny", profile=profile)
    service = IntegrationService(account, AccessControl(), page_size=PAGE)
    return service, request_for(account, stream), f'"{NAMESPACE}{stream.operation}"'


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
@pytest.mark.parametrize("stream", PAGED, ids=lambda s: s.name)
def test_a_full_page_holds_every_row(stream: Stream, profile: Profile) -> None:
    service, body, action = full_page(stream, profile)
    response = service.execute(service.parse(body, "text/xml; charset=utf-8", action), "127.0.0.1")
    assert response.count(f"<{stream.item_element}>".encode()) == PAGE
