"""What an answer of the service means for the caller: the one place that turns answers into errors.

::

    classify_fault(fault)            a SOAP fault or WSException, by Listrak's bracketed token
    overloaded(reply)                HTTP 503/429: back off (Retry-After kept for the backoff)
    not_soap(reply, root, problem)   an answer that is no SOAP envelope, by status and content:
                                     a web page, 400/404/405/410/501 or redirect -> the endpoint
                                     is wrong (config), other 5xx -> transient, a cut-off
                                     envelope -> malformed (transient)
    not_the_operation(reply, ...)    a well-formed SOAP answer to another operation -> config
    unusable_connection(exc, url)    no HTTP exchange, for a reason no retry mends: TLS against
                                     plain HTTP, an unverifiable certificate, a server that does
                                     not speak HTTP -> config (else None: the transport's own)

The line between "wrong endpoint" and "transient": the real service can cut an answer short
(docs/listrak-api.md §8), which leaves XML that does not parse; that stays transient. What is
well-formed but plainly another server's (a web page, another SOAP body, a status that says
nothing here takes SOAP POSTs, a TLS or HTTP handshake that fails by its first bytes) is a
configuration error, raised at once: retrying cannot change which server answers.

Server text quoted in a message must already be redacted (the client does it).
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import TYPE_CHECKING

from lxml import etree

from listrak_sync.errors import (
    ConfigError,
    InvalidLogonError,
    ListrakSyncError,
    LoginAttemptsExceededError,
    MalformedResponseError,
    ObjectRefusedError,
    ProhibitedIPError,
    ServerFaultError,
    ServiceFaultError,
    WrongEndpointError,
)
from listrak_sync.settings import PRODUCTION_ENDPOINT
from listrak_sync.soap.parse import SOAP11_ENV, SOAP12_ENV, SoapFault
from listrak_sync.wire import connection
from listrak_sync.wire.connection import public_type
from listrak_sync.wire.retry import Overloaded, retry_after_seconds

if TYPE_CHECKING:  # the transport asks this module about failed handshakes
    from listrak_sync.wire.retry import Overloaded, retry_after_seconds
from listrak_sync.wire.transport import Reply

Scope = tuple[str, int]
# IIS's "404 - File or directory not found." inside a fault (tap-listrak skipped such messages),
# but not the digits 404 inside a longer number such as an ID.
_IIS_404 = re.compile(r"(?<![\d.])404(?![\d.])")
# What an in-band WSException says when the object is refused or unknown (wording undocumented).
_REFUSAL_WORDS = re.compile(
    r"access|denied|not available|not authori[sz]ed|permission|not found|does not exist|unknown"
    r"|invalid (list|msg|message)",
    re.IGNORECASE,
)
_ENVELOPES = (f"{{{SOAP11_ENV}}}Envelope", f"{{{SOAP12_ENV}}}Envelope")
_HTML = re.compile(rb"^\s*(<\?xml[^>]*>\s*)?<(!doctype\s+html|html)[\s>]", re.IGNORECASE)
# Statuses that say "nothing at this address answers SOAP POSTs", not "try again": the service
# answers a request it cannot take with a SOAP fault, so these come from another server.
_NOT_HERE = (400, 404, 405, 410, 501)
RIGHT_ENDPOINT = (
    f"Set the endpoint to the SOAP service's .../v31/IntegrationService.asmx URL ({PRODUCTION_ENDPOINT} "
    "for production, or the URL the simulator prints)."
)


def overloaded(operation: str, reply: Reply) -> Overloaded:
    """The error for an HTTP 503/429 answer."""
    return Overloaded(
        f"Listrak is overloaded (HTTP {reply.status}) answering {operation}; backing off.",
        retry_after_seconds(reply.headers.get("Retry-After")),
    )


def classify_fault(
    fault: SoapFault, *, scope: Scope | None, username: str, in_band: bool = False
) -> ListrakSyncError:
    """Turn a SOAP fault (or an in-band WSException) into the error the caller should handle.

    The one place that reads fault text, and only for Listrak's bracketed tokens
    (docs/listrak-api.md §8) and the IIS "404" that tap-listrak saw for unavailable messages.

    Args:
        fault: code local name (``Client``/``Server``), text and detail, already redacted.
        scope: ``("list", id)`` or ``("message", id)`` when the call concerns one object.
        username: the API user, for the message.
        in_band: the text came in a WSException (HTTP 200), which has no fault code: it is a
            refusal only when it says so (a token, a 404, or words of access or an unknown
            object), else a transient server error, so one glitch never drops a whole list.

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
    # The token decides, whichever code carries it: ASMX wraps refusals in soap:Server faults.
    refused = "[AccessDenied]" in text or _IIS_404.search(text) is not None
    if in_band:
        refused = refused or _REFUSAL_WORDS.search(text) is not None
    else:
        refused = refused or fault.code in ("Client", "Sender")
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


