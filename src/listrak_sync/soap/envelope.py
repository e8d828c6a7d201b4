"""SOAP 1.1 request envelopes for the Listrak v31 IntegrationService.

One builder serves every operation: the request kind (read from the stream table) fixes the
children and their exact order (docs/listrak-api.md §4); values are formatted the way the service's
.NET XmlSerializer reads them. lxml does the escaping, so a password holding ``<``, ``&`` or
``]]>`` goes on the wire intact and cannot break the envelope.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from lxml import etree

from listrak_sync.errors import ConfigError
from listrak_sync.settings import Secret
from listrak_sync.streams import NAMESPACE, STREAMS, RequestKind

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSD = "http://www.w3.org/2001/XMLSchema"
CONTENT_TYPE = "text/xml; charset=utf-8"

# Every member of these request wrappers is minOccurs=1, so this order is the WSDL's (docs/listrak-api.md §4.3-§4.6).
REQUEST_FIELDS: dict[RequestKind, tuple[str, ...]] = {
    RequestKind.COLLECTION: (),
    RequestKind.LIST_WINDOW: ("ListID", "StartDate", "EndDate", "IncludeTestMessages", "WSException"),
    RequestKind.MESSAGE_RANGE_PAGED: ("MsgID", "StartDate", "EndDate", "Page"),
    RequestKind.MESSAGE_PAGED: ("MsgID", "Page", "WSException"),
    RequestKind.LIST_RANGE_PAGED: ("ListID", "StartDate", "EndDate", "Page"),
}
# Sent as xsi:nil when the caller gives none, as zeep does for a required nillable element.
NILLABLE_FIELDS = frozenset({"WSException"})

REQUEST_KINDS: dict[str, RequestKind] = {stream.operation: stream.request for stream in STREAMS}

_NSMAP = {"soap": SOAP_ENV, "xsi": XSI, "xsd": XSD}


def soap_action(operation: str) -> str:
    """The quoted ``SOAPAction`` header value for ``operation``."""
    return f'"{NAMESPACE}{operation}"'


def request_headers(operation: str) -> dict[str, str]:
    """HTTP headers of a SOAP 1.1 call to ``operation``."""
    return {"Content-Type": CONTENT_TYPE, "SOAPAction": soap_action(operation)}


def order_params(operation: str, params: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Put the parameters of ``operation`` in the exact request order, filling nillable ones.

    Operations outside the stream table keep the caller's order.

    Args:
        operation: the SOAP operation name.
        params: parameter name to value.

    Returns:
        ``(name, value)`` pairs in wire order; a nillable parameter not given is ``None``.

    Raises:
        ValueError: a required parameter is missing or an unknown one was given (a bug in the
            caller, not a user error).
    """
    kind = REQUEST_KINDS.get(operation)
    if kind is None:
        return list(params.items())
    fields = REQUEST_FIELDS[kind]
    unknown = sorted(set(params) - set(fields))
    missing = [name for name in fields if name not in params and name not in NILLABLE_FIELDS]
    if unknown or missing:
        raise ValueError(
            f"{operation} takes {', '.join(fields) or 'no parameters'}; "
            f"missing {missing or 'none'}, unknown {unknown or 'none'}"
        )
    return [(name, params.get(name)) for name in fields]


def format_value(value: Any) -> str:
    """Render a parameter value as the service reads it.

    Datetimes go out as ``YYYY-MM-DDTHH:MM:SS`` with no zone (the service's own form). They
    must be the service's naive wall times, as :class:`~listrak_sync.time.ServiceClock`
    produces them: only it knows the service's zone. Booleans are ``true``/``false``.

    Raises:
        TypeError: an aware datetime (an instant, not yet converted to the service's wall
            time), or a value of a type the service has no use for.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            raise TypeError(
                f"{value!r} is aware; a request date must be the service's naive wall time "
                "(ServiceClock.wall or ServiceClock.request_range)"
            )
        return value.strftime("%Y-%m-%dT%H:%M:%S")
    if isinstance(value, date):
        return value.strftime("%Y-%m-%dT00:00:00")
    if isinstance(value, str):
        return value
    raise TypeError(f"cannot send a {type(value).__name__} in a SOAP request")


def build_envelope(operation: str, params: Mapping[str, Any], *, username: str, password: Secret) -> bytes:
    """Build the SOAP 1.1 request for one call.

    Args:
        operation: the SOAP operation name (the body wrapper's element name).
        params: the request's parameters; see :func:`order_params`.
        username: the API user, sent in the ``WSUser`` header.
        password: its password, sent in the ``WSUser`` header and nowhere else.

    Returns:
        The UTF-8 envelope with an XML declaration.

    Raises:
        ValueError: bad parameters (a bug in the caller).
        TypeError: a parameter value :func:`format_value` refuses (an aware datetime: a bug in
            the caller).
        ConfigError: a username/password holding characters XML cannot carry (the message
            never contains the password).
    """
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap=_NSMAP)
    header = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Header")
    user = etree.SubElement(header, f"{{{NAMESPACE}}}WSUser", nsmap={None: NAMESPACE})  # type: ignore[dict-item]
    for name, value in (("UserName", username), ("Password", password.reveal())):
        try:
            etree.SubElement(user, f"{{{NAMESPACE}}}{name}").text = value
        except ValueError:
            raise ConfigError(
                f"The Listrak {name.lower()} holds characters XML cannot carry (control characters); "
                "check LISTRAK_USERNAME/LISTRAK_PASSWORD."
            ) from None
    body = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body")
    wrapper = etree.SubElement(body, f"{{{NAMESPACE}}}{operation}", nsmap={None: NAMESPACE})  # type: ignore[dict-item]
    for name, value in order_params(operation, params):
        child = etree.SubElement(wrapper, f"{{{NAMESPACE}}}{name}")
        if value is None:
            child.set(f"{{{XSI}}}nil", "true")
        else:
            child.text = format_value(value)
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


__all__ = [
    "CONTENT_TYPE",
    "REQUEST_FIELDS",
    "REQUEST_KINDS",
    "SOAP_ENV",
    "build_envelope",
    "format_value",
    "order_params",
    "request_headers",
    "soap_action",
]
