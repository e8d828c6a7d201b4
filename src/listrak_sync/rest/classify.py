"""What an answer of the REST API or its token endpoint means: the one place that turns them into errors.

::

    api_error(reply, what, right)      a non-200 API answer: 429/503 -> Overloaded (back off),
                                       other 5xx -> ServerFaultError (transient), 401 -> None
                                       (the client refreshes its token once), 404 ERROR_UNKNOWN_ROUTE,
                                       a redirect, 405/415, a web page -> WrongEndpointError (config),
                                       404 ERROR_UNABLE_TO_LOCATE_RESOURCE, or a 403 on a route
                                       with ids -> ObjectRefusedError (skip it), other 4xx ->
                                       ServiceFaultError
    envelope(reply, what, right)       a 200 answer's envelope: a JSON object with ``data``; a web
                                       page or another JSON shape -> WrongEndpointError, JSON cut
                                       short -> MalformedResponseError (transient)
    token_error(reply, client_id)      a refused token request: any status below 500 but 429 is
                                       terminal (the credentials, the IP allow-list, a paused
                                       integration), in every shape REST.md §10.2 allows

Server text quoted in a message must already be redacted (the client does it).
"""

from __future__ import annotations

import json
import re
from http import HTTPStatus
from typing import Any

from listrak_sync.errors import (
    AccessError,
    ListrakSyncError,
    MalformedResponseError,
    ObjectRefusedError,
    ServerFaultError,
    ServiceFaultError,
    WrongEndpointError,
)
from listrak_sync.settings_table import REST_ENDPOINT, TOKEN_ENDPOINT
from listrak_sync.wire.retry import Overloaded, retry_after_seconds
from listrak_sync.wire.transport import Reply

_SOAP = re.compile(rb"^\s*(<\?xml[^>]*>\s*)?<([\w.-]+:)?Envelope[\s>]", re.IGNORECASE)
_HTML = re.compile(rb"^\s*(<\?xml[^>]*>\s*)?<(!doctype\s+html|html)[\s>]", re.IGNORECASE)
RIGHT_REST = (f"Set rest_endpoint to the REST API's base URL ending in /email/v1 ({REST_ENDPOINT} for production, "
              "or the URL the simulator prints).")
RIGHT_TOKEN = (f"Set token_endpoint to the REST API's OAuth2 token URL ({TOKEN_ENDPOINT} for production, or the "
               "URL the simulator prints).")
_INTEGRATION = "Integrations > Integration Management"


class RestAccessError(AccessError):
    """The REST API or its token endpoint refused the integration (one line naming the causes)."""


