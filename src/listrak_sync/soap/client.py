"""The SOAP client: one pooled HTTP session, one retry policy, faults classified once.

::

    call(op, params)        build envelope -> POST (under the adaptive limiter) -> classify
      |                     -> retry transient errors with full-jitter backoff -> body bytes
    fetch(stream)           one call -> typed Arrow table of the stream's items
    iter_pages(stream)      Page=1,2,... -> one table per non-empty page

Every outcome of a request is turned into an exception in :func:`classify_fault` and
:meth:`ListrakClient._attempt`, nowhere else. Access errors (bad credentials, IP not allowed,
lockout) are never retried, and once one is seen the client sends nothing more, because
Listrak locks an account after repeated failed logins. The password only ever goes into the
envelope; it is redacted from any server text that is quoted in an error.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import pyarrow as pa
import requests
from lxml import etree
from requests.adapters import HTTPAdapter

from listrak_sync.config import Settings
from listrak_sync.errors import (
    AccessError,
    ConfigError,
    InvalidLogonError,
    ListrakSyncError,
    LoginAttemptsExceededError,
    MalformedResponseError,
    ObjectRefusedError,
    ProhibitedIPError,
    ServerFaultError,
    ServiceFaultError,
    ServiceUnavailableError,
    TransientError,
    TransportError,
)
from listrak_sync.soap.envelope import REQUEST_KINDS, build_envelope, request_headers
from listrak_sync.soap.limiter import AdaptiveLimiter
from listrak_sync.soap.parse import (
    SoapFault,
    body_payload,
    find_fault,
    parse_xml,
    read_items,
    response_wrapper,
    ws_exception,
)
from listrak_sync.soap.stats import ClientStats
from listrak_sync.streams import RequestKind, Stream

log = logging.getLogger(__name__)
T = TypeVar("T")
Scope = tuple[str, int]
# IIS's "404 - File or directory not found." inside a fault (tap-listrak skipped such messages),
# but not the digits 404 inside a longer number such as an ID.
_IIS_404 = re.compile(r"(?<![\d.])404(?![\d.])")


def _public_type(error: ListrakSyncError) -> type[ListrakSyncError]:
    """The error's class as the errors module declares it (not a private helper subclass)."""
    for kind in type(error).__mro__:
        if kind.__module__ == ListrakSyncError.__module__ and issubclass(kind, ListrakSyncError):
            return kind
    return type(error)


