"""The simulator's HTTP server: a real threaded HTTP/1.1 server on loopback.

Routes (paths are case-insensitive, like IIS):

==========================================  ====================================================
``POST /v31/IntegrationService.asmx``        SOAP 1.1 and 1.2 requests
``GET  /v31/IntegrationService.asmx?WSDL``   the bundled WSDL, its address set to this server
``GET  /_simulator/stats``                   counters (JSON); ``POST .../stats/reset`` zeroes them
``GET|POST /_simulator/clock``               the virtual clock; POST ``{"advance_days": N}`` or
                                             ``{"now": "2026-07-01T00:00:00"}`` moves it
``GET|POST /_simulator/faults``              fault settings; POST a JSON object of new values;
                                             ``{"outage_seconds": N}``: every SOAP request gets
                                             HTTP 503 for the next N seconds
``POST /_simulator/lockouts/reset``          unlock every locked-out user
``POST /OAuth2/Token``                       REST tokens (with client credentials; :mod:`.rest`)
``GET  /email/v1/...``                       the REST Email API (with client credentials)
==========================================  ====================================================

Latency and injected faults (:mod:`listrak_sync.simulator.faults`) apply to SOAP POSTs only;
the WSDL and control routes always answer at once. Every answer's ``Date`` header reads the
virtual clock, as a real service's reads its own: clients learn "now" from it. Responses carry Content-Length, so pooled
clients keep their connections alive. Requests are logged at DEBUG without bodies, so the
password (which travels in the SOAP header) is never logged.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import socket
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from listrak_sync.simulator.envelope import (
    SoapFault,
    SoapRequest,
    UnsupportedMediaType,
    fault_envelope,
    parse_datetime,
    version_for,
)

if TYPE_CHECKING:
    from listrak_sync.simulator.core import Simulator

log = logging.getLogger(__name__)

SOAP_PATH = "/v31/IntegrationService.asmx"
REST_PREFIX = "/email/v1"  # the REST API (lower-cased, as paths are compared)
TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a path
PRODUCTION_URL = "https://webservices.listrak.com/v31/IntegrationService.asmx"
MAX_BODY_BYTES = 10 * 1024 * 1024
UNROUTED = "(unrouted)"
_SERVICE_UNAVAILABLE = b"<html><body><h1>Service Unavailable</h1></body></html>"


def bundled_wsdl() -> bytes:
    """The WSDL shipped in ``listrak_sync/soap/IntegrationService.wsdl``."""
    return (resources.files("listrak_sync.soap") / "IntegrationService.wsdl").read_bytes()


class SimulatorHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server that knows its :class:`Simulator` and its open connections."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        self.simulator = simulator
        self.stopping = threading.Event()
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, SimulatorRequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints tracebacks to stderr; a client hanging up mid-request is routine.
        log.debug("error serving %s", client_address[0], exc_info=True)

    def close_connections(self) -> None:
        """Shut every open client connection (idle keep-alive ones included)."""
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class SimulatorRequestHandler(BaseHTTPRequestHandler):
    """Handles one client connection (possibly several keep-alive requests)."""

    server: SimulatorHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "ListrakSimulator/1.0"
    sys_version = ""
    timeout = 300  # seconds an idle keep-alive connection is kept
    disable_nagle_algorithm = True  # headers and body go out in two writes; Nagle would hold the body ~40 ms

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.connections_lock:
                self.server.connections.discard(self.connection)

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header: the virtual clock (http.server's default reads the real one)."""
        if timestamp is None:
            # One attribute read, atomic: no need to wait for the account lock behind a query.
            now: datetime = self.server.simulator.account.now
            timestamp = now.replace(tzinfo=timezone.utc).timestamp()
        return email.utils.formatdate(timestamp, usegmt=True)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        log.debug("%s %s", self.client_address[0], format % args)

    # -- routing ------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path, query = self._split_path()
        simulator = self.server.simulator
        if simulator.rest is not None and (path == REST_PREFIX or path.startswith(REST_PREFIX + "/")):
            raw = urlsplit(self.path)
            status, headers, body = simulator.rest.get(raw.path, dict(query), self.headers.get("Authorization"))
            self._send(status, headers.pop("Content-Type"), body, headers)
        elif path == SOAP_PATH.lower():
            if "wsdl" in (key.lower() for key, _ in query):
                simulator.stats_counter.wsdl()
                self._send(200, "text/xml; charset=utf-8", simulator.served_wsdl)
            else:
                page = f"<html><body><h1>IntegrationService</h1><p>{simulator.wsdl_url}</p></body></html>"
                self._send(200, "text/html; charset=utf-8", page.encode())
        elif path == "/_simulator/stats":
            self._send_json(200, simulator.stats())
        elif path == "/_simulator/clock":
            self._send_json(200, {"now": simulator.now.isoformat()})
        elif path == "/_simulator/faults":
            self._send_json(200, simulator.fault_settings())
        else:
            self._send(404, "text/plain; charset=utf-8", b"Not Found")

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        path, _ = self._split_path()
        simulator = self.server.simulator
        body = self._read_body()
        if body is None:
            return
        if path == SOAP_PATH.lower():
            self._soap(body)
        elif simulator.rest is not None and path == TOKEN_PATH:
            form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            status, headers, payload = simulator.rest.token(form)
            self._send(status, headers.pop("Content-Type"), payload, headers)
        elif simulator.rest is not None and path.startswith(REST_PREFIX + "/"):
            self._send(405, "application/json; charset=utf-8",
                       b'{"status":405,"error":"ERROR_UNSUPPORTED_METHOD","message":"The method is not supported."}')
        elif path.startswith("/_simulator/"):
            self._control(path, body)
        else:
            self._send(404, "text/plain; charset=utf-8", b"Not Found")

    def _split_path(self) -> tuple[str, list[tuple[str, str]]]:
        parts = urlsplit(self.path)
        return parts.path.rstrip("/").lower() or "/", parse_qsl(parts.query, keep_blank_values=True)

    # -- control ------------------------------------------------------------------------------

    def _control(self, path: str, body: bytes) -> None:
        simulator = self.server.simulator
        try:
            payload = json.loads(body) if body.strip() else {}
            if not isinstance(payload, dict):
                raise ValueError("the request body must be a JSON object")
            if path == "/_simulator/stats/reset":
                simulator.reset_stats()
                self._send_json(200, simulator.stats())
            elif path == "/_simulator/lockouts/reset":
                simulator.reset_lockouts()
                self._send_json(200, {"locked_users": []})
            elif path == "/_simulator/clock":
                self._move_clock(payload)
            elif path == "/_simulator/faults":
                simulator.configure_faults(**payload)
                self._send_json(200, simulator.fault_settings())
            else:
                self._send(404, "text/plain; charset=utf-8", b"Not Found")
        except (ValueError, TypeError) as exc:
            self._send_json(400, {"error": str(exc)})

    def _move_clock(self, payload: dict[str, Any]) -> None:
        simulator = self.server.simulator
        if set(payload) == {"advance_days"}:
            simulator.advance(float(payload["advance_days"]))
        elif set(payload) == {"now"}:
            simulator.set_now(parse_datetime(str(payload["now"])))
        else:
            raise ValueError('send {"advance_days": N} or {"now": "<ISO time>"}')
        self._send_json(200, {"now": simulator.now.isoformat()})

    # -- SOAP ---------------------------------------------------------------------------------

    def _soap(self, body: bytes) -> None:
        simulator = self.server.simulator
        if not simulator.faults.try_enter():
            simulator.stats_counter.over_capacity()
            self._send(503, "text/html; charset=utf-8", _SERVICE_UNAVAILABLE, {"Retry-After": "1"})
            return
        try:
            self._serve_soap(body)
        finally:
            simulator.faults.leave()

    def _serve_soap(self, body: bytes) -> None:
        simulator = self.server.simulator
        service, stats = simulator.service, simulator.stats_counter
        content_type = self.headers.get("Content-Type")
        request: SoapRequest | None = None
        refusal: SoapFault | None = None
        try:
            request = service.parse(body, content_type, self.headers.get("SOAPAction"))
        except SoapFault as fault:
            refusal = fault
            stats.malformed()
        stats.request(request.operation if request else UNROUTED)
        if isinstance(refusal, UnsupportedMediaType):  # strict profile: IIS/ASMX refuses before any SOAP
            self._send(refusal.status, "text/plain; charset=utf-8", b"Unsupported Media Type")
            return
        plan = simulator.faults.plan()
        if plan.delay_seconds and self._wait(plan.delay_seconds):
            return
        if plan.kind:
            stats.fault_injected(plan.kind)
            log.debug("injecting %s into %s", plan.kind, request.operation if request else UNROUTED)
        version = request.version if request else version_for(content_type)
        if plan.kind == "drop":
            self._drop()
            return
        if plan.kind == "unavailable":
            self._send(503, "text/html; charset=utf-8", _SERVICE_UNAVAILABLE)
            return
        if plan.kind == "server_fault":
            refusal = SoapFault(
                "Server was unable to process request. ---> The simulator injected a server fault.",
                client=False,
                version=version,
            )
        elif plan.kind == "slow" and self._wait(simulator.faults.slow_seconds):
            return
        status, payload = 500, b""
        if refusal is not None:
            payload = fault_envelope(refusal)
        elif request is not None:
            status, payload = self._execute(request)
        if plan.kind == "truncated":
            status, payload = 200, payload[: len(payload) // 2]
        self._send(status, version.content_type, payload)

    def _execute(self, request: SoapRequest) -> tuple[int, bytes]:
        simulator = self.server.simulator
        try:
            return 200, simulator.service.execute(request, self.client_address[0])
        except SoapFault as fault:
            return 500, fault_envelope(fault)
        except Exception as exc:  # an ASMX service turns any unhandled error into a soap:Server fault
            log.exception("simulator error in %s", request.operation)
            message = f"Server was unable to process request. ---> {exc}"
            return 500, fault_envelope(SoapFault(message, client=False, version=request.version))

    # -- I/O ----------------------------------------------------------------------------------

    def _wait(self, seconds: float) -> bool:
        """Sleep without holding the GIL; True if the server is stopping (then drop the request)."""
        if self.server.stopping.wait(seconds):
            self._drop()
            return True
        return False

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            self._send(413 if length > 0 else 400, "text/plain; charset=utf-8", b"Bad Content-Length")
            return None
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            try:
                size = int(self.rfile.readline(64).split(b";")[0].strip() or b"0", 16)
            except ValueError:
                self.close_connection = True
                self._send(400, "text/plain; charset=utf-8", b"Bad chunked encoding")
                return None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                self.close_connection = True
                self._send(413, "text/plain; charset=utf-8", b"Request too large")
                return None
            chunks.append(self.rfile.read(size))
            self.rfile.readline(8)

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, "application/json", json.dumps(payload, default=_json_default).encode())

    def _send(
        self, status: int, content_type: str, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
