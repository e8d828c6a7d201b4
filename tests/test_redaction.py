"""The password never shows, even when a hostile server echoes it back and --debug prints tracebacks.

The server below reads the password out of each request's WSUser header and sends it back: as
fault text, as the name of the response element, inside XML that does not parse (so the
parser's own message quotes it), in a redirect's Location, and in an in-band WSException. Both
command lines run with ``--debug`` as subprocesses; their whole output is searched for it.
"""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from helpers import clean_env, cli, cli_env
from test_hostile_http import HostileServer

from listrak_sync.logs import RedactingFilter
from listrak_sync.streams import NAMESPACE

# A valid XML name, so that a server can make an element of it.
CANARY = "Canary7pw_Zq9xKeepOut"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"


def envelope(inner: str) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{SOAP}">'
            f"<soap:Body>{inner}</soap:Body></soap:Envelope>").encode()


def echoes(how: str) -> Callable[[BaseHTTPRequestHandler, bytes], tuple[int, bytes, dict[str, str]]]:
    """An answer that sends the request's password (or the whole request) back, ``how``."""

    def answer(handler: BaseHTTPRequestHandler, request: bytes) -> tuple[int, bytes, dict[str, str]]:
        found = re.search(rb"<Password>(.*?)</Password>", request)
        password = found.group(1).decode() if found else ""
        echoed = escape(request.decode())
        if how == "fault_text":
            return 500, envelope(f"<soap:Fault><faultcode>soap:Server</faultcode><faultstring>Server was unable "
                                 f"to process request. ---> {echoed}</faultstring><detail>{password}</detail>"
                                 "</soap:Fault>"), {}
        if how == "element_name":
            return 200, envelope(f'<{password}Response xmlns="{NAMESPACE}" />'), {}
        if how == "broken_xml":
            return 200, envelope(f"<{password}></Mismatch>"), {}
        if how == "redirect":
            return 302, b"", {"Location": f"https://example.com/login?user={password}"}
        return 200, envelope(  # an in-band WSException quoting the request
            f'<GetContactListCollectionResponse xmlns="{NAMESPACE}"><GetContactListCollectionResult />'
            f"<WSException><Description>Bad request {echoed}</Description></WSException>"
            "</GetContactListCollectionResponse>"), {}

    return answer


@pytest.fixture(params=["fault_text", "element_name", "broken_xml", "redirect", "ws_exception"])
def echo_server(request: pytest.FixtureRequest) -> Iterator[HostileServer]:
    answer = echoes(request.param)

    def respond(handler: BaseHTTPRequestHandler, stopping: threading.Event) -> None:
        status, body, headers = answer(handler, server.bodies[-1])
        handler.send_response(status)
        handler.send_header("Content-Type", "text/xml; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    server = HostileServer(respond)
    yield server
    server.close()


def assert_redacted(result: subprocess.CompletedProcess[str], server: HostileServer) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert any(CANARY.encode() in body for body in server.bodies), output  # it was sent, and echoed back
    assert "Traceback" in output and "********" in output, output  # --debug showed it, redacted
    assert CANARY not in output, output


def test_listrak_sync_debug_check_never_shows_an_echoed_password(echo_server: HostileServer, tmp_path: Path) -> None:
    env = cli_env(echo_server.url, username="canary-user", password=CANARY, LISTRAK_MAX_RETRIES="1",
                  LISTRAK_BACKOFF_BASE="0.01", LISTRAK_BACKOFF_MAX="0.02")
    result = cli("--debug", "check", env=env, cwd=tmp_path, timeout=120)
    assert_redacted(result, echo_server)


def test_tap_debug_test_never_shows_an_echoed_password(echo_server: HostileServer, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"username": "canary-user", "password": CANARY, "start_date": "2024-01-01",
                                  "endpoint": echo_server.url, "max_retries": 1, "backoff_base": 0.01,
                                  "backoff_max": 0.02}))
    result = subprocess.run([sys.executable, "-m", "listrak_sync.singer", "--config", str(config), "--test", "--debug"],
                            capture_output=True, text=True, env=clean_env(), cwd=tmp_path, timeout=120)
    assert_redacted(result, echo_server)


def test_the_filter_redacts_tracebacks_chained_exceptions_reprs_and_stack_info() -> None:
    redact = RedactingFilter()
    redact.secrets.update({CANARY, ""})  # an empty secret must not blank everything out
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(redact)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("test_redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise KeyError(CANARY)
        except KeyError as inner:
            raise ValueError(f"while reading <{CANARY}Response>") from inner
    except ValueError:
        try:
            raise RuntimeError("then this")  # chained implicitly, as __context__
        except RuntimeError as exc:
            logger.error("failed with %r", {"password": CANARY}, exc_info=exc, stack_info=True)
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert CANARY not in text, text
    for part in ("ERROR failed with {'password': '********'}", "KeyError: '********'",
                 "ValueError: while reading <********Response>", "RuntimeError: then this",
                 "The above exception was the direct cause", "During handling of the above exception",
                 "Stack (most recent call last)"):
        assert part in text, (part, text)


def test_uncaught_exceptions_in_a_thread_are_redacted_too(tmp_path: Path) -> None:
    script = (
        "import logging, threading\n"
        "from listrak_sync.logs import RedactingFilter, log_to_stderr\n"
        "redact = RedactingFilter()\n"
        f"redact.secrets.add({CANARY!r})\n"
        "log_to_stderr(logging.INFO, redact, '%(levelname)s %(message)s', debug=True)\n"
        "def fail():\n"
        f"    raise RuntimeError('echoed ' + {CANARY!r})\n"
        "thread = threading.Thread(target=fail, name='worker')\n"
        "thread.start(); thread.join()\n"
        "fail()\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path)
    assert result.returncode == 1
    assert "CRITICAL Uncaught RuntimeError in worker" in result.stderr, result.stderr
    assert "CRITICAL Uncaught RuntimeError\n" in result.stderr, result.stderr
    assert result.stderr.count("RuntimeError: echoed ********") == 2, result.stderr
    assert CANARY not in result.stderr


def test_a_short_password_is_masked_where_it_stands_alone_not_inside_every_word() -> None:
    redact = RedactingFilter()
    redact.secrets.add("b")
    text = redact.redact("backoff_max: <Password>b</Password> user:b@host 'b'")
    assert text == "backoff_max: <Password>********</Password> user:********@host '********'"
    redact.secrets.add("s3cr3t-pw")  # a longer one is masked anywhere, even inside a word
    assert redact.redact("<Xs3cr3t-pwY>") == "<X********Y>"