def read_json(reply: Reply) -> Any:
    """The body as JSON, or ``None`` when it is not JSON."""
    try:
        return json.loads(reply.body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        return None


def error_code(body: Any) -> str:
    """The ``error`` code of a Listrak (or OAuth) error body, or ``""``."""
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"][:80]
    return ""


def error_text(body: Any) -> str:
    """``error: message`` of an error body, short, for a message (``""`` when it has neither)."""
    if not isinstance(body, dict):
        return ""
    parts = [str(body.get(key))[:200] for key in ("error", "message", "error_description") if body.get(key)]
    return ": ".join(parts)


def overloaded(reply: Reply, what: str) -> Overloaded:
    """The error for an HTTP 429/503 answer to ``what``."""
    return Overloaded(f"Listrak is overloaded (HTTP {reply.status}) answering {what}; backing off.",
                      retry_after_seconds(reply.headers.get("Retry-After")))


def not_the_service(reply: Reply, what: str, service: str, right: str) -> WrongEndpointError | None:
    """The configuration error for an answer plainly from another server, else ``None``."""
    status, url = reply.status, reply.url
    if 300 <= status < 400:
        location = (reply.headers.get("Location") or "an address it does not name")[:200]
        return WrongEndpointError(f"{url} redirects to {location} (HTTP {status}), so it is not {service}. {right}")
    media = (reply.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    head = reply.body[:1024].removeprefix(b"\xef\xbb\xbf")
    if "html" in media or _HTML.match(head):
        return WrongEndpointError(
            f"{url} is not {service}: it answered {what} with an HTML page (HTTP {status}). {right}")
    if _SOAP.match(head):  # the SOAP service answers a stray request with a fault (HTTP 500)
        return WrongEndpointError(
            f"{url} is not {service}: it answered {what} with a SOAP envelope (HTTP {status}), as the SOAP "
            f"service does. {right}")
    return None


def api_error(reply: Reply, what: str, scope: tuple[str, int] | None = None,
              right: str = RIGHT_REST) -> ListrakSyncError | None:
    """The error for a non-200 API answer to ``what``; ``None`` for a 401 (refresh and retry).

    ``scope`` names the object a 404 ERROR_UNABLE_TO_LOCATE_RESOURCE skips (kind, id).
    """
    status = reply.status
    if status in (429, 503):
        return overloaded(reply, what)
    other = not_the_service(reply, what, "the Listrak REST API", right)
    if other is not None:
        return other
    body = read_json(reply)
    code, text = error_code(body), error_text(body)
    if status >= 500:
        return ServerFaultError(f"Listrak answered {what} with HTTP {status}{f' ({text})' if text else ''}.")
    if status == 401:
        return None
    if status == 404 and code == "ERROR_UNABLE_TO_LOCATE_RESOURCE":
        return ObjectRefusedError(f"Listrak does not find {what} (HTTP 404, {text}): deleted, or not the "
                                  "integration's to see; it was skipped, its rows are kept, and the next run asks "
                                  "again.", kind=scope[0] if scope else "", object_id=scope[1] if scope else None)
    if status == 403 and scope is not None:  # undocumented (REST.md §10.14): one object's permission
        return ObjectRefusedError(f"Listrak refused {what} (HTTP 403{f', {text}' if text else ''}): it was skipped, "
                                  "its rows are kept, and the next run asks again. Check the integration's access "
                                  f"to the {scope[0]} in {_INTEGRATION}.", kind=scope[0], object_id=scope[1])
    if status in (404, 405, 410, 415, 501) or (status == 400 and not code):
        found = code or HTTPStatus(status).phrase.lower()
        return WrongEndpointError(
            f"{reply.url} is not the Listrak REST API: it answered {what} with HTTP {status} ({found}). {right}")
    return ServiceFaultError(f"Listrak refused {what} with HTTP {status}{f' ({text})' if text else ''}.")


def envelope(reply: Reply, what: str, right: str = RIGHT_REST) -> dict[str, Any]:
    """A 200 answer's envelope: a JSON object holding ``data``.

    Raises:
        WrongEndpointError: a web page, or JSON of another shape (another server answered).
        MalformedResponseError: JSON cut short (transient: the same request may come whole).
    """
    other = not_the_service(reply, what, "the Listrak REST API", right)
    if other is not None:
        raise other
    body = read_json(reply)
    if body is None:
        head = reply.body.lstrip()[:1]
        if head in (b"{", b"["):
            raise MalformedResponseError(f"The answer to {what} is JSON cut short ({len(reply.body)} bytes).")
        raise WrongEndpointError(f"{reply.url} is not the Listrak REST API: it answered {what} with something that "
                                 f"is not JSON (HTTP {reply.status}). {right}")
    if not isinstance(body, dict) or "data" not in body:
        shape = f"an object with keys {', '.join(sorted(body)[:6])}" if isinstance(body, dict) else \
            f"a JSON {type(body).__name__}"
        raise WrongEndpointError(f"{reply.url} is not the Listrak REST API: it answered {what} with {shape}, not "
                                 f"Listrak's envelope {{status, data}}. {right}")
    return body


def token_error(reply: Reply, client_id: str) -> ListrakSyncError:
    """The error for a token request that did not get a token (a status other than 200).

    Below 500 (but 429) it is terminal: Listrak does not say which of the causes it was.
    """
    what = "the token request"
    if reply.status in (429, 503):
        return overloaded(reply, what)
    other = not_the_service(reply, what, "Listrak's OAuth2 token endpoint", RIGHT_TOKEN)
    if other is not None:
        return other
    if reply.status >= 500:
        return ServerFaultError(f"Listrak's token endpoint answered HTTP {reply.status}.")
    body = read_json(reply)
    code, text = error_code(body), error_text(body)
    if reply.status in (404, 405, 410, 501) and not code:
        return WrongEndpointError(f"{reply.url} is not Listrak's OAuth2 token endpoint: it answered HTTP "
                                  f"{reply.status}. {RIGHT_TOKEN}")
    return RestAccessError(
        f"Listrak refused a token for client ID {client_id!r} (HTTP {reply.status}"
        f"{f', {text}' if text else ''}). Check LISTRAK_CLIENT_ID and LISTRAK_CLIENT_SECRET, that this machine's "
        f"IP address is allowed and that the integration's API access is not paused ({_INTEGRATION}).")


def unauthorized(what: str, client_id: str, text: str) -> RestAccessError:
    """The error for a second 401 in a row, with a fresh token: terminal."""
    return RestAccessError(
        f"Listrak refused {what} for client ID {client_id!r} even with a new token (HTTP 401"
        f"{f', {text}' if text else ''}). The integration may be paused, this machine's IP address not allowed, or "
        f"it may lack an access area the route needs (List, Message, Report, Segmentation); see {_INTEGRATION}.")


__all__ = [
    "RIGHT_REST",
    "RIGHT_TOKEN",
    "Overloaded",
    "RestAccessError",
    "api_error",
    "envelope",
    "error_code",
    "error_text",
    "not_the_service",
    "overloaded",
    "read_json",
    "token_error",
    "unauthorized",
]
