"""One HTTP exchange, bounded in time and size: the SOAP and REST clients' only contact with the network.

::

    Transport.post(url, body, headers, operation) -> Reply(status, headers, body, url)
    Transport.get(url, params, headers, operation) -> Reply
        connecting             connect_timeout
        each read              read_timeout            (the socket timeout: per read)
        the whole exchange     request_deadline        (a watchdog shuts the socket down)
        the body               max_response_bytes      (counted after gzip/deflate decoding)
    Transport.service_time()   the service's clock: its latest answer's ``Date`` header plus
                               the monotonic time since that answer arrived

A per-read timeout cannot stop a server that trickles a byte every few seconds, and
``requests`` reads a body in fixed-size chunks that each wait for all their bytes, so checking
the clock between chunks is not enough either. One watchdog thread therefore shuts an
exchange's socket down when its ``request_deadline`` passes; the blocked read returns at once
and the exchange ends in a :class:`DeadlineExceededError`. The watchdog learns the socket when
the request has been sent (the session's connections register it before reading the status
line, so trickled headers are cut short too) and, once the headers are in, through urllib3's
``HTTPResponse.shutdown``. Behind a proxy, or with a session made elsewhere, only the body is
covered; the headers are then bounded by ``read_timeout`` per read alone.

The body is streamed (urllib3 decompresses it a bounded piece at a time) and refused as soon
as it passes ``max_response_bytes``, so a gzip bomb or an endless body costs at most that much
memory and is downloaded once.
"""

from __future__ import annotations

import contextlib
import email.utils
import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError, ReadTimeoutError

from listrak_sync.errors import ListrakSyncError, MalformedResponseError, ResponseTooLargeError, TransportError
from listrak_sync.settings import Settings
from listrak_sync.wire.connection import unusable_connection
from listrak_sync.wire.stats import ClientStats

# Big enough to keep Python's per-chunk overhead negligible, small enough that the size cap
# is checked often (urllib3 inflates compressed bodies one chunk at a time).
_CHUNK_BYTES = 64 * 1024


class TimedOutError(TransportError):
    """A connect or read timeout: the service may be overloaded (the limiter backs off)."""


class DeadlineExceededError(TimedOutError):
    """The whole exchange took longer than ``request_deadline``."""


class UnreachableError(TransportError):
    """No connection could be made (refused, no route, connect timeout, unknown host)."""


@dataclass(frozen=True)
class Reply:
    """An HTTP answer read whole: status, headers (case-insensitive), decoded body, the URL asked."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str


class _Watch:
    """One exchange's deadline, and how to cut the exchange short when it passes."""

    def __init__(self) -> None:
        self.expired = False
        self.finished = False
        self._lock = threading.Lock()
        self._stop: Callable[[], object] | None = None

    def stop_with(self, stop: Callable[[], object]) -> None:
        """Cut the exchange short with ``stop`` when the deadline passes (at once if it has)."""
        with self._lock:
            self._stop = stop
            if self.expired and not self.finished:
                _quietly(stop)

    def finish(self) -> None:
        with self._lock:
            self.finished, self._stop = True, None

    def expire(self) -> None:
        with self._lock:
            if self.finished:
                return
            self.expired = True
            if self._stop is not None:
                _quietly(self._stop)


def _quietly(stop: Callable[[], object]) -> None:
    # The socket may be closed already, or (urllib3's RuntimeError) back in the pool, where it
    # belongs to another exchange now and must be left alone.
    with contextlib.suppress(OSError, RuntimeError, ValueError):
        stop()


class _Watchdog:
    """One daemon thread that expires every watch whose deadline has passed.

    One thread for all exchanges, not a timer each: starting a thread costs about as much as a
    whole small exchange on loopback. Finished watches are dropped lazily.
    """

    def __init__(self) -> None:
        self._due: list[tuple[float, int, _Watch]] = []
        self._finished = 0
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, watch: _Watch, seconds: float) -> None:
        with self._wake:
            heapq.heappush(self._due, (time.monotonic() + seconds, next(self._order), watch))
            if self._thread is None or not self._thread.is_alive():  # not yet, or not in a forked child
                self._thread = threading.Thread(target=self._run, name="listrak-sync-deadlines", daemon=True)
                self._thread.start()
            elif self._due[0][2] is watch:
                self._wake.notify()

    def forget(self, watch: _Watch) -> None:
        watch.finish()
        with self._wake:
            self._finished += 1
            if self._finished * 2 > len(self._due) >= 64:
                self._due = [entry for entry in self._due if not entry[2].finished]
                heapq.heapify(self._due)
                self._finished = 0

    def _run(self) -> None:
        while True:
            with self._wake:
                now = time.monotonic()
                expired: list[_Watch] = []
                while self._due and self._due[0][0] <= now:
                    watch = heapq.heappop(self._due)[2]
                    if watch.finished:
                        self._finished = max(0, self._finished - 1)
                    else:
                        expired.append(watch)
                if not expired:
                    self._wake.wait(self._due[0][0] - now if self._due else None)
                    continue
            for watch in expired:
                watch.expire()


