"""A loopback HTTP proxy in front of the simulator that rewrites requests and answers.

The hostile-data tests put it between a run and the simulator to play what the simulator never
does on its own: a page answered as another page, a value with characters XML forbids, an empty
counter. The run talks to the proxy over real HTTP, and the proxy to the simulator.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

RequestRewrite = Callable[[bytes], bytes]
AnswerRewrite = Callable[[bytes, bytes], bytes]  # (request body, answer body) -> answer body


def operation_of(request: bytes) -> str:
    """The SOAP operation a request body calls (the local name of the Body's first element)."""
    match = re.search(rb"<(?:\w+:)?Body[^>]*>\s*<(?:\w+:)?(\w+)", request)
    return match.group(1).decode() if match else ""


def page_of(request: bytes) -> int | None:
    """The ``Page`` a request asks for, if any."""
    match = re.search(rb"<(?:\w+:)?Page>(\d+)</", request)
    return int(match.group(1)) if match else None


def with_page(request: bytes, page: int) -> bytes:
    """The request asking for ``page`` instead."""
    return re.sub(rb"(<(?:\w+:)?Page>)\d+(</)", rb"\g<1>%d\g<2>" % page, request)


class RewritingProxy:
    """Forwards every POST to ``upstream``, passing the request through ``on_request`` and the
    answer through ``on_answer``; counts requests per operation."""

    def __init__(self, upstream: str, *, on_request: RequestRewrite | None = None,
                 on_answer: AnswerRewrite | None = None) -> None:
        self.upstream = upstream
        self.on_request = on_request or (lambda body: body)
        self.on_answer = on_answer or (lambda request, answer: answer)
        self.requests: dict[str, int] = {}
        self._lock = threading.Lock()
        self._session = requests.Session()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers, answer = proxy.forward(body, dict(self.headers))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        path = "/" + upstream.split("/", 3)[3] if upstream.count("/") >= 3 else "/"
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def forward(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """One exchange through the rewrites: status, the headers worth passing on, the answer."""
        with self._lock:
            operation = operation_of(body)
            self.requests[operation] = self.requests.get(operation, 0) + 1
        sent = self.on_request(body)
        keep = {k: v for k, v in headers.items() if k.lower() in ("content-type", "soapaction")}
        reply = self._session.post(self.upstream, data=sent, headers=keep, timeout=60)
        answer = self.on_answer(sent, reply.content)
        passed = {k: v for k, v in reply.headers.items() if k.lower() in ("content-type", "date")}
        return reply.status_code, passed, answer

    def __enter__(self) -> RewritingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._session.close()
