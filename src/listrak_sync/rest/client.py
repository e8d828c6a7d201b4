"""The REST Email API (v1) client, beside the SOAP client and under the same seams.

::

    get(route, ids, params)     GET one resource or unpaged collection -> ``data``; a collection
                                whose envelope carries a cursor anyway is followed to its end
    pages(route, ids, params)   cursor=Start&count=5000, then each non-null nextPageCursor as
                                ``cursor`` -> one list of items per page; ends at a null or
                                missing cursor or an empty page; a cursor seen before ends it
                                with EndlessPagesError
    check()                     a token and GET /List -> the lists
    to_table(stream, ...)       items -> a typed Arrow table (rest/parse.py), on the service's clock

One exchange (wire/transport.py: pooled session, deadline, size cap) under the shared adaptive
limiter, one retry policy (wire/retry.py: full-jitter backoff, max_retries, retry budget, the
wait said on stderr), answers classified once (rest/classify.py). The bearer token comes from
rest/auth.py; a 401 gets one new token and one more try, and a second 401 is terminal. The client
secret goes only into the token request's body; every error message is scrubbed of it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import requests

from listrak_sync.errors import AccessError, ConfigError, EndlessPagesError, TransientError, WrongEndpointError
from listrak_sync.rest import parse
from listrak_sync.rest.auth import TOKEN_OPERATION, TokenSource
from listrak_sync.rest.classify import RIGHT_REST, api_error, envelope, error_text, read_json, unauthorized
from listrak_sync.settings import Settings
from listrak_sync.streams import Stream
from listrak_sync.wire.limiter import AdaptiveLimiter
from listrak_sync.wire.retry import Retrier
from listrak_sync.wire.stats import ClientStats
from listrak_sync.wire.transport import Reply, TimedOutError, Transport, UnreachableError

log = logging.getLogger(__name__)
PAGE_SIZE = 5000  # the most REST.md §3.5 allows
FIRST_CURSOR = "Start"
# A service that has never answered is more likely a wrong endpoint than an outage (as SOAP).
_ATTEMPTS_BEFORE_FIRST_ANSWER = 3


class RestClient:
    """A thread-safe client of Listrak's Email REST API (v1).

    Args:
        settings: ``rest_endpoint``, ``token_endpoint``, ``client_id``, ``client_secret``, and the
            timeouts, retry and concurrency settings the SOAP client reads.
        limiter: the adaptive limiter to share (the SOAP client's ``limiter``); one of its own
            at ``concurrency`` if not given.
        session: an HTTP session to use (the caller closes it); one is made if not given.
        sleep: how to wait between retries (a seam for tests).
        rng: the source of backoff jitter (a seam for tests).
        clock: seconds on a monotonic clock, for the retry budget and the token's expiry.
        page_size: ``count`` of a paged request (a seam for tests; the API allows 5000 at most).

    Raises:
        ConfigError: the settings hold no REST credentials.
    """

    def __init__(self, settings: Settings, *, limiter: AdaptiveLimiter | None = None,
                 session: requests.Session | None = None, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None, clock: Callable[[], float] = time.monotonic,
                 page_size: int = PAGE_SIZE) -> None:
        if not settings.has_rest:
            raise ConfigError("No REST credentials: set LISTRAK_CLIENT_ID and LISTRAK_CLIENT_SECRET.")
        self.settings = settings
        self.stats = ClientStats()
        self.limiter = limiter or AdaptiveLimiter(settings.concurrency)
        self._base = settings.rest_endpoint.rstrip("/")
        self._page_size = str(page_size)
        self._transport = Transport(settings, self.stats, session, endpoint=settings.rest_endpoint,
                                    right_endpoint=RIGHT_REST)
        self._retrier = Retrier(settings, self.stats, sleep=sleep, rng=rng or random.Random(), clock=clock,
                                scrub=self._scrub, log=log)
        self._tokens = TokenSource(settings, self._post_token, clock)
        self._access_error: AccessError | None = None

    def __enter__(self) -> RestClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session if this client made it."""
        self._transport.close()

    def __repr__(self) -> str:
        return f"<RestClient {self._base} client_id={self.settings.client_id!r}>"

    @property
    def requests(self) -> int:
        """HTTP requests made so far that got an answer (token requests included)."""
        return int(self.stats.as_dict()["requests_total"])

    @property
    def tokens_issued(self) -> int:
        """Tokens received so far."""
        return self._tokens.issued

    # -- public calls ---------------------------------------------------------------------------

    def get(self, route: str, ids: Mapping[str, Any], params: Mapping[str, str] | None = None) -> Any:
        """GET one resource or unpaged collection and return the envelope's ``data``.

        A collection whose answer carries a non-null ``nextPageCursor`` anyway (REST.md §3.5: the
        declared envelopes are not to be trusted) is followed, and its pages' items joined.

        Args:
            route: a route template below ``rest_endpoint`` (``/List/{listId}/Campaign``).
            ids: the template's ids (``{"listId": 12}``).
            params: query parameters.

        Raises:
            RestAccessError: the token endpoint or the API refused the integration (terminal).
            WrongEndpointError: ``rest_endpoint`` or ``token_endpoint`` is not Listrak's.
            ObjectRefusedError: an id of the route does not resolve (404): skip it.
            ServiceFaultError: any other refusal (400).
            TransientError: 429, 5xx, timeouts that outlasted the retries or the budget.
        """
        body = self._call(route, ids, dict(params or {}))
        data = body.get("data")
        if isinstance(data, list) and data and body.get("nextPageCursor"):
            items = list(data)
            for page in self._follow(route, ids, dict(params or {}), body["nextPageCursor"]):
                items.extend(page)
            return items
        return data

    def pages(self, route: str, ids: Mapping[str, Any], params: Mapping[str, str] | None = None, *,
              paged: bool = True) -> Iterator[list[dict[str, Any]]]:
        """The items of a collection, one list per page, following ``nextPageCursor``.

        Args:
            route, ids, params: as :meth:`get`.
            paged: send ``cursor=Start&count=5000`` (the route declares paging); else the first
                request goes without, and a cursor the answer carries anyway is still followed.

        Raises:
            The errors of :meth:`get`; EndlessPagesError when a cursor comes back a second time
            (after the pages before it).
        """
        query = dict(params or {})
        if paged:
            query.update(cursor=FIRST_CURSOR, count=self._page_size)
        body = self._call(route, ids, query)
        data = _items(body, route)
        if data:
            yield data
        cursor = body.get("nextPageCursor")
        if cursor and data:
            yield from self._follow(route, ids, dict(params or {}), cursor)

    def check(self) -> list[dict[str, Any]]:
        """Get a token and the account's lists (``GET /List``): proves both endpoints and the credentials.

        Raises:
            The errors of :meth:`get`.
        """
        lists = self.get("/List", {})
        if not isinstance(lists, list):
            raise WrongEndpointError(f"{self._base}/List is not the Listrak REST API: its data is not a list of "
                                     f"lists. {RIGHT_REST}")
        return lists

    def to_table(self, stream: Stream, items: list[dict[str, Any]], ids: Mapping[str, Any],
                 parent: Mapping[str, Any] | None = None) -> pa.Table:
        """:func:`listrak_sync.rest.parse.to_table` on this client's ``source_timezone``."""
        return parse.to_table(stream, items, ids, parent, zone=self.settings.source_timezone)

    def service_now(self) -> datetime:
        """The service's current time (aware UTC) from its answers' ``Date``; this machine's before any."""
        return self._transport.service_time() or datetime.now(timezone.utc)

    # -- paging ---------------------------------------------------------------------------------

    def _follow(self, route: str, ids: Mapping[str, Any], params: dict[str, str],
                first: Any) -> Iterator[list[dict[str, Any]]]:
        seen = {FIRST_CURSOR}
        cursor = first
        while cursor:
            cursor = str(cursor)
            if cursor in seen:
                raise self._endless(route, ids, len(seen))
            seen.add(cursor)
            body = self._call(route, ids, {**params, "cursor": cursor, "count": self._page_size})
            data = _items(body, route)
            if not data:
                return
            yield data
            cursor = body.get("nextPageCursor")

    def _endless(self, route: str, ids: Mapping[str, Any], pages: int) -> EndlessPagesError:
        kind, object_id = _scope(ids) or ("account", None)
        return EndlessPagesError(
            f"GET {self._path(route, ids)} answered page {pages + 1} with a cursor it gave before, so its pages "
            "would never end. Its rows stop there; the rest of the run goes on, and the next run asks it again.",
            kind=kind, object_id=object_id)

    # -- one request ----------------------------------------------------------------------------

    def _path(self, route: str, ids: Mapping[str, Any]) -> str:
        try:
            return route.format_map({name: quote(str(value), safe="") for name, value in ids.items()})
        except KeyError as missing:
            raise KeyError(f"route {route} needs the id {missing}") from None

    def _call(self, route: str, ids: Mapping[str, Any], params: dict[str, str]) -> dict[str, Any]:
        if self._access_error is not None:
            raise self._access_error
        path = self._path(route, ids)
        operation = f"GET {route}"
        try:
            return self._retrier.run(operation, lambda: self._attempt(operation, path, params, _scope(ids)),
                                     allowed=self._allowed_attempts)
        except AccessError as exc:
            self._access_error = exc
            raise

    def _attempt(self, operation: str, path: str, params: dict[str, str],
                 scope: tuple[str, int] | None) -> dict[str, Any]:
        what = f"GET {path}"
        token = self._tokens.current()
        reply = self._exchange(operation, path, params, token)
        if reply.status == 401:
            log.info("%s: HTTP 401 with the current token; asking for a new one.", what)
            reply = self._exchange(operation, path, params, self._tokens.renew(token))
            if reply.status == 401:
                raise unauthorized(what, self.settings.client_id, self._redact(error_text(read_json(reply))))
        if reply.status != 200:
            error = api_error(reply, what, scope)
            if error is not None:
                raise error
        return envelope(reply, what)

    def _exchange(self, operation: str, path: str, params: dict[str, str], token: str) -> Reply:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        with self.limiter.slot() as slot:
            started = time.perf_counter()
            try:
                reply = self._transport.get(self._base + path, params, headers, operation)
            except TimedOutError:
                slot.overloaded()
                raise
            if log.isEnabledFor(logging.DEBUG):
                log.debug("GET %s %s -> HTTP %d, %d bytes in %.0f ms", path, params, reply.status, len(reply.body),
                          (time.perf_counter() - started) * 1000)
            if reply.status in (429, 503):
                slot.overloaded()
            else:
                slot.succeeded()
        return reply

    def _post_token(self, body: bytes, headers: dict[str, str]) -> Reply:
        with self.limiter.slot() as slot:
            try:
                reply = self._transport.post(self.settings.token_endpoint, body, headers, TOKEN_OPERATION)
            except TimedOutError:
                slot.overloaded()
                raise
            log.debug("%s -> HTTP %d", TOKEN_OPERATION, reply.status)
            if reply.status in (429, 503):
                slot.overloaded()
            else:
                slot.succeeded()
        return reply

    def _allowed_attempts(self, error: TransientError, attempts: int) -> int:
        if isinstance(error, UnreachableError) and self.requests == 0:
            return min(attempts, _ATTEMPTS_BEFORE_FIRST_ANSWER)
        return attempts

    def _redact(self, text: str) -> str:
        for secret in (self.settings.client_secret.reveal(), self.settings.password.reveal()):
            if secret:
                text = text.replace(secret, "********")
        return text

    def _scrub(self, error: BaseException) -> None:
        """Redact the secrets from an error's message, whatever server text it quotes."""
        error.args = tuple(self._redact(arg) if isinstance(arg, str) else arg for arg in error.args)
        if error.__suppress_context__:
            error.__context__ = None


def _items(body: dict[str, Any], route: str) -> list[dict[str, Any]]:
    data = body.get("data")
    if data is None:
        return []
    if not isinstance(data, list):
        raise WrongEndpointError(f"The answer to GET {route} holds one {type(data).__name__}, not a collection: "
                                 f"the route is not a collection of the Listrak REST API. {RIGHT_REST}")
    return [item for item in data if isinstance(item, dict)]


def _scope(ids: Mapping[str, Any]) -> tuple[str, int] | None:
    """The innermost object of a route's ids, as (kind, id): ``("message", 7)`` for ``messageId`` 7."""
    for name, value in reversed(list(ids.items())):
        if isinstance(value, int):
            return name.removesuffix("Id"), value
    return None


__all__ = ["FIRST_CURSOR", "PAGE_SIZE", "RestClient"]