def not_soap(operation: str, reply: Reply, root: etree._Element | None, problem: str) -> ListrakSyncError:
    """The error for an answer that is not a readable SOAP envelope.

    Args:
        operation: the operation asked.
        reply: the answer.
        root: its parsed root element, if it was well-formed XML.
        problem: what the parser found wrong, already redacted.

    Returns:
        :class:`WrongEndpointError` for a redirect, a 400/404/405/410/501, or a successful answer that
        is a web page or another document; :class:`ServerFaultError` (retried) for a 5xx;
        :class:`ServiceFaultError` for other statuses; else :class:`MalformedResponseError`
        (retried: a cut-off envelope).
    """
    status, url = reply.status, reply.url
    if 300 <= status < 400:
        location = (reply.headers.get("Location") or "an address it does not name")[:200]
        return WrongEndpointError(
            f"The endpoint {url} redirects to {location} (HTTP {status}); a SOAP request cannot follow "
            f"a redirect. {RIGHT_ENDPOINT}"
        )
    if status in _NOT_HERE:
        return WrongEndpointError(
            f"The endpoint {url} is not the Listrak SOAP service: it answered {operation} with HTTP {status} "
            f"({HTTPStatus(status).phrase.lower()}). {RIGHT_ENDPOINT}"
        )
    if status >= 500:
        return ServerFaultError(f"Listrak answered {operation} with HTTP {status} and no SOAP fault.")
    what = _document_kind(reply, root)
    if 200 <= status < 300 and what is not None:
        return WrongEndpointError(
            f"The endpoint {url} is not the Listrak SOAP service: it answered {operation} with {what} "
            f"(HTTP {status}). {RIGHT_ENDPOINT}"
        )
    if status != 200:
        return ServiceFaultError(
            f"The endpoint answered {operation} with HTTP {status}, not SOAP. Check the endpoint URL."
        )
    return MalformedResponseError(f"{operation}: {problem}")


def not_the_operation(operation: str, reply: Reply, element: str) -> WrongEndpointError:
    """The error for a well-formed SOAP answer whose body holds ``element``, not ``<operation>Response``.

    The service always answers an operation with its own response element (or a fault), and a
    cut-off answer does not parse: another element means another SOAP service answered.
    """
    return WrongEndpointError(
        f"The endpoint {reply.url} is not the Listrak SOAP service: it answered {operation} with a SOAP "
        f"{element[:80]!r} element, not {operation}Response. {RIGHT_ENDPOINT}"
    )


def unusable_connection(error: BaseException, url: str) -> ConfigError | None:
    """:func:`listrak_sync.wire.connection.unusable_connection`, telling the SOAP endpoint to set."""
    return connection.unusable_connection(error, url, RIGHT_ENDPOINT)


def _document_kind(reply: Reply, root: etree._Element | None) -> str | None:
    """What the answer is, when it is plainly not a SOAP answer (a cut-off envelope is not that)."""
    media = (reply.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if "html" in media or _HTML.match(reply.body[:1024].removeprefix(b"\xef\xbb\xbf")):
        return "an HTML page"
    if root is not None and root.tag not in _ENVELOPES:
        name = etree.QName(root).localname if isinstance(root.tag, str) else "?"
        return f"an XML document that is not SOAP (root element {name!r})"
    if media and "xml" not in media:
        return f"a document of type {media}"
    return None


__all__ = [
    "Overloaded",
    "Scope",
    "classify_fault",
    "not_soap",
    "not_the_operation",
    "overloaded",
    "public_type",
    "unusable_connection",
]