class _Overloaded(ServiceUnavailableError):
    """HTTP 503/429; remembers the server's Retry-After for the backoff."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def classify_fault(fault: SoapFault, *, scope: Scope | None, username: str) -> ListrakSyncError:
    """Turn a SOAP fault (or an in-band WSException) into the error the caller should handle.

    The one place that reads fault text, and only for Listrak's bracketed tokens
    (REFERENCE.md §8) and the IIS "404" that tap-listrak saw for unavailable messages.

    Args:
        fault: code local name (``Client``/``Server``), text and detail.
        scope: ``("list", id)`` or ``("message", id)`` when the call concerns one object.
        username: the API user, for the message.

    Returns:
        The exception to raise (not raised here).
    """
    text = f"{fault.text} {fault.detail}".strip().rstrip(".")
    if "[InvalidLogonAttempt]" in text:
        return InvalidLogonError(
            f"Listrak rejected the username or password for user {username!r}. Check "
            "LISTRAK_USERNAME/LISTRAK_PASSWORD; repeated failures lock the account."
        )
    if "[LoginAttemptsExceeded]" in text:
        return LoginAttemptsExceededError(
            f"Listrak user {username!r} is locked after too many failed logins; wait or ask a "
            "Listrak admin to unlock it (Manage > Accounts > User Manager), then check the password."
        )
    if "[ProhibitedIPAddress]" in text:
        return ProhibitedIPError(
            "Listrak refused this machine's IP address. Add it under Manage > Accounts > "
            "SOAP API IP Authorization."
        )
    refused = "[AccessDenied]" in text or _IIS_404.search(text) is not None or fault.code in ("Client", "Sender")
    if refused and scope is not None:
        kind, object_id = scope
        return ObjectRefusedError(
            f"Listrak refused {kind} {object_id} ({text}); the API user may not "
            f"have access to it. It was skipped; grant access under Manage > Accounts > User Manager.",
            kind=kind,
            object_id=object_id,
        )
    if refused:
        return ServiceFaultError(f"Listrak refused the request: {text}. Check the settings and the user's access.")
    return ServerFaultError(f"Listrak had a server error: {text or 'no details given'}.")


class ListrakClient:
    """A thread-safe client of the Listrak v31 SOAP service.

    Args:
        settings: endpoint, credentials, timeouts, retry and concurrency settings.
        session: an HTTP session to use (the caller closes it); one is made if not given.
        sleep: how to wait between retries (a seam for tests).
        rng: the source of backoff jitter (a seam for tests).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.stats = ClientStats()
        self.limiter = AdaptiveLimiter(settings.concurrency)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._own_session = session is None
        self._session = session or _new_session(settings.concurrency)
        self._timeout = (settings.connect_timeout, settings.read_timeout)
        self._full_pages: dict[str, int] = {}
        self._lock = threading.Lock()
        self._access_error: AccessError | None = None

    def __enter__(self) -> ListrakClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session if this client made it."""
        if self._own_session:
            self._session.close()

    def __repr__(self) -> str:
        return f"<ListrakClient {self.settings.endpoint} user={self.settings.username!r}>"

    # -- public calls ---------------------------------------------------------------------------

    def call(self, operation: str, params: Mapping[str, Any], *, scope: Scope | None = None) -> bytes:
        """Make one SOAP call with the retry policy and return the response body.

        Args:
            operation: the SOAP operation, e.g. ``"GetContactListCollection"``.
            params: its parameters (see :func:`~listrak_sync.soap.envelope.order_params`).
            scope: ``("list", id)``/``("message", id)``: a refusal then raises
                :class:`ObjectRefusedError` naming that object.

        Returns:
            The body of a well-formed, fault-free response.

        Raises:
            AccessError: credentials, IP or lockout (never retried).
            ObjectRefusedError: the scoped list or message was refused.
            ServiceFaultError: any other fault the service blames on the request.
            TransientError: a transient error that outlasted every retry.
        """
        return self._request(operation, params, scope, lambda body, root: body)

    def fetch(self, stream: Stream, *, scope: Scope | None = None, **params: Any) -> pa.Table:
        """One call for ``stream``, its items as a typed table of ``stream.columns``.

        Raises:
            The errors of :meth:`call`; a non-nil WSException is an ObjectRefusedError when
            scoped, else a ServiceFaultError.
        """
        def handle(body: bytes, root: etree._Element) -> pa.Table:
            wrapper = response_wrapper(body_payload(root), stream.operation)
            description = ws_exception(wrapper)
            if description is not None:
                fault = SoapFault("Client", self._redact(description), "")
                raise classify_fault(fault, scope=scope, username=self.settings.username)
            return read_items(wrapper, stream, self.settings.source_timezone)

        return self._request(stream.operation, params, scope, handle)

    def iter_pages(self, stream: Stream, *, scope: Scope | None = None, **params: Any) -> Iterator[pa.Table]:
        """Pages 1, 2, ... of a paged stream, one table per non-empty page.

        Stops at the first empty page, or, with ``trust_short_pages``, at a page shorter than
        the largest page this client has already seen followed by another page of the same
        operation (a page size the service has proven; none is ever assumed).

        Raises:
            The errors of :meth:`fetch`.
        """
        proven_key = stream.operation
        previous = 0
        page = 1
        while True:
            table = self.fetch(stream, scope=scope, **params, Page=page)
            if table.num_rows == 0:
                return
            if previous:
                self._prove_page_size(proven_key, previous)
            yield table
            proven = self._full_pages.get(proven_key)
            if self.settings.trust_short_pages and proven and table.num_rows < proven:
                return
            previous = table.num_rows
            page += 1

    def proven_page_size(self, operation: str) -> int | None:
        """The largest page of ``operation`` seen to be followed by another page, if any."""
        return self._full_pages.get(operation)

    # -- one request ----------------------------------------------------------------------------

    def _prove_page_size(self, operation: str, size: int) -> None:
        with self._lock:
            if size > self._full_pages.get(operation, 0):
                self._full_pages[operation] = size

    def _request(
        self,
        operation: str,
        params: Mapping[str, Any],
        scope: Scope | None,
        handle: Callable[[bytes, etree._Element], T],
    ) -> T:
        if self._access_error is not None:
            raise self._access_error
        params = dict(params)
        if REQUEST_KINDS.get(operation) is RequestKind.LIST_WINDOW:
            params.setdefault("IncludeTestMessages", self.settings.include_test_messages)
        envelope = build_envelope(
            operation, params, username=self.settings.username, password=self.settings.password
        )
        attempts = self.settings.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return self._attempt(operation, params, envelope, scope, handle)
            except TransientError as exc:
                self.stats.count_fault(_public_type(exc).__name__)
                if attempt == attempts:
                    raise _public_type(exc)(f"{exc} Gave up after {attempts} attempts.") from exc
                delay = self._backoff(attempt, exc)
                self.stats.count_retry()
                log.info("%s failed (%s); retry %d/%d in %.2fs", operation, exc, attempt,
                         attempts - 1, delay)
                self._sleep(delay)
            except ListrakSyncError as exc:
                self.stats.count_fault(_public_type(exc).__name__)
                if isinstance(exc, AccessError):
                    self._access_error = exc
                raise
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int, error: TransientError) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**(attempt-1))], at least Retry-After."""
        ceiling = min(self.settings.backoff_max, self.settings.backoff_base * 2 ** (attempt - 1))
        delay = self._rng.uniform(0.0, ceiling)
        if isinstance(error, _Overloaded) and error.retry_after:
            delay = max(delay, min(error.retry_after, self.settings.backoff_max))
        return delay

    def _attempt(
        self,
        operation: str,
        params: Mapping[str, Any],
        envelope: bytes,
        scope: Scope | None,
        handle: Callable[[bytes, etree._Element], T],
    ) -> T:
        endpoint = self.settings.endpoint
        with self.limiter.slot() as slot:
            started = time.perf_counter()
            try:
                response = self._session.post(
                    endpoint, data=envelope, headers=request_headers(operation), timeout=self._timeout
                )
            except requests.Timeout as exc:
                slot.overloaded()
                raise TransportError(
                    f"Timed out calling {operation} at {endpoint}: {_reason(exc)}. Check the endpoint "
                    "URL and network; raise read_timeout if the service is just slow."
                ) from None
            except requests.RequestException as exc:
                raise TransportError(
                    f"Cannot connect to {endpoint}: {_reason(exc)}. Check the endpoint URL and network."
                ) from None
            status, body = response.status_code, response.content
            self.stats.count_request(operation, len(body))
            elapsed_ms = (time.perf_counter() - started) * 1000
            log.debug("%s %s -> HTTP %d, %d bytes in %.0f ms", operation, _loggable(params), status,
                      len(body), elapsed_ms)
            if status in (429, 503):
                slot.overloaded()
                raise _Overloaded(
                    f"Listrak is overloaded (HTTP {status}) answering {operation}; backing off.",
                    _retry_after(response.headers.get("Retry-After")),
                )
            slot.succeeded()
        return self._interpret(operation, status, body, scope, handle)

    def _interpret(
        self,
        operation: str,
        status: int,
        body: bytes,
        scope: Scope | None,
        handle: Callable[[bytes, etree._Element], T],
    ) -> T:
        try:
            root = parse_xml(body)
            payload = body_payload(root)
        except MalformedResponseError as exc:
            if status >= 500:
                raise ServerFaultError(f"Listrak answered {operation} with HTTP {status} and no SOAP fault.") from None
            if status != 200:
                raise ServiceFaultError(
                    f"The endpoint answered {operation} with HTTP {status}, not SOAP. Check the endpoint URL."
                ) from None
            raise MalformedResponseError(f"{operation}: {exc}") from None
        fault = find_fault(payload)
        if fault is not None:
            fault = SoapFault(fault.code, self._redact(fault.text), self._redact(fault.detail))
            raise classify_fault(fault, scope=scope, username=self.settings.username)
        if status >= 500:
            raise ServerFaultError(f"Listrak answered {operation} with HTTP {status}.")
        if status != 200:
            raise ServiceFaultError(f"The endpoint answered {operation} with HTTP {status}. Check the endpoint URL.")
        return handle(body, root)

    def _redact(self, text: str) -> str:
        password = self.settings.password.reveal()
        return text.replace(password, "********") if password else text


def _new_session(concurrency: int) -> requests.Session:
    session = requests.Session()
    # Retries are ours (one policy, with jitter and the limiter); urllib3 must not add its own.
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=concurrency, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"User-Agent": "listrak-sync", "Connection": "keep-alive"})
    return session


def _loggable(params: Mapping[str, Any]) -> str:
    # Body parameters only: the credentials live in the SOAP header, which is never logged.
    return ", ".join(f"{key}={value}" for key, value in params.items())


def _reason(exc: requests.RequestException) -> str:
    reason = str(exc) or type(exc).__name__
    return reason if len(reason) <= 300 else reason[:300] + "..."


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


@contextmanager
def unreachable_is_config(client: ListrakClient) -> Iterator[None]:
    """A service never reached at all is a configuration problem (exit 2), not a failed run.

    Raises:
        ConfigError: a :class:`TransportError` before ``client`` had any response (a wrong
            endpoint, no route, a refused connection).
    """
    try:
        yield
    except TransportError as exc:
        if client.stats.as_dict()["requests_total"] == 0:
            raise ConfigError(str(exc)) from None
        raise


__all__ = ["ClientStats", "ListrakClient", "Scope", "classify_fault", "unreachable_is_config"]
