"""The SOAP client: one retry policy over one bounded transport, answers classified once.

::

    call(op, params)        build envelope -> POST (under the adaptive limiter, see transport.py:
      |                     deadline and size cap) -> classify -> retry transient errors with
      |                     full-jitter backoff, within max_retries and retry_budget_seconds;
      |                     a wait of a second or more is logged as a WARNING saying what for
    fetch(stream)           one call -> typed Arrow table of the stream's items
    iter_pages(stream)      Page=1,2,... -> one table per non-empty page
    service_now()           the service's clock, learned from the Date header of its answers

Every answer is turned into an exception in :mod:`listrak_sync.soap.classify`, nowhere else.
Access errors (bad credentials, IP not allowed, lockout) are never retried, and once one is
seen the client sends nothing more, because Listrak locks an account after repeated failed
logins. The password only ever goes into the envelope; every error message is redacted before
it leaves :meth:`ListrakClient._request`, whatever server text it quotes (fault text, element
names a hostile server echoed, addresses).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, TypeVar

import pyarrow as pa
import requests
from lxml import etree

from listrak_sync.errors import (
    AccessError,
    ConfigError,
    MalformedResponseError,
    ServerFaultError,
    ServiceFaultError,
    TransientError,
    TransportError,
    UnreadableValueError,
)
from listrak_sync.settings import Settings
from listrak_sync.soap.characters import where_replaced
from listrak_sync.soap.classify import (
    RIGHT_ENDPOINT,
    Scope,
    classify_fault,
    not_soap,
    not_the_operation,
    overloaded,
)
from listrak_sync.soap.envelope import REQUEST_KINDS, build_envelope, request_headers
from listrak_sync.soap.pages import PageGuard, PageSizes, describe, walk_pages
from listrak_sync.soap.parse import (
    SoapFault,
    body_payload,
    find_fault,
    parse_answer,
    read_items,
    response_wrapper,
    ws_exception,
)
from listrak_sync.streams import RequestKind, Stream
from listrak_sync.wire.limiter import AdaptiveLimiter
from listrak_sync.wire.retry import Retrier
from listrak_sync.wire.stats import ClientStats
from listrak_sync.wire.transport import Reply, TimedOutError, Transport, UnreachableError

log = logging.getLogger(__name__)
T = TypeVar("T")
# A service that has never answered is more likely a wrong endpoint than an outage: until the
# first answer, a refused connection is tried this often, not max_retries + 1 times.
_ATTEMPTS_BEFORE_FIRST_ANSWER = 3


class ListrakClient:
    """A thread-safe client of the Listrak v31 SOAP service.

    Args:
        settings: endpoint, credentials, timeouts, retry and concurrency settings.
        session: an HTTP session to use (the caller closes it); one is made if not given.
        sleep: how to wait between retries (a seam for tests).
        rng: the source of backoff jitter (a seam for tests).
        clock: seconds on a monotonic clock, for the retry budget (a seam for tests).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.stats = ClientStats()
        self.limiter = AdaptiveLimiter(settings.concurrency)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._clock = clock
        self._retrier = Retrier(settings, self.stats, sleep=sleep, rng=self._rng, clock=clock, scrub=self._scrub,
                                log=log)
        self._transport = Transport(settings, self.stats, session, right_endpoint=RIGHT_ENDPOINT)
        self._page_sizes = PageSizes()
        self._lock = threading.Lock()
        self._access_error: AccessError | None = None
        self._guessed_time = False
        # Answers are decoded (parsed, read into Arrow) a few at a time, however many requests
        # are in flight: under the GIL more decoders are not faster, and each holds a whole
        # page's XML tree and values (about 6 MiB for 2,500 clicks).
        self._decoding = threading.BoundedSemaphore(max(1, min(settings.concurrency, _usable_cpus())))

    def __enter__(self) -> ListrakClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session if this client made it."""
        self._transport.close()

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
            WrongEndpointError: the endpoint answered, but not as the Listrak SOAP service.
            ResponseTooLargeError: the answer passed ``max_response_bytes`` (never retried).
            ObjectRefusedError: the scoped list or message was refused.
            ServiceFaultError: any other fault the service blames on the request.
            TransientError: a transient error that outlasted ``max_retries`` or
                ``retry_budget_seconds`` (a whole exchange is cut at ``request_deadline``).
        """
        return self._request(operation, params, scope, lambda body, root, replaced: body)

    def fetch(self, stream: Stream, *, scope: Scope | None = None, **params: Any) -> pa.Table:
        """One call for ``stream``, its items as a typed table of ``stream.columns``.

        Raises:
            The errors of :meth:`call`; a non-nil WSException that names a refusal is an
            ObjectRefusedError when scoped (else ServiceFaultError); any other is a
            ServerFaultError, retried.
        """
        def handle(body: bytes, root: etree._Element, replaced: int) -> pa.Table:
            wrapper = response_wrapper(body_payload(root), stream.operation)
            description = ws_exception(wrapper)
            if description is not None:
                fault = SoapFault("", self._redact(description), "")
                raise classify_fault(fault, scope=scope, username=self.settings.username, in_band=True)
            try:
                table = read_items(wrapper, stream, self.settings.source_timezone)
            except UnreadableValueError as exc:
                raise UnreadableValueError(f"{describe(scope).capitalize()}: {exc}") from None
            if replaced:
                log.warning("%s of %s: %d character(s) that XML 1.0 forbids were replaced by U+FFFD in %s.",
                            stream.operation, describe(scope), replaced, where_replaced(table))
            return table

        return self._request(stream.operation, params, scope, handle)

    def iter_pages(self, stream: Stream, *, scope: Scope | None = None, counter: tuple[str, int] | None = None,
                   at_least: int | None = None, **params: Any) -> Iterator[pa.Table]:
        """Pages 1, 2, ... of a paged stream, one table per non-empty page.

        Stops at the first empty page, or, with ``trust_short_pages``, at a page shorter than
        the largest page of the same operation this client has seen. That page is a lower
        bound of the operation's page size, so a shorter page cannot be a full one: it is the
        last, provided the service pages each operation at one fixed size (docs/listrak-api.md §12.5;
        the size may differ between operations, so bounds are kept per operation). No page
        size is ever assumed: a page as long as the largest seen is followed by another request.

        Paging always ends, and rows are checked against the counter as they arrive
        (:mod:`listrak_sync.soap.pages`).

        Args:
            stream: a paged stream.
            scope: the object the pages belong to (names it in errors).
            counter: the service's counter for this object's rows, as (name, value): a hint
                bounding how many pages can be real.
            at_least: the rows a full read must hold, if known: a read short of it asks once more.
            params: the request's parameters but ``Page``.

        Raises:
            The errors of :meth:`fetch`; EndlessPagesError, ShortOfCounterError after the rows
            that came.
        """
        def fetch_page(page: int) -> pa.Table:
            return self.fetch(stream, scope=scope, **params, Page=page)

        guard = PageGuard(stream, scope, counter, at_least)
        yield from walk_pages(fetch_page, guard, self._page_sizes, trust_short_pages=self.settings.trust_short_pages,
                              on_repeated=lambda rows: self.stats.count_repeated(stream.name, rows))

    def service_now(self) -> datetime:
        """The service's current time, aware UTC: "now" for every run, not this machine's clock.

        Read from the ``Date`` header of the service's latest answer, plus the monotonic time
        since it arrived. Before any answer, or if the answers carry no ``Date``, this machine's
        clock stands in (logged once at DEBUG).
        """
        # Date has whole seconds, so this lags the service by up to a second (and the answer's
        # transit). That is enough: every request is widened by EDGE past its end and the next
        # run re-reads lookback_hours before its bookmark or plan, far more than a second.
        now = self._transport.service_time()
        if now is not None:
            return now
        with self._lock:
            first, self._guessed_time = not self._guessed_time, True
        if first:
            log.debug("No Date header from %s yet: this machine's clock stands in for the service's.",
                      self.settings.endpoint)
        return datetime.now(timezone.utc)

    def page_size_bound(self, operation: str) -> int | None:
        """The largest page of ``operation`` seen so far (a lower bound of its page size), if any."""
        return self._page_sizes.bound(operation)

    def page_size_bounds(self) -> dict[str, int]:
        """Every operation's largest page this client has received itself."""
        return self._page_sizes.own()

    def learn_page_sizes(self, bounds: Mapping[str, int]) -> None:
        """Take page-size lower bounds proven earlier (by the last run, which saw such pages)."""
        self._page_sizes.learn(bounds)

    # -- one request ----------------------------------------------------------------------------

    def _request(
        self,
        operation: str,
        params: Mapping[str, Any],
        scope: Scope | None,
        handle: Callable[[bytes, etree._Element, int], T],
    ) -> T:
        if self._access_error is not None:
            raise self._access_error
        params = dict(params)
        if REQUEST_KINDS.get(operation) is RequestKind.LIST_WINDOW:
            params.setdefault("IncludeTestMessages", self.settings.include_test_messages)
        envelope = build_envelope(
            operation, params, username=self.settings.username, password=self.settings.password
        )
        try:
            return self._retrier.run(operation, lambda: self._attempt(operation, params, envelope, scope, handle),
                                     allowed=self._allowed_attempts)
        except AccessError as exc:
            self._access_error = exc
            raise

    def _allowed_attempts(self, error: TransientError, attempts: int) -> int:
        if isinstance(error, UnreachableError) and self.stats.as_dict()["requests_total"] == 0:
            return min(attempts, _ATTEMPTS_BEFORE_FIRST_ANSWER)
        return attempts

    def _backoff(self, attempt: int, error: TransientError) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**(attempt-1))], at least Retry-After."""
        return self._retrier.backoff(attempt, error)

    def _attempt(
        self,
        operation: str,
        params: Mapping[str, Any],
        envelope: bytes,
        scope: Scope | None,
        handle: Callable[[bytes, etree._Element, int], T],
    ) -> T:
        with self.limiter.slot() as slot:
            started = time.perf_counter()
            try:
                reply = self._transport.post(self.settings.endpoint, envelope, request_headers(operation), operation)
            except TimedOutError:
                slot.overloaded()
                raise
            if log.isEnabledFor(logging.DEBUG):  # formatting the parameters costs more than the check
                log.debug("%s %s -> HTTP %d, %d bytes in %.0f ms", operation, _loggable(params), reply.status,
                          len(reply.body), (time.perf_counter() - started) * 1000)
            if reply.status in (429, 503):
                slot.overloaded()
                raise overloaded(operation, reply)
            slot.succeeded()
        with self._decoding:
            return self._interpret(operation, reply, scope, handle)

    def _interpret(
        self,
        operation: str,
        reply: Reply,
        scope: Scope | None,
        handle: Callable[[bytes, etree._Element, int], T],
    ) -> T:
        root: etree._Element | None = None
        try:
            root, replaced = parse_answer(reply.body)
            payload = body_payload(root)
        except MalformedResponseError as exc:
            raise not_soap(operation, reply, root, str(exc)) from None
        fault = find_fault(payload)
        if fault is not None:
            fault = SoapFault(fault.code, self._redact(fault.text), self._redact(fault.detail))
            raise classify_fault(fault, scope=scope, username=self.settings.username)
        if reply.status >= 500:
            raise ServerFaultError(f"Listrak answered {operation} with HTTP {reply.status}.")
        if reply.status != 200:
            raise ServiceFaultError(
                f"The endpoint answered {operation} with HTTP {reply.status}. Check the endpoint URL."
            )
        element = etree.QName(payload).localname
        if element != f"{operation}Response":
            raise not_the_operation(operation, reply, element)
        return handle(reply.body, root, replaced)

    def _redact(self, text: str) -> str:
        password = self.settings.password.reveal()
        return text.replace(password, "********") if password else text

    def _scrub(self, error: BaseException) -> None:
        """Redact the password from an error's message, whatever server text it quotes."""
        error.args = tuple(self._redact(arg) if isinstance(arg, str) else arg for arg in error.args)
        if error.__suppress_context__:
            error.__context__ = None  # a parser's message may quote an echoed password verbatim


def _usable_cpus() -> int:
    # The CPUs this process may run on (a container's share), not the host's count.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _loggable(params: Mapping[str, Any]) -> str:
    # Body parameters only: the credentials live in the SOAP header, which is never logged.
    return ", ".join(f"{key}={value}" for key, value in params.items())


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
