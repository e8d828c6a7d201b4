"""Answers that are not the Listrak service's fail at once as configuration; the service's own glitches are retried.

Every server here is real and on loopback: the hostile HTTP servers of ``test_hostile_http``, a
raw TCP server for what is not HTTP at all, and the simulator for the service's own faults.
The CLI runs as a subprocess with its defaults untouched (retries, budget, backoff), as a user
runs it: a wrong endpoint must end ``check`` within 30 s (the issue's bound; it takes about a
second) and exit 2, and ``run`` after at most one retry.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest
from helpers import RUN, cli, cli_env, settings_for
from test_hostile_http import HTML_PAGE, HostileServer, canned

from listrak_sync.errors import EXIT_CONFIG, EXIT_ERROR, MalformedResponseError, TransportError
from listrak_sync.simulator import Simulator
from listrak_sync.soap.client import ListrakClient
from listrak_sync.streams import get_stream

LISTS = get_stream("lists")
CHECK_BOUND_SECONDS = 30  # the upper bound for `check` against a wrong endpoint
WRONG_OPERATION = (
    b'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
    b'<soap:Body><GetWeatherResponse xmlns="http://example.com/weather"><Celsius>3</Celsius></GetWeatherResponse>'
    b"</soap:Body></soap:Envelope>"
)


@pytest.fixture
def servers() -> Iterator[list[HostileServer]]:
    started: list[HostileServer] = []
    yield started
    for server in started:
        server.close()


class RawServer:
    """A loopback TCP server that answers every connection with ``reply`` and hangs up; counts connections."""

    def __init__(self, reply: bytes) -> None:
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/v31/IntegrationService.asmx"
        threading.Thread(target=self._serve, args=(reply,), daemon=True).start()

    def _serve(self, reply: bytes) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:  # closed
                return
            with connection:
                self.connections += 1
                connection.recv(65536)
                connection.sendall(reply)

    def close(self) -> None:
        self.listener.close()


def timed_cli(*args: str, endpoint: str, cwd: Path) -> tuple[int, list[str], float]:
    """``listrak-sync ARGS`` against ``endpoint`` with every other setting at its default."""
    started = time.monotonic()
    result = cli(*args, env=cli_env(endpoint), cwd=cwd, timeout=300)
    return result.returncode, result.stderr.strip().splitlines(), time.monotonic() - started


def tables_in(db: Path) -> list[str]:
    """The tables of a DuckDB file (none if there is no file)."""
    if not db.exists():
        return []
    with duckdb.connect(str(db), read_only=True) as con:
        return [row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]


# -- check: within 30 s, exit 2, one line ------------------------------------------------------


ANSWERS: dict[str, tuple[Callable[[], HostileServer], str, str]] = {
    # name: (server, scheme the endpoint is given with, words of the one line)
    "wrong SOAP element": (lambda: HostileServer(canned(200, WRONG_OPERATION, "text/xml; charset=utf-8")), "http",
                           "with a SOAP 'GetWeatherResponse' element, not GetContactListCollectionResponse"),
    "HTTP 501 web server": (lambda: HostileServer(canned(501, b"<html><body>Unsupported method</body></html>")),
                            "http", "HTTP 501 (not implemented)"),
    "HTTP 400 plain text": (lambda: HostileServer(canned(400, b"Bad Request", "text/plain")), "http",
                            "HTTP 400 (bad request)"),
    "https against plain HTTP": (lambda: HostileServer(canned(200, WRONG_OPERATION, "text/xml")), "https",
                                 "speaks plain HTTP, not HTTPS"),
}


@pytest.mark.parametrize("name", list(ANSWERS))
def test_check_with_defaults_says_what_answered_and_exits_2_at_once(
    servers: list[HostileServer], tmp_path: Path, name: str
) -> None:
    make, scheme, words = ANSWERS[name]
    servers.append(make())
    endpoint = servers[-1].url.replace("http://", f"{scheme}://")
    code, lines, seconds = timed_cli("check", endpoint=endpoint, cwd=tmp_path)
    print(f"{name}: exit {code} in {seconds:.1f} s")
    assert code == EXIT_CONFIG, lines
    assert len(lines) == 1 and lines[0].startswith("Error: ") and words in lines[0], lines
    assert seconds < CHECK_BOUND_SECONDS
    if scheme == "https":  # the one line says what to use instead
        assert f"use {servers[-1].url}" in lines[0], lines
    else:  # one answer, no retry
        assert servers[-1].requests == 1 and ".../v31/IntegrationService.asmx" in lines[0], lines


def test_check_says_a_server_that_does_not_speak_http_is_not_the_service(tmp_path: Path) -> None:
    server = RawServer(b"SSH-2.0-OpenSSH_9.6\r\n")
    try:
        code, lines, seconds = timed_cli("check", endpoint=server.url, cwd=tmp_path)
    finally:
        server.close()
    assert code == EXIT_CONFIG and len(lines) == 1, lines
    assert "does not speak HTTP: it answered 'SSH-2.0-OpenSSH_9.6'" in lines[0], lines
    assert seconds < CHECK_BOUND_SECONDS and server.connections == 1


def test_check_says_a_certificate_it_cannot_verify_is_configuration(
    servers: list[HostileServer], tmp_path: Path
) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a self-signed certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True, timeout=60)
    servers.append(HostileServer(canned(200, WRONG_OPERATION, "text/xml")))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    servers[0].server.socket = context.wrap_socket(servers[0].server.socket, server_side=True)
    endpoint = servers[0].url.replace("http://", "https://")
    code, lines, seconds = timed_cli("check", endpoint=endpoint, cwd=tmp_path)
    assert code == EXIT_CONFIG and len(lines) == 1, lines
    assert "cannot be verified (self-signed certificate)" in lines[0] and "REQUESTS_CA_BUNDLE" in lines[0], lines
    assert seconds < CHECK_BOUND_SECONDS and servers[0].requests == 0


def test_run_with_defaults_stops_at_a_wrong_soap_element_without_writing(
    servers: list[HostileServer], tmp_path: Path
) -> None:
    servers.append(HostileServer(canned(200, WRONG_OPERATION, "text/xml; charset=utf-8")))
    code, lines, _ = timed_cli(*RUN, endpoint=servers[0].url, cwd=tmp_path)
    assert code == EXIT_CONFIG, lines
    assert [line for line in lines if line.startswith("Error: ")] == lines[-1:], lines
    assert "not GetContactListCollectionResponse" in lines[-1]
    assert servers[0].requests <= 2  # at most one retry
    assert tables_in(tmp_path / "listrak_sync.duckdb") == []


# -- the service's own glitches stay transient --------------------------------------------------


def test_a_truncated_answer_from_the_service_is_retried() -> None:
    with Simulator(scale="tiny", fail_rate=1.0, fault_kinds="truncated") as sim, \
            ListrakClient(settings_for(sim, max_retries=2)) as client, pytest.raises(MalformedResponseError) as info:
        client.fetch(LISTS)
    assert "Gave up after 3 attempts" in str(info.value)
    assert sim.stats()["requests_total"] == 3


def test_a_status_line_cut_short_is_retried_not_a_wrong_endpoint() -> None:
    server = RawServer(b"HTTP/1.1 20")  # the service's answer, cut off mid status line
    try:
        with ListrakClient(settings_for(server.url, max_retries=2)) as client, pytest.raises(TransportError):
            client.fetch(LISTS)
    finally:
        server.close()
    assert server.connections == 3


# -- a command that waits says what for ----------------------------------------------------------


def test_check_says_what_it_waits_for_before_a_retry(servers: list[HostileServer], tmp_path: Path) -> None:
    servers.append(HostileServer(canned(503, HTML_PAGE, Retry_After="2")))
    result = cli("check", env=cli_env(servers[0].url, LISTRAK_MAX_RETRIES="1"), cwd=tmp_path, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == EXIT_ERROR, lines
    assert len(lines) == 2 and lines[1].startswith("Error: ") and "Gave up after 2 attempts" in lines[1], lines
    assert "WARNING" in lines[0] and "Waiting 2 s before retry 1 of GetContactListCollection: " in lines[0], lines
    assert "HTTP 503" in lines[0]
    assert servers[0].requests == 2
