"""The REST service: the token endpoint, the bearer check, faults, paging and the routes.

Transport-free like the SOAP service: :meth:`RestService.token` and :meth:`RestService.get`
turn a request into ``(status, headers, body)``; the HTTP server calls them for
``POST /OAuth2/Token`` and ``GET /email/v1/...``.

Order of checks on an API call: outage (503), then the latency (``rest_latency_ms``), then the
bearer token (401, before routing, as the real service does), then injected 429s and the leaky
bucket, then routing (404 unknown route), then refused ids (``rest_refused``: 404 or 403), then
unresolved ids (404), then parameters (400), then the answer.
"""

from __future__ import annotations

import hmac
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from listrak_sync.simulator.generate import derive_rng
from listrak_sync.simulator.rest.params import RestError, fingerprint, make_cursor, parse_count, read_cursor
from listrak_sync.simulator.rest.profile import RestProfile
from listrak_sync.simulator.rest.render import UNAUTHORIZED, dumps, error, not_found, with_extras
from listrak_sync.simulator.rest.routes import match, resolve
from listrak_sync.simulator.rest.world import RestWorld

API_PREFIX = "/email/v1"
Response = tuple[int, dict[str, str], bytes]
_JSON = "application/json; charset=utf-8"


class RestFaults:
    """REST knobs of ``configure_faults``: token lifetime, a leaky bucket, a share of 429s, a
    delay before every API answer (``rest_latency_ms``; the SOAP ``latency_ms`` is SOAP's only),
    and objects the API refuses.

    ``rest_refused`` is a list of route ids, each a JSON object such as ``{"listId": 12}`` or
    ``{"listId": 12, "messageId": 7}`` (the simulator's route id names: ``conversationMessageId``
    for a conversation's message, ``messageLinkId`` for a link): every route whose ids include all
    of one entry's is answered ``rest_refusal_status``, 404 ``ERROR_UNABLE_TO_LOCATE_RESOURCE``
    (the default: what REST.md documents for what the caller may not see) or 403 (undocumented,
    but plausible for list-level permissions, REST.md §10.12). ``GET /List`` still lists the list.
    """

    SETTINGS = ("token_lifetime", "rest_rate_limit", "rest_429_rate", "rest_latency_ms", "rest_refused",
                "rest_refusal_status")

    def __init__(self, token_lifetime: float, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self.token_lifetime = token_lifetime
        self.rest_rate_limit: float | None = None
        self.rest_429_rate = 0.0
        self.rest_latency_ms = 0.0
        self.rest_refused: list[dict[str, int]] = []
        self.rest_refusal_status = 404
        self._level, self._last = 0.0, time.monotonic()
        self._rng = random.Random(f"rest-429-{seed}")

    def configure(self, **changes: Any) -> None:
        """Validate and apply REST settings (raises ValueError; nothing changes then)."""
        checked: dict[str, Any] = {}
        for name, value in changes.items():
            if name == "token_lifetime":
                checked[name] = float(value)
                if not checked[name] > 0:
                    raise ValueError(f"token_lifetime must be > 0 seconds, got {value!r}")
            elif name == "rest_rate_limit":
                checked[name] = None if value is None else float(value)
                if checked[name] is not None and not checked[name] > 0:
                    raise ValueError(f"rest_rate_limit must be > 0 requests per second or None, got {value!r}")
            elif name == "rest_429_rate":
                checked[name] = float(value)
                if not 0.0 <= checked[name] <= 1.0:
                    raise ValueError(f"rest_429_rate must be between 0 and 1, got {value!r}")
            elif name == "rest_refused":
                checked[name] = _refused(value)
            elif name == "rest_refusal_status":
                checked[name] = int(value)
                if checked[name] not in (403, 404):
                    raise ValueError(f"rest_refusal_status must be 403 or 404, got {value!r}")
            elif name == "rest_latency_ms":
                checked[name] = float(value)
                if not checked[name] >= 0:
                    raise ValueError(f"rest_latency_ms must be >= 0, got {value!r}")
        with self._lock:
            for name, value in checked.items():
                setattr(self, name, value)
            self._level = 0.0

    def settings(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.SETTINGS}

    def refuses(self, names: tuple[str, ...], values: tuple[str, ...]) -> bool:
        """Whether a route with these ids is refused (``rest_refused``)."""
        ids = dict(zip(names, values, strict=True))
        return any(all(ids.get(k) == str(v) for k, v in entry.items()) for entry in self.rest_refused)

    def throttled(self) -> bool:
        """Whether this request is answered 429 (the injected share, then the leaky bucket)."""
        with self._lock:
            if self.rest_429_rate and self._rng.random() < self.rest_429_rate:
                return True
            if self.rest_rate_limit is None:
                return False
            now = time.monotonic()
            self._level = max(0.0, self._level - (now - self._last) * self.rest_rate_limit)
            self._last = now
            if self._level + 1 > max(1.0, self.rest_rate_limit):
                return True
            self._level += 1
            return False


class RestService:
    """The Email REST API v1 over a :class:`RestWorld`; thread-safe."""

    def __init__(self, account: Any, client_id: str, client_secret: str, account_lock: Any,
                 outage: Any = None) -> None:
        self.profile = RestProfile.for_profile(getattr(account, "profile", None))
        self.world: RestWorld = account.rest_world
        self.client_id = client_id
        self._secret = client_secret
        self.lock = account_lock
        self.outage = outage  # a callable: seconds left of the current outage
        self.faults = RestFaults(self.profile.token_lifetime)
        self._tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._stats_lock = threading.Lock()
        self.reset_stats()

    def __repr__(self) -> str:
        return f"<RestService client_id={self.client_id!r} profile={self.profile.name}>"

    # -- stats --------------------------------------------------------------------------------

    def reset_stats(self) -> None:
        with self._stats_lock:
            self._requests: Counter[str] = Counter()
            self._statuses: Counter[int] = Counter()
            self._tokens_issued = 0
            self._token_refusals = 0

    def stats(self) -> dict[str, Any]:
        """``rest_requests_total``, ``rest_requests`` (per route template), ``tokens_issued``, ..."""
        with self._stats_lock:
            return {"rest_requests_total": sum(self._requests.values()),
                    "rest_requests": dict(sorted(self._requests.items())),
                    "rest_statuses": {str(k): v for k, v in sorted(self._statuses.items())},
                    "tokens_issued": self._tokens_issued, "token_refusals": self._token_refusals,
                    "rest_profile": self.profile.settings(), "rest_faults": self.faults.settings()}

    def _count(self, route: str, status: int) -> None:
        with self._stats_lock:
            self._requests[route] += 1
            self._statuses[status] += 1

    # -- token endpoint -----------------------------------------------------------------------

    def token(self, form: Mapping[str, str]) -> Response:
        """``POST /OAuth2/Token`` with a client-credentials form."""
        if self._outage():
            return _unavailable()
        if form.get("grant_type") != "client_credentials":
            return _json(400, {"error": "unsupported_grant_type"})
        good_id = hmac.compare_digest(form.get("client_id", "").encode(), self.client_id.encode())
        good_secret = hmac.compare_digest(form.get("client_secret", "").encode(), self._secret.encode())
        if not (good_id and good_secret):
            with self._stats_lock:
                self._token_refusals += 1
            if self.profile.credentials_error == "oauth":
                return _json(400, {"error": "invalid_client"})
            return _json(401, error(401, "ERROR_INVALID_CREDENTIALS", "The client credentials are invalid."))
        lifetime = self.faults.token_lifetime
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._stats_lock:
            self._tokens = {t: e for t, e in self._tokens.items() if e > now}
            self._tokens[token] = now + lifetime * (1 - self.profile.token_early_fraction)
            self._tokens_issued += 1
        body: dict[str, Any] = {"access_token": token, "token_type": self.profile.token_type}
        if self.profile.token_type == "Bearer":  # noqa: S105 - the OAuth token type
            body["refresh_token"] = None
        body["expires_in"] = int(lifetime) if lifetime == int(lifetime) else lifetime
        return _json(200, body)

    def _authorized(self, header: str | None) -> bool:
        scheme, _, token = (header or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        with self._stats_lock:
            expiry = self._tokens.get(token.strip())
        return expiry is not None and time.monotonic() < expiry

    def _outage(self) -> bool:
        return bool(self.outage and self.outage() > 0)

    # -- API ----------------------------------------------------------------------------------

    def get(self, raw_path: str, query: Mapping[str, str], authorization: str | None) -> Response:
        """``GET /email/v1/...``: ``raw_path`` as sent (below the host), ``query`` its parameters."""
        path = unquote(raw_path)
        below = path[len(API_PREFIX):] if path.lower().startswith(API_PREFIX) else path
        found = match(below)
        template = found[0].template if found else "(unrouted)"
        status, headers, body = self._get(below, found, query, authorization)
        self._count(template, status)
        return status, headers, body

    def _get(self, path: str, found: Any, query: Mapping[str, str], authorization: str | None) -> Response:
        if self._outage():
            return _unavailable()
        if self.faults.rest_latency_ms:
            time.sleep(self.faults.rest_latency_ms / 1000.0)
        if not self._authorized(authorization):
            return _json(401, UNAUTHORIZED)
        if self.faults.throttled():
            return _json(429, error(429, "ERROR_TOO_MANY_REQUESTS", "Too many requests; slow down and retry."))
        if found is None:
            return _json(404, error(404, "ERROR_UNKNOWN_ROUTE", "The requested route does not exist."))
        route, values = found
        if self.faults.refuses(route.names, values):
            return _refusal(self.faults.rest_refusal_status, list(route.names))
        q = {k.lower(): v for k, v in query.items()}
        try:
            with self.lock:
                objs = resolve(self.world, route.names, values)
                if objs is None:
                    return _json(404, not_found(list(route.names)))
                answer = route.handler(self.world, objs, q)
                return _json(200, self._envelope(route.template, answer, path, query))
        except RestError as exc:
            return _json(exc.status, error(exc.status, exc.code, exc.message))

    def _envelope(self, template: str, answer: Any, path: str, query: Mapping[str, str]) -> dict[str, Any]:
        extra = with_extras if self.profile.extra_fields else (lambda item: item)
        if answer.kind == "resource":
            return {"status": 200, "data": extra(answer.data)}
        if answer.kind == "collection":
            return {"status": 200, "data": [extra(item) for item in answer.data]}
        rows = [item for item, _ in answer.data]
        if self.profile.shuffled:
            derive_rng(self.world.account.seed, "rest-order", path.lower()).shuffle(rows)
        bound = fingerprint(path, query)
        lowered = {k.lower(): v for k, v in query.items()}
        count = parse_count(lowered.get("count"), self.profile.over_count == "clamp")
        offset = read_cursor(lowered.get("cursor"), bound)
        page = rows[offset:offset + count]
        more = offset + count < len(rows) or (self.profile.empty_last_page and len(page) == count)
        cursor = make_cursor(bound, offset + count) if more else None
        return {"status": 200, "nextPageCursor": cursor, "data": [extra(item) for item in page]}


def _json(status: int, payload: Any) -> Response:
    return status, {"Content-Type": _JSON}, dumps(payload)


def _refused(value: Any) -> list[dict[str, int]]:
    entries = list(value or [])
    if not all(isinstance(e, dict) and e and all(isinstance(k, str) and k.endswith("Id") for k in e)
               for e in entries):
        raise ValueError(f'rest_refused must be a list of route ids such as {{"listId": 12}}, got {value!r}')
    return [{k: int(v) for k, v in e.items()} for e in entries]


def _refusal(status: int, names: list[str]) -> Response:
    if status == 403:
        return _json(403, error(403, "ERROR_FORBIDDEN", "The integration may not access this resource."))
    return _json(404, not_found(names))


def _unavailable() -> Response:
    return 503, {"Content-Type": "text/html; charset=utf-8", "Retry-After": "1"}, \
        b"<html><body><h1>Service Unavailable</h1></body></html>"
