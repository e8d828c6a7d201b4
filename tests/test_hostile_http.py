"""The client against hostile HTTP servers: trickled answers, endless and gzip-bomb bodies, web pages.

Each server is a tiny threaded ``http.server`` on loopback that misbehaves in one way and counts
the requests it gets, so a test tells an answer refused once from one retried. The CLI tests run
``listrak-sync check`` as a subprocess: its exit code, its one line, and its peak memory.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers import clean_env, cli_env, settings_for, start_cli

from listrak_sync.errors import (
    EXIT_CONFIG,
    EXIT_ERROR,
    ResponseTooLargeError,
    TransportError,
    WrongEndpointError,
)
from listrak_sync.simulator import DEFAULT_PASSWORD, DEFAULT_USERNAME, Simulator
from listrak_sync.simulator.data import EPOCH
from listrak_sync.soap.client import ListrakClient
from listrak_sync.streams import get_stream

LISTS = get_stream("lists")
Answer = Callable[[BaseHTTPRequestHandler, threading.Event], None]


class HostileServer:
    """A loopback HTTP server answering every POST with ``answer``; counts the requests."""

    def __init__(self, answer: Answer) -> None:
        self.requests = 0
        self.bodies: list[bytes] = []
        self.stopping = threading.Event()
        hostile = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hostile.requests += 1
                hostile.bodies.append(body)
                try:
                    answer(self, hostile.stopping)
                except OSError:  # the client hung up, as it should
                    self.close_connection = True

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # type: ignore[method-assign]  # hang-ups
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = self.base_url + "/v31/IntegrationService.asmx"

    def close(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile() -> Iterator[Callable[[Answer], HostileServer]]:
    servers: list[HostileServer] = []

    def start(answer: Answer) -> HostileServer:
        servers.append(HostileServer(answer))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def run_check(endpoint: str, tmp_path: Path, **settings: Any) -> tuple[int, str, str, float]:
    """``listrak-sync check`` with ``settings`` as LISTRAK_* variables: exit code, stdout, stderr, peak RSS in MB.

    The peak comes from the kernel (``wait4``'s ``ru_maxrss``), so no short spike is missed.
    """
    env = cli_env(endpoint, LISTRAK_BACKOFF_BASE="0.01", LISTRAK_BACKOFF_MAX="0.02",
                  **{f"LISTRAK_{key.upper()}": str(value) for key, value in settings.items()})
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = start_cli("check", env=env, cwd=tmp_path, stdout=stdout, stderr=stderr)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            proc.returncode = -1  # reaped here; keep Popen from waiting again
    return os.waitstatus_to_exitcode(status), out.read_text(), err.read_text(), usage.ru_maxrss / 1024


# -- misbehaviours ---------------------------------------------------------------------------


def trickle(how: str, interval: float = 0.1) -> Answer:
    """A byte every ``interval`` seconds: in the body (declared length or chunked) or the headers."""

    def answer(handler: BaseHTTPRequestHandler, stopping: threading.Event) -> None:
        write = handler.wfile.write
        if how == "headers":
            write(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nX-Pad: ")
            byte = b"a"
        else:
            handler.send_response(200)
            handler.send_header("Content-Type", "text/xml; charset=utf-8")
            framing = ("Transfer-Encoding", "chunked") if how == "chunked" else ("Content-Length", "99999")
            handler.send_header(*framing)
            handler.end_headers()
            byte = b"1\r\n \r\n" if how == "chunked" else b" "
        while not stopping.wait(interval):
            write(byte)

    return answer


@functools.cache
def gzip_member() -> bytes:
    """One gzip member of 16 MiB of zeros (~16 kB); a body of many members inflates 1000-fold."""
    return gzip.compress(bytes(16 << 20), compresslevel=9)


def endless(how: str) -> Answer:
    """A body far past any cap: chunked zeros without end, 2 GiB declared, or a 1 GiB gzip bomb."""

    def answer(handler: BaseHTTPRequestHandler, stopping: threading.Event) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/xml; charset=utf-8")
        if how == "gzip":
            member = gzip_member()
            handler.send_header("Content-Encoding", "gzip")
            handler.send_header("Content-Length", str(len(member) * 64))
            handler.end_headers()
            for _ in range(64):
                handler.wfile.write(member)
            return
        block = bytes(64 << 10)
        if how == "declared":
            handler.send_header("Content-Length", str(2 << 30))
            handler.end_headers()
            while not stopping.is_set():
                handler.wfile.write(block)
            return
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        while not stopping.is_set():
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))

    return answer


def canned(status: int, body: bytes, content_type: str = "text/html; charset=utf-8", **headers: str) -> Answer:
    def answer(handler: BaseHTTPRequestHandler, stopping: threading.Event) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.end_headers()
        handler.wfile.write(body)

    return answer


HTML_PAGE = (b'<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/'
             b'xhtml1-strict.dtd"><html><head><title>Welcome</title></head><body>It works!</body></html>')


# -- request_deadline --------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["length", "chunked", "headers"])
def test_a_trickling_server_is_cut_off_at_the_request_deadline_and_retried(
    hostile: Callable[[Answer], HostileServer], how: str
) -> None:
    server = hostile(trickle(how))
    settings = settings_for(server.url, request_deadline=1.0, read_timeout=1.0, max_retries=1)
    started = time.monotonic()
    # The answer never ends and each read gets a byte well within read_timeout: returning at
    # all means the request deadline cut both attempts.
    with ListrakClient(settings) as client, pytest.raises(TransportError) as info:
        client.fetch(LISTS)
    message = str(info.value)
    assert "request_deadline (1 s)" in message and "Gave up after 2 attempts" in message, message
    assert "\n" not in message
    assert server.requests == 2  # transient: retried within max_retries
    assert time.monotonic() - started >= 2.0  # and not before each attempt had its full second
    assert client.limiter.snapshot()["decreases"] >= 1  # a timeout is an overload signal


def test_check_gives_up_on_a_trickling_server_in_bounded_time(
    hostile: Callable[[Answer], HostileServer], tmp_path: Path
) -> None:
    server = hostile(trickle("length", interval=0.2))  # never ends: exiting at all is the bound
    code, out, err, _ = run_check(server.url, tmp_path, request_deadline=1, read_timeout=1, max_retries=1)
    assert code == EXIT_ERROR, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "request_deadline" in lines[0] and "Traceback" not in err, err
    assert server.requests == 2


# -- max_response_bytes ----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["chunked", "declared", "gzip"])
def test_oversized_bodies_are_refused_at_the_cap_and_not_retried(
    hostile: Callable[[Answer], HostileServer], how: str
) -> None:
    server = hostile(endless(how))
    cap = 4 << 20
    with ListrakClient(settings_for(server.url, max_response_bytes=cap, max_retries=3)) as client, \
            pytest.raises(ResponseTooLargeError) as info:
        client.fetch(LISTS)
    message = str(info.value)
    assert "max_response_bytes (4,194,304 bytes" in message and "\n" not in message, message
    assert server.requests == 1
    assert client.stats.as_dict()["retries"] == 0
    assert client.stats.as_dict()["bytes_received"] <= cap + (64 << 10)


@pytest.mark.parametrize("how", ["chunked", "gzip"])
def test_check_refuses_a_huge_body_once_in_bounded_memory(
    hostile: Callable[[Answer], HostileServer], tmp_path: Path, how: str, check_baseline_mb: float
) -> None:
    server = hostile(endless(how))
    code, out, err, peak_mb = run_check(server.url, tmp_path)  # the default cap, 128 MiB
    print(f"{how}: peak RSS {peak_mb:.0f} MB, {check_baseline_mb:.0f} MB for a check that passes")
    assert code == EXIT_ERROR, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "max_response_bytes (134,217,728 bytes" in lines[0], err
    assert server.requests == 1
    # The refused body is held once, up to the cap (134 MB), and never copied: a second copy
    # would add another 134 MB. Measured against a passing check in the same environment, as
    # what the interpreter and its imports take varies between machines and installs.
    assert peak_mb - check_baseline_mb < 134 * 1.5, (peak_mb, check_baseline_mb)


@pytest.fixture(scope="module")
def check_baseline_mb(tmp_path_factory: pytest.TempPathFactory) -> float:
    """Peak RSS in MB of a ``check`` that passes against the simulator, in this environment."""
    with Simulator(scale="tiny") as sim:
        code, out, err, peak_mb = run_check(sim.url, tmp_path_factory.mktemp("baseline"))
    assert code == 0, err
    return peak_mb


def test_a_normal_answer_passes_under_a_tight_cap_and_deadline() -> None:
    with Simulator(scale="tiny", page_size=7) as sim:
        settings = settings_for(sim.url, max_response_bytes=64 << 10, request_deadline=2, read_timeout=2)
        with ListrakClient(settings) as client:
            expected = {row["ListID"] for row in sim.account.ground_truth("lists", EPOCH)}
            for _ in range(20):  # keep-alive connections survive the finished exchanges' watchdogs
                assert set(client.fetch(LISTS).column("ListID").to_pylist()) == expected
            time.sleep(2.2)  # every watchdog would have fired by now, had one not been cancelled
            assert set(client.fetch(LISTS).column("ListID").to_pylist()) == expected
        assert client.stats.as_dict()["retries"] == 0


# -- not the SOAP service ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (canned(200, HTML_PAGE), ["an HTML page (HTTP 200)"]),
        (canned(200, b"<html><body>Sign in</body></html>", "text/xml"), ["an HTML page"]),
        (canned(404, b"<html><body>Not Found</body></html>"), ["HTTP 404 (not found)"]),
        (canned(405, b"", "text/plain"), ["HTTP 405 (method not allowed)"]),
        (canned(200, b'{"status": "ok"}', "application/json"), ["a document of type application/json"]),
        (canned(200, b'<?xml version="1.0"?><rss><channel/></rss>', "text/xml"), ["root element 'rss'"]),
        (canned(301, b"", Location="https://example.com/v31/IntegrationService.asmx"),
         ["redirects to https://example.com/v31/IntegrationService.asmx (HTTP 301)"]),
    ],
)
def test_an_endpoint_that_is_not_the_soap_service_is_a_configuration_error(
    hostile: Callable[[Answer], HostileServer], answer: Answer, words: list[str]
) -> None:
    server = hostile(answer)
    with ListrakClient(settings_for(server.url, max_retries=3)) as client, pytest.raises(WrongEndpointError) as info:
        client.fetch(LISTS)
    message = str(info.value)
    assert all(word in message for word in [*words, server.url, ".../v31/IntegrationService.asmx"]), message
    assert "DTD" not in message and "\n" not in message
    assert server.requests == 1


def test_check_says_a_web_page_or_a_wrong_path_is_not_the_service_exit_2(
    hostile: Callable[[Answer], HostileServer], tmp_path: Path
) -> None:
    page = hostile(canned(200, HTML_PAGE))
    with Simulator(scale="tiny") as sim:
        for endpoint in (page.url, sim.base_url + "/v31/Integration.asmx"):
            code, out, err, _ = run_check(endpoint, tmp_path)
            lines = err.strip().splitlines()
            assert code == EXIT_CONFIG, err
            assert len(lines) == 1 and "is not the Listrak SOAP service" in lines[0], err
            assert endpoint in lines[0] and "/v31/IntegrationService.asmx" in lines[0]
        assert sim.stats()["requests_total"] == 0  # the wrong path never reached the SOAP service
    assert page.requests == 1


def test_tap_test_says_a_web_page_is_not_the_service_exit_2(
    hostile: Callable[[Answer], HostileServer], tmp_path: Path
) -> None:
    page = hostile(canned(200, HTML_PAGE))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD,
                                  "start_date": "2024-01-01", "endpoint": page.url}))
    result = subprocess.run([sys.executable, "-m", "listrak_sync.singer", "--config", str(config), "--test"],
                            capture_output=True, text=True, env=clean_env(), cwd=tmp_path, timeout=120)
    assert result.returncode == EXIT_CONFIG, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("WARNING")]
    assert len(lines) == 1 and "is not the Listrak SOAP service" in lines[0], result.stderr
    assert page.requests == 1