_WATCHDOG = _Watchdog()


_CURRENT = threading.local()


def _register(sock: socket.socket | None) -> None:
    watch: _Watch | None = getattr(_CURRENT, "watch", None)
    if watch is not None and sock is not None:
        watch.stop_with(lambda: sock.shutdown(socket.SHUT_RDWR))


class _WatchedHTTPConnection(HTTPConnection):
    def getresponse(self) -> Any:
        _register(self.sock)
        return super().getresponse()


class _WatchedHTTPSConnection(HTTPSConnection):
    def getresponse(self) -> Any:
        _register(self.sock)
        return super().getresponse()


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    """urllib3's pools, with connections that tell the exchange's watchdog their socket."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


def new_session(concurrency: int) -> requests.Session:
    """A pooled session for ``concurrency`` requests in flight, without urllib3's own retries."""
    session = requests.Session()
    # Retries are the client's (one policy, with jitter and the limiter); urllib3 must not add its own.
    adapter = _WatchedAdapter(pool_connections=1, pool_maxsize=concurrency, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"User-Agent": "listrak-sync", "Connection": "keep-alive"})
    return session


class Transport:
    """POSTs request bodies and reads the answers within the settings' time and size bounds.

    Args:
        settings: timeouts, ``request_deadline``, ``max_response_bytes`` and concurrency.
        stats: counts every exchange that got an answer, and the bytes read.
        session: an HTTP session to use (the caller closes it); one is made if not given.
            A session made elsewhere still gets the deadline once the headers are in.
        endpoint: the URL whose proxy settings apply (default: the SOAP ``endpoint``).
        right_endpoint: what the endpoint should be set to, for a server that is plainly not it.
    """

    def __init__(self, settings: Settings, stats: ClientStats, session: requests.Session | None = None, *,
                 endpoint: str | None = None, right_endpoint: str = "") -> None:
        self._own_session = session is None
        self.session = session or new_session(settings.concurrency)
        if self._own_session:
            _settle_environment(self.session, endpoint or settings.endpoint)
        self._right_endpoint = right_endpoint
        self._stats = stats
        self._timeout = (settings.connect_timeout, settings.read_timeout)
        self._deadline = settings.request_deadline
        self._limit = settings.max_response_bytes
        self._dated_lock = threading.Lock()
        self._dated: tuple[datetime, float] | None = None  # latest answer's Date, monotonic arrival

    def close(self) -> None:
        """Close the session if this transport made it."""
        if self._own_session:
            self.session.close()

    def service_time(self) -> datetime | None:
        """The service's current time, aware UTC, or ``None`` before any answer with a ``Date``.

        The ``Date`` header of the latest answer (by arrival) plus the monotonic time since it
        arrived, so this machine's wall clock plays no part.
        """
        with self._dated_lock:
            dated = self._dated
        if dated is None:
            return None
        date, arrived = dated
        return date + timedelta(seconds=time.monotonic() - arrived)

    def _saw_date(self, header: str | None) -> None:
        arrived = time.monotonic()
        try:
            date = email.utils.parsedate_to_datetime(header) if header else None
        except (TypeError, ValueError):
            date = None  # a malformed Date says nothing about the service's clock
        if date is None:
            return
        # An HTTP date is GMT by definition (RFC 9110 §5.6.7), whatever zone it spells.
        date = date.replace(tzinfo=timezone.utc) if date.tzinfo is None else date.astimezone(timezone.utc)
        with self._dated_lock:
            if self._dated is None or arrived >= self._dated[1]:
                self._dated = (date, arrived)

    def post(self, url: str, body: bytes, headers: Mapping[str, str], operation: str) -> Reply:
        """POST ``body`` to ``url`` and read the whole answer (redirects are not followed).

        Args:
            url: the endpoint.
            body: the request body.
            headers: request headers.
            operation: what is being asked, for messages and counters.

        Returns:
            The answer, whatever its status.

        Raises:
            DeadlineExceededError: the exchange took longer than ``request_deadline``.
            TimedOutError: connecting or one read took longer than its timeout.
            TransportError: no connection, or it broke off.
            ConfigError: the server answered in a way no retry mends (TLS against plain HTTP,
                an unverifiable certificate, not HTTP at all; see :func:`unusable_connection`).
            MalformedResponseError: a compressed body that does not decompress.
            ResponseTooLargeError: the body passed ``max_response_bytes``.
        """
        return self._request("POST", url, {"data": body}, headers, operation)

    def get(self, url: str, params: Mapping[str, str] | None, headers: Mapping[str, str], operation: str) -> Reply:
        """GET ``url`` with query ``params`` and read the whole answer, bounded as :meth:`post`.

        Raises:
            The errors of :meth:`post`.
        """
        return self._request("GET", url, {"params": dict(params or {})}, headers, operation)

    def _request(self, method: str, url: str, content: dict[str, Any], headers: Mapping[str, str],
                 operation: str) -> Reply:
        watch = _Watch()
        _WATCHDOG.add(watch, self._deadline)
        _CURRENT.watch = watch
        try:
            return self._exchange(method, url, content, headers, operation, watch)
        except requests.RequestException as exc:
            raise self._failure(exc, url, operation, watch) from None
        finally:
            _CURRENT.watch = None
            _WATCHDOG.forget(watch)

    def _exchange(
        self, method: str, url: str, content: dict[str, Any], headers: Mapping[str, str], operation: str,
        watch: _Watch
    ) -> Reply:
        response = self.session.request(
            method, url, **content, headers=dict(headers), timeout=self._timeout, stream=True, allow_redirects=False
        )
        self._saw_date(response.headers.get("Date"))
        with response:
            shutdown = getattr(response.raw, "shutdown", None)  # urllib3 >= 2.3
            if shutdown is not None:
                watch.stop_with(shutdown)
            chunks: list[bytes] = []
            received = 0
            try:
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > self._limit and "Content-Encoding" not in response.headers:
                    raise self._too_large(url, operation)
                for chunk in response.iter_content(_CHUNK_BYTES):
                    received += len(chunk)
                    if received > self._limit:
                        raise self._too_large(url, operation)
                    if watch.expired:
                        break
                    chunks.append(chunk)
                if watch.expired:  # a cut socket can look like a short, complete answer
                    raise self._deadline_passed(url, operation)
            finally:
                self._stats.count_request(operation, received)
        return Reply(response.status_code, response.headers, b"".join(chunks), url)

    def _failure(
        self, exc: requests.RequestException, url: str, operation: str, watch: _Watch
    ) -> ListrakSyncError:
        if watch.expired:
            return self._deadline_passed(url, operation)
        unusable = unusable_connection(exc, url, self._right_endpoint)
        if unusable is not None:
            return unusable
        if isinstance(exc, requests.exceptions.ContentDecodingError):
            return MalformedResponseError(
                f"The answer to {operation} from {url} says it is compressed but does not decompress."
            )
        reason = _reason(exc)
        cause = exc.args[0] if exc.args else None
        if isinstance(exc, requests.ConnectTimeout) or isinstance(getattr(cause, "reason", None), NewConnectionError):
            return UnreachableError(f"Cannot connect to {url}: {reason}. Check the endpoint URL and network.")
        # requests reports a read timeout in the body as a ConnectionError around urllib3's.
        if isinstance(exc, requests.Timeout) or isinstance(cause, ReadTimeoutError):
            return TimedOutError(
                f"Timed out calling {operation} at {url}: {reason}. Check the endpoint URL and network; "
                "raise read_timeout if the service is just slow."
            )
        return TransportError(f"The connection to {url} broke off during {operation}: {reason}.")

    def _deadline_passed(self, url: str, operation: str) -> DeadlineExceededError:
        return DeadlineExceededError(
            f"{operation} at {url} took longer than request_deadline ({self._deadline:g} s) and was cut off; "
            "the service or the network is too slow. Raise request_deadline if that is expected."
        )

    def _too_large(self, url: str, operation: str) -> ResponseTooLargeError:
        return ResponseTooLargeError(
            f"The answer to {operation} from {url} passed max_response_bytes ({self._limit:,} bytes, "
            "counted decompressed) and was not read further. Check the endpoint; raise "
            "max_response_bytes only if Listrak really sends pages that large."
        )


def _settle_environment(session: requests.Session, endpoint: str) -> None:
    """Read the proxy and CA bundle variables once for the endpoint, as requests would per call.

    requests reads the environment on every request (``merge_environment_settings``): about 5%
    of a medium run's client CPU at 4,000 requests. The endpoint is fixed for a run.
    """
    session.proxies.update(requests.utils.get_environ_proxies(endpoint))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False


def _reason(exc: requests.RequestException) -> str:
    reason = str(exc) or type(exc).__name__
    return reason if len(reason) <= 300 else reason[:300] + "..."


__all__ = ["DeadlineExceededError", "Reply", "TimedOutError", "Transport", "UnreachableError", "new_session"]
