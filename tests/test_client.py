"""The SOAP client: fault classification, retries, paging, hardened parsing, secrecy.

Against the simulator over real HTTP where it can produce the case, and against a tiny canned
HTTP server on loopback for bodies no honest service sends (XML bombs, SOAP 1.2 faults, HTML
error pages, in-band WSExceptions).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import settings_for

from listrak_sync.errors import (
    InvalidLogonError,
    ListrakSyncError,
    LoginAttemptsExceededError,
    MalformedResponseError,
    ObjectRefusedError,
    ProhibitedIPError,
    ServerFaultError,
    ServiceFaultError,
    ServiceUnavailableError,
    TransportError,
    WrongEndpointError,
)
from listrak_sync.simulator import DEFAULT_PASSWORD, DEFAULT_USERNAME, Simulator, User
from listrak_sync.simulator.data import EPOCH
from listrak_sync.soap.client import ListrakClient
from listrak_sync.soap.parse import parse_xml
from listrak_sync.streams import NAMESPACE, get_stream

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
LISTS = get_stream("lists")
SENDS = get_stream("message_sends")
OPENS = get_stream("message_opens")


def soap_body(inner: str) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{SOAP}" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            f"<soap:Body>{inner}</soap:Body></soap:Envelope>").encode()


def fault(text: str, code: str = "soap:Client") -> bytes:
    return soap_body(f"<soap:Fault><faultcode>{code}</faultcode><faultstring>{text}</faultstring>"
                     "<detail /></soap:Fault>")


class CannedServer:
    """A loopback HTTP server answering each POST with the next queued response."""

    def __init__(self) -> None:
        self.responses: deque[tuple[int, bytes, dict[str, str]]] = deque()
        self.requests: list[tuple[dict[str, str], bytes]] = []
        canned = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                canned.requests.append((dict(self.headers), body))
                status, payload, headers = canned.responses.popleft() if canned.responses else (500, b"", {})
                self.send_response(status)
                headers = {"Content-Type": "text/xml; charset=utf-8", **headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v31/IntegrationService.asmx"

    def add(self, status: int, body: bytes, **headers: str) -> None:
        self.responses.append((status, body, headers))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def canned() -> Iterator[CannedServer]:
    server = CannedServer()
    yield server
    server.close()


def lists_response(items: str = "") -> bytes:
    return soap_body(f'<GetContactListCollectionResponse xmlns="{NAMESPACE}"><GetContactListCollectionResult>'
                     f"{items}</GetContactListCollectionResult></GetContactListCollectionResponse>")


# -- hardened parsing --------------------------------------------------------------------------


def test_xml_bombs_and_external_entities_are_refused(tmp_path: Path, canned: CannedServer) -> None:
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("TOP-SECRET-FILE-CONTENT")
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    bombs = [
        f'<?xml version="1.0"?><!DOCTYPE soap:Envelope [<!ENTITY l0 "lol">{laughs}]>'.encode()
        + soap_body("<x>&l9;</x>").split(b"?>", 1)[1],
        f'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file://{secret_file}">]>'.encode()
        + soap_body("<x>&x;</x>").split(b"?>", 1)[1],
    ]
    for bomb in bombs:
        with pytest.raises(MalformedResponseError, match="DTD") as info:
            parse_xml(bomb)
        assert "TOP-SECRET" not in str(info.value)
        canned.add(200, bomb)
        with ListrakClient(settings_for(canned.url, max_retries=0)) as client, \
                pytest.raises(MalformedResponseError) as info:
            client.fetch(LISTS)
        assert "TOP-SECRET" not in str(info.value)


@pytest.mark.parametrize("body", [b"", b"<soap:Envelope", b"not xml at all", lists_response()[:-40]])
def test_truncated_or_garbage_200_is_malformed_and_retried(canned: CannedServer, body: bytes) -> None:
    for _ in range(3):
        canned.add(200, body)
    with ListrakClient(settings_for(canned.url, max_retries=2)) as client, pytest.raises(MalformedResponseError):
        client.fetch(LISTS)
    assert len(canned.requests) == 3
    assert client.stats.as_dict()["retries"] == 2


# -- fault classification ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "scope", "error", "retried"),
    [
        (500, fault("[InvalidLogonAttempt] bad login"), None, InvalidLogonError, False),
        (500, fault("[InvalidLogonAttempt] bad login"), ("list", 5), InvalidLogonError, False),
        (500, fault("Access refused [LoginAttemptsExceeded]"), None, LoginAttemptsExceededError, False),
        (500, fault("[ProhibitedIPAddress] 1.2.3.4", "soap:Server"), None, ProhibitedIPError, False),
        (500, fault("[AccessDenied] ListID 5"), ("list", 5), ObjectRefusedError, False),
        (500, fault("[AccessDenied] ListID 5"), None, ServiceFaultError, False),
        (500, fault("Some client error"), ("message", 9), ObjectRefusedError, False),
        (500, fault("Server was unable to process request. ---> 404 - File or directory not found.",
                    "soap:Server"), ("message", 9), ObjectRefusedError, False),
        (500, fault("Server was unable to process request. ---> timeout", "soap:Server"), None, ServerFaultError, True),
        (500, fault("Server was unable to process request. ---> MsgID 14045 timed out", "soap:Server"),
         ("message", 14045), ServerFaultError, True),
        (500, soap_body('<soap:Fault xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Code><soap:Value>'
                        "soap:Sender</soap:Value></soap:Code><soap:Reason><soap:Text>[InvalidLogonAttempt]"
                        "</soap:Text></soap:Reason></soap:Fault>"), None, InvalidLogonError, False),
        (502, b"<html><body>Bad gateway</body></html>", None, ServerFaultError, True),
        (503, b"<html>busy</html>", None, ServiceUnavailableError, True),
        (429, b"", None, ServiceUnavailableError, True),
        (404, b"<html>Not found</html>", None, WrongEndpointError, False),
    ],
)
def test_faults_are_classified_once_and_only_transient_ones_retried(
    canned: CannedServer, status: int, body: bytes, scope: tuple[str, int] | None, error: type, retried: bool
) -> None:
    for _ in range(3):
        canned.add(status, body)
    with ListrakClient(settings_for(canned.url, max_retries=2)) as client, pytest.raises(error) as info:
        client.call("GetContactListCollection", {}, scope=scope)
    assert type(info.value) is error
    assert len(canned.requests) == (3 if retried else 1)
    if scope is not None and error is ObjectRefusedError:
        assert isinstance(info.value, ObjectRefusedError)
        assert (info.value.kind, info.value.object_id) == scope
        assert f"{scope[0]} {scope[1]}" in str(info.value)


def test_access_error_messages_say_what_to_do(canned: CannedServer) -> None:
    expectations = [
        ("[InvalidLogonAttempt]", ["LISTRAK_USERNAME/LISTRAK_PASSWORD", "lock", repr(DEFAULT_USERNAME)]),
        ("[ProhibitedIPAddress]", ["Manage > Accounts > SOAP API IP Authorization"]),
        ("[LoginAttemptsExceeded]", ["locked", "unlock"]),
    ]
    for token, words in expectations:
        canned.add(500, fault(token))
        with ListrakClient(settings_for(canned.url)) as client, pytest.raises(ListrakSyncError) as info:
            client.fetch(LISTS)
        assert all(word in str(info.value) for word in words), str(info.value)
        assert "\n" not in str(info.value)


def test_in_band_ws_exception(canned: CannedServer) -> None:
    response = soap_body(
        f'<ReportMessageContactSentResponse xmlns="{NAMESPACE}"><ReportMessageContactSentResult />'
        "<WSException><SoapMethod>ReportMessageContactSent</SoapMethod><DateTime>2024-01-01T00:00:00</DateTime>"
        "<Description>Message 77 is not available</Description></WSException></ReportMessageContactSentResponse>"
    )
    canned.add(200, response)
    canned.add(200, response)
    with ListrakClient(settings_for(canned.url)) as client:
        with pytest.raises(ObjectRefusedError, match="Message 77 is not available") as info:
            client.fetch(SENDS, scope=("message", 77), MsgID=77, Page=1)
        assert info.value.object_id == 77
        with pytest.raises(ServiceFaultError, match="Message 77 is not available"):
            client.fetch(SENDS, MsgID=77, Page=1)


def test_transport_error_names_the_endpoint() -> None:
    with ListrakClient(settings_for("http://127.0.0.1:9/v31/IntegrationService.asmx", max_retries=1)) as client, \
            pytest.raises(TransportError) as info:
        client.fetch(LISTS)
    assert "Cannot connect to http://127.0.0.1:9/v31/IntegrationService.asmx" in str(info.value)
    assert "Check the endpoint URL and network" in str(info.value)
    assert client.stats.as_dict()["retries"] == 1


# -- retry policy ------------------------------------------------------------------------------


def test_backoff_schedule_is_full_jitter_exponential_and_capped(canned: CannedServer) -> None:
    for _ in range(5):
        canned.add(503, b"busy")
    canned.add(200, lists_response())
    slept: list[float] = []
    settings = settings_for(canned.url, backoff_base=0.5, backoff_max=3.0, max_retries=5)
    with ListrakClient(settings, sleep=slept.append, rng=random.Random(42)) as client:
        assert client.fetch(LISTS).num_rows == 0
    replica = random.Random(42)
    assert slept == [replica.uniform(0, min(3.0, 0.5 * 2**k)) for k in range(5)]
    assert client.stats.as_dict()["retries"] == 5
    assert client.stats.as_dict()["faults"] == {"ServiceUnavailableError": 5}
    assert client.limiter.snapshot()["decreases"] >= 1


def test_retry_after_is_honoured_within_the_cap(canned: CannedServer) -> None:
    canned.add(429, b"", **{"Retry-After": "2"})
    canned.add(200, lists_response())
    slept: list[float] = []
    with ListrakClient(settings_for(canned.url, backoff_max=1.5), sleep=slept.append) as client:
        client.fetch(LISTS)
    assert slept == [1.5]


def test_gives_up_after_max_retries_with_the_count(canned: CannedServer) -> None:
    with ListrakClient(settings_for(canned.url, max_retries=3), sleep=lambda _: None) as client, \
            pytest.raises(ServerFaultError, match="Gave up after 4 attempts"):
        client.fetch(LISTS)
    assert len(canned.requests) == 4


# -- against the simulator ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("simulator_options", "password", "error"),
    [
        ({}, "wrong-password", InvalidLogonError),
        ({"ip_allowlist": ["10.9.8.0/24"]}, DEFAULT_PASSWORD, ProhibitedIPError),
        ({"lockout_after": 0}, DEFAULT_PASSWORD, LoginAttemptsExceededError),
    ],
)
def test_access_errors_after_exactly_one_request(simulator_options: dict[str, Any], password: str,
                                                 error: type) -> None:
    with Simulator(scale="tiny", page_size=7, **simulator_options) as sim:
        settings = settings_for(sim.url, password=password)
        with ListrakClient(settings) as client:
            with pytest.raises(error):
                client.fetch(LISTS)
            assert sim.stats()["requests_total"] == 1
            with pytest.raises(error):  # the client now refuses to send, protecting the account
                client.fetch(OPENS, MsgID=1, StartDate=EPOCH, EndDate=EPOCH, Page=1)
            assert sim.stats()["requests_total"] == 1


def test_refused_object_named_by_scope(simulator: Simulator) -> None:
    list_id = simulator.account.list_ids()[0]
    refused = User(DEFAULT_USERNAME, DEFAULT_PASSWORD, refused_list_ids=frozenset({list_id}))
    with Simulator(scale="tiny", page_size=7, users=[refused]) as sim, ListrakClient(settings_for(sim.url)) as client:
        params = {"ListID": list_id, "StartDate": EPOCH, "EndDate": sim.now, "Page": 1}
        contacts = get_stream("subscribed_contacts")
        with pytest.raises(ObjectRefusedError, match=f"list {list_id}") as info:
            client.fetch(contacts, scope=("list", list_id), **params)
        assert (info.value.kind, info.value.object_id) == ("list", list_id)
        with pytest.raises(ServiceFaultError):
            client.fetch(contacts, **params)
        assert sim.stats()["requests_total"] == 2


def _sends_counts(sim: Simulator) -> dict[int, int]:
    counts = {}
    for row in sim.account.ground_truth("message_sends", EPOCH):
        counts[row["MsgID"]] = counts.get(row["MsgID"], 0) + 1
    return counts


def _pages(sim: Simulator, client: ListrakClient, msg_id: int) -> tuple[int, int]:
    before = sim.stats()["requests_total"]
    rows = sum(page.num_rows for page in client.iter_pages(SENDS, MsgID=msg_id))
    return rows, sim.stats()["requests_total"] - before


def test_paging_at_exact_multiples_and_one_past(simulator: Simulator) -> None:
    counts = _sends_counts(simulator)
    msg_id, total = max(counts.items(), key=lambda item: item[1])
    assert total >= 6
    divisor = next((p for p in range(2, total) if total % p == 0), 1)
    cases = [
        (total, True, total, 2),  # one full page, then the empty page
        (divisor, True, total, total // divisor + 1),  # several full pages, then the empty page
        (total - 1, True, total, 2),  # one row past a full page: the short page 2 ends it
        (total - 1, False, total, 3),  # not trusting short pages: ask for the empty page 3
    ]
    for page_size, trust, rows, calls in cases:
        simulator.page_size = page_size
        with ListrakClient(settings_for(simulator.url, trust_short_pages=trust)) as client:
            assert _pages(simulator, client, msg_id) == (rows, calls), (page_size, trust)


def test_short_pages_trusted_only_after_the_size_is_proven(simulator: Simulator) -> None:
    counts = _sends_counts(simulator)
    big_id, big = max(counts.items(), key=lambda item: item[1])
    small_id, small = min(counts.items(), key=lambda item: item[1])
    simulator.page_size = max(2, (big + 1) // 2)
    assert small < simulator.page_size < big
    with ListrakClient(settings_for(simulator.url)) as client:
        assert _pages(simulator, client, small_id) == (small, 2)  # nothing proven: ask for the empty page
        assert _pages(simulator, client, big_id)[0] == big  # page 1 followed by page 2: size proven
        assert client.page_size_bound(SENDS.operation) == simulator.page_size
        assert _pages(simulator, client, small_id) == (small, 1)  # now one call suffices
    with ListrakClient(settings_for(simulator.url, trust_short_pages=False)) as client:
        _pages(simulator, client, big_id)
        assert _pages(simulator, client, small_id) == (small, 2)


@pytest.mark.parametrize("kind", ["server_fault", "unavailable", "drop", "truncated", "slow"])
def test_each_transient_fault_kind_is_retried(kind: str) -> None:
    with Simulator(scale="tiny", page_size=7, fail_rate=0.5, fault_kinds=[kind], fault_seed=11,
                   slow_seconds=2.0) as sim:
        settings = settings_for(sim.url, read_timeout=0.5, max_retries=8)
        expected = sorted(row["ListID"] for row in sim.account.ground_truth("lists", EPOCH))
        with ListrakClient(settings) as client:
            for _ in range(6):
                assert sorted(client.fetch(LISTS).column("ListID").to_pylist()) == expected
        assert sim.stats()["faults"][kind] > 0
        # Every injected fault cost one retry (a busy test machine may add a timeout or two).
        assert client.stats.as_dict()["retries"] >= sim.stats()["faults"][kind]


def test_password_never_logged_nor_in_errors(caplog: pytest.LogCaptureFixture) -> None:
    password = "Zq9-very-secret-<&>-pw"
    user = User("secret-user", password)
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    with Simulator(scale="tiny", page_size=7, users=[user], fail_rate=0.3, fault_seed=5,
                   fault_kinds=["server_fault", "unavailable", "truncated"]) as sim:
        good = settings_for(sim.url, username="secret-user", password=password, max_retries=10)
        with ListrakClient(good) as client:
            client.fetch(LISTS)
            with pytest.raises(ServiceFaultError) as info:
                client.fetch(OPENS, MsgID=999999, StartDate=EPOCH, EndDate=datetime(2030, 1, 1), Page=1)
            errors.append(info.value)
        bad = settings_for(sim.url, username="secret-user", password=password + "x", max_retries=0)
        with ListrakClient(bad) as client:
            try:
                client.fetch(LISTS)
            except ListrakSyncError as exc:
                errors.append(exc)
    assert errors and "DEBUG" in {r.levelname for r in caplog.records}
    assert any("GetContactListCollection" in r.getMessage() for r in caplog.records)
    for text in [caplog.text, *(str(e) for e in errors), *(repr(e) for e in errors), repr(client),
                 repr(good), str(good), repr(client.stats)]:
        assert password not in text


# -- retry budget and outages ------------------------------------------------------------------


def test_retry_budget_bounds_the_time_one_request_spends_retrying(canned: CannedServer) -> None:
    for _ in range(60):
        canned.add(503, b"busy")
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    settings = settings_for(canned.url, backoff_base=1.0, backoff_max=4.0, max_retries=100, retry_budget_seconds=20)
    gave_up = r"Gave up after \d+ attempts in \d+ s \(max_retries 100, retry_budget_seconds 20\)"
    with ListrakClient(settings, sleep=sleep, clock=lambda: now[0], rng=random.Random(3)) as client, \
            pytest.raises(ServiceUnavailableError, match=gave_up):
        client.fetch(LISTS)
    assert 16 < now[0] <= 20  # it slept while the budget allowed one more backoff (at most 4 s), no longer
    assert len(canned.requests) == client.stats.as_dict()["retries"] + 1 < 101


def test_an_endpoint_never_reached_is_tried_three_times_then_every_retry_after_an_answer() -> None:
    with ListrakClient(settings_for("http://127.0.0.1:9/v31/IntegrationService.asmx", max_retries=10)) as client, \
            pytest.raises(TransportError, match="Gave up after 3 attempts"):
        client.fetch(LISTS)
    sim = Simulator(scale="tiny", page_size=7).start()
    with ListrakClient(settings_for(sim.url, max_retries=4)) as client:
        client.fetch(LISTS)
        sim.stop()  # the service went away after answering: an outage, not a wrong endpoint
        with pytest.raises(TransportError, match="Gave up after 5 attempts"):
            client.fetch(LISTS)


def test_a_three_second_outage_is_bridged_and_the_limiter_backs_off_then_recovers() -> None:
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    with Simulator(scale="tiny", page_size=7) as sim:
        expected = sorted(row["ListID"] for row in sim.account.ground_truth("lists", EPOCH))
        settings = settings_for(sim.url, concurrency=4, backoff_base=0.1, backoff_max=0.5, max_retries=40,
                                retry_budget_seconds=30)
        with ListrakClient(settings, sleep=sleep) as client:
            assert sorted(client.fetch(LISTS).column("ListID").to_pylist()) == expected
            requests.post(sim.base_url + "/_simulator/faults", json={"outage_seconds": 3}, timeout=10)
            started = time.monotonic()
            with ThreadPoolExecutor(8) as pool:
                results = list(pool.map(lambda _: sorted(client.fetch(LISTS).column("ListID").to_pylist()), range(8)))
            assert results == [expected] * 8
            assert time.monotonic() - started >= 3.0  # the outage was waited out, not skipped
            # no wait longer than backoff_max: the requests resume within half a second of its end
            assert waits and max(waits) <= settings.backoff_max, waits
            assert sim.stats()["faults"]["unavailable"] >= 8
            limits = client.limiter.snapshot()
            assert limits["decreases"] >= 1 and limits["lowest"] < 4  # backed off as a whole
            for _ in range(4):
                client.fetch(LISTS)
            assert client.limiter.limit == 4  # and recovered once the service answered again
