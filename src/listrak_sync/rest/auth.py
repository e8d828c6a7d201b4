"""OAuth2 client credentials for the REST API: one token at a time, fetched lazily, renewed early.

The token endpoint's answer is undocumented (REST.md §2.3, §10.1): ``access_token`` is read,
``expires_in`` when it is a number (else an hour is assumed), ``token_type`` in any case
(``bearer``/``Bearer``) or not at all. A token is renewed :func:`margin` before it expires, and
the client asks for a new one once more when the API answers 401 with it (a token can be
refused a little before ``expires_in`` runs out).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from listrak_sync.errors import WrongEndpointError
from listrak_sync.rest.classify import RIGHT_TOKEN, read_json, token_error
from listrak_sync.settings import Settings
from listrak_sync.wire.transport import Reply

ASSUMED_LIFETIME = 3600.0
# The tap renewed 10 s early; mediocre/listrak at half the lifetime. A minute early, or a tenth
# of a short lifetime, costs one token an hour and keeps a slow request from outliving its token.
MARGIN_SECONDS = 60.0
TOKEN_OPERATION = "POST /OAuth2/Token"  # noqa: S105 (an operation name, not a password)


def margin(lifetime: float) -> float:
    """How long before its expiry a token of ``lifetime`` seconds is renewed."""
    return min(MARGIN_SECONDS, lifetime / 10)


@dataclass(frozen=True)
class Token:
    """A bearer token and the monotonic time from which it is renewed."""

    value: str
    renew_at: float

    def __repr__(self) -> str:
        return f"Token(renew_at={self.renew_at:.0f})"  # never the token itself


def read_token(reply: Reply, settings: Settings, now: float) -> Token:
    """The token of a token endpoint's answer.

    Raises:
        RestAccessError: the endpoint refused the credentials (any status below 500 but 429).
        WrongEndpointError: the answer is not a token (another server answered).
        TransientError: 429, 5xx.
    """
    if reply.status != 200:
        raise token_error(reply, settings.client_id)
    body = read_json(reply)
    value = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise WrongEndpointError(
            f"{reply.url} is not Listrak's OAuth2 token endpoint: its answer (HTTP 200) holds no access_token. "
            f"{RIGHT_TOKEN}")
    kind = body.get("token_type")
    if isinstance(kind, str) and kind.strip() and kind.strip().lower() != "bearer":
        raise WrongEndpointError(
            f"{reply.url} issued a {kind[:40]!r} token; Listrak's API takes bearer tokens. {RIGHT_TOKEN}")
    lifetime = _lifetime(body.get("expires_in"))
    return Token(value.strip(), now + lifetime - margin(lifetime))


def _lifetime(value: object) -> float:
    if isinstance(value, bool):
        return ASSUMED_LIFETIME
    if isinstance(value, (int, float)) and value > 0:
        return float(value)
    if isinstance(value, str):
        try:
            seconds = float(value)
        except ValueError:
            return ASSUMED_LIFETIME
        return seconds if seconds > 0 else ASSUMED_LIFETIME
    return ASSUMED_LIFETIME


class TokenSource:
    """The current token, thread-safe: at most one token request in flight.

    Args:
        settings: ``token_endpoint``, ``client_id``, ``client_secret``.
        post: one token request (body, headers) -> the answer.
        clock: seconds on a monotonic clock.

    A token request is one attempt of the API request that needs it: a transient failure is
    retried with that request, under its retry policy and budget (one loop, never nested).
    """

    def __init__(self, settings: Settings, post: Callable[[bytes, dict[str, str]], Reply],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._post = post
        self._clock = clock
        self._lock = threading.Lock()
        self._token: Token | None = None
        self.issued = 0

    def current(self) -> str:
        """A token that is not due for renewal (fetched now if need be)."""
        with self._lock:
            token = self._token
            if token is None or self._clock() >= token.renew_at:
                token = self._renew()
            return token.value

    def renew(self, refused: str) -> str:
        """A new token in place of ``refused`` (the API answered 401 to it).

        Another thread may have renewed it already: then that token is used.
        """
        with self._lock:
            token = self._token
            if token is None or token.value == refused:
                token = self._renew()
            return token.value

    def _renew(self) -> Token:
        self._token = None
        body = urlencode({"grant_type": "client_credentials", "client_id": self._settings.client_id,
                          "client_secret": self._settings.client_secret.reveal()}).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        self._token = read_token(self._post(body, headers), self._settings, self._clock())
        self.issued += 1
        return self._token


__all__ = ["ASSUMED_LIFETIME", "MARGIN_SECONDS", "TOKEN_OPERATION", "Token", "TokenSource", "margin", "read_token"]
