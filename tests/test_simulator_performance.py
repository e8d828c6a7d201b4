"""Serving a 2,500-row page costs the simulator well under 50 ms of CPU, so benchmarks measure
the client. Measured in-process through the service's full request path (parse, authenticate,
query, render), best of several runs to keep scheduler noise out."""

from __future__ import annotations

import time
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
CPU_BUDGET_SECONDS = 0.050
# The pessimistic profile writes US string dates and Eastern times (one page size for all here).
PROFILES = [Profile.friendly(), Profile.pessimistic().replace(page_size_factors=())]


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


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
@pytest.mark.parametrize("stream", [s for s in STREAMS if s.paged], ids=lambda s: s.name)
def test_a_full_page_costs_well_under_50_ms_of_cpu(stream: Stream, profile: Profile) -> None:
    account = TiledAccount(seed=1, scale="tiny", profile=profile)
    service = IntegrationService(account, AccessControl(), page_size=PAGE)
    body = request_for(account, stream)
    action = f'"{NAMESPACE}{stream.operation}"'
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        response = service.execute(service.parse(body, "text/xml; charset=utf-8", action), "127.0.0.1")
        best = min(best, time.process_time() - started)
    assert response.count(f"<{stream.item_element}>".encode()) == PAGE
    assert best < CPU_BUDGET_SECONDS, f"{stream.operation}: {best * 1000:.1f} ms of CPU for {PAGE} rows"
