"""SOAP 1.1 and 1.2 envelopes for the simulator: reading requests, writing responses and faults.

Requests are parsed with a hardened lxml parser (no entities, no DTD, no network) and read the
way ASMX reads them (docs/listrak-api.md §11): children by local name, in any order, unknown ones
ignored. The operation comes from the SOAPAction header (quoted or not) for SOAP 1.1, from the
``action`` parameter of ``application/soap+xml`` for SOAP 1.2, and otherwise from the body
element's name. Anything unreadable becomes a ``soap:Client`` fault.

``strict`` parsing (``Profile.strict_http``) enforces HTTP as ASMX does: a Content-Type other
than ``text/xml`` or ``application/soap+xml`` is refused with HTTP 415
(:class:`UnsupportedMediaType`), an envelope of the other SOAP version is a
``soap:VersionMismatch`` fault, and a missing or empty action is the 500 fault "Server did not
recognize the value of HTTP Header SOAPAction: ." instead of routing by the body element.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from lxml import etree

from listrak_sync.simulator.render import escape_text
from listrak_sync.streams import NAMESPACE

XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
XSD_NS = "http://www.w3.org/2001/XMLSchema"
_XSI_NIL = f"{{{XSI_NS}}}nil"


@dataclass(frozen=True)
class SoapVersion:
    """What differs between SOAP 1.1 and 1.2 on the wire."""

    name: str
    namespace: str
    content_type: str
    client_code: str
    server_code: str


SOAP11 = SoapVersion(
    "1.1",
    "http://schemas.xmlsoap.org/soap/envelope/",
    "text/xml; charset=utf-8",
    "soap:Client",
    "soap:Server",
)
SOAP12 = SoapVersion(
    "1.2",
    "http://www.w3.org/2003/05/soap-envelope",
    "application/soap+xml; charset=utf-8",
    "soap:Sender",
    "soap:Receiver",
)
_VERSIONS = {SOAP11.namespace: SOAP11, SOAP12.namespace: SOAP12}


class SoapFault(Exception):
    """A fault to send back: ``client`` faults blame the request, the others the server.

    ``code`` replaces the faultcode the two flags give (``soap:VersionMismatch``).
    """

    def __init__(self, message: str, *, client: bool = True, version: SoapVersion = SOAP11,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.client = client
        self.version = version
        self.code = code


class UnsupportedMediaType(SoapFault):
    """A request whose Content-Type is no SOAP media type; ASMX answers HTTP 415 without SOAP."""

    status = 415


@dataclass
class SoapRequest:
    """A parsed SOAP request: its operation, parameters and WSUser credentials."""

    version: SoapVersion
    operation: str
    params: dict[str, str | None]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    has_ws_user: bool = False


_local = threading.local()


def _parser() -> etree.XMLParser:
    # lxml parsers are not safe to share between threads; one per server thread is cheap.
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True
        )
        _local.parser = parser
    return parser


def content_type_params(content_type: str | None) -> tuple[str, dict[str, str]]:
    """Split a Content-Type header into its media type and parameters (quotes removed)."""
    if not content_type:
        return "", {}
    media, *rest = content_type.split(";")
    params: dict[str, str] = {}
    for part in rest:
        key, sep, value = part.partition("=")
        if sep:
            params[key.strip().lower()] = value.strip().strip('"')
    return media.strip().lower(), params


def version_for(content_type: str | None) -> SoapVersion:
    """The SOAP version a Content-Type announces (1.1 unless it is ``application/soap+xml``)."""
    media, _ = content_type_params(content_type)
    return SOAP12 if media == "application/soap+xml" else SOAP11


def _local_name(element: etree._Element) -> str:
    return etree.QName(element).localname


def parse_request(
    body: bytes, content_type: str | None, soap_action: str | None, operations: Container[str],
    *, strict: bool = False,
) -> SoapRequest:
    """Parse and route one SOAP request.

    Args:
        body: the raw HTTP request body.
        content_type: the Content-Type header, if any.
        soap_action: the SOAPAction header, if any (SOAP 1.1).
        operations: the operation names the service implements.
        strict: enforce Content-Type and SOAPAction as ASMX does (module docstring).

    Returns:
        The request's version, operation, parameters and credentials.

    Raises:
        UnsupportedMediaType: ``strict`` and the Content-Type is not a SOAP one.
        SoapFault: a client fault when the body is not a SOAP envelope for a known operation.
    """
    version = version_for(content_type)
    if strict and content_type_params(content_type)[0] not in ("text/xml", "application/soap+xml"):
        raise UnsupportedMediaType(f"Unsupported media type {content_type or '(none)'}.", version=version)
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as exc:
        message = f"Server was unable to read request. ---> There is an error in XML document: {exc}"
        raise SoapFault(message, version=version) from None
    envelope_version = _VERSIONS.get(etree.QName(root).namespace or "")
    if envelope_version is None or _local_name(root) != "Envelope":
        raise SoapFault("The request is not a SOAP 1.1 or 1.2 envelope.", version=version)
    if strict and envelope_version is not version:
        message = (f"Possible SOAP version mismatch: Envelope namespace {envelope_version.namespace} was "
                   f"unexpected. Expecting {version.namespace}.")
        raise SoapFault(message, version=version, code="soap:VersionMismatch")
    version = envelope_version
    ns = version.namespace
    body_element = root.find(f"{{{ns}}}Body")
    call = None if body_element is None else next(iter(body_element.iterchildren(etree.Element)), None)
    if call is None:
        raise SoapFault("The SOAP Body holds no operation element.", version=version)
    operation = _route(version, call, content_type, soap_action, operations, strict)
    request = SoapRequest(version, operation, _read_params(call))
    header = root.find(f"{{{ns}}}Header")
    ws_user = None if header is None else header.find(f"{{{NAMESPACE}}}WSUser")
    if ws_user is not None:
        credentials = _read_params(ws_user)
        request.has_ws_user = True
        request.username = credentials.get("UserName")
        request.password = credentials.get("Password")
    return request


def _route(
    version: SoapVersion,
    call: etree._Element,
    content_type: str | None,
    soap_action: str | None,
    operations: Container[str],
    strict: bool,
) -> str:
    if version is SOAP12:
        action = content_type_params(content_type)[1].get("action", "")
    else:
        action = (soap_action or "").strip().strip('"').strip()
    if strict and not action:  # ASMX routes on the action alone
        raise SoapFault("Server did not recognize the value of HTTP Header SOAPAction: .", version=version)
    element_name = _local_name(call)
    if etree.QName(call).namespace != NAMESPACE:
        raise SoapFault(f"The body element {element_name} is not in namespace {NAMESPACE}.", version=version)
    if action:
        operation = action[len(NAMESPACE) :] if action.startswith(NAMESPACE) else ""
        if operation not in operations:
            raise SoapFault(
                f"Server did not recognize the value of HTTP Header SOAPAction: {action}.",
                version=version,
            )
        if operation != element_name:
            message = f"The body element {element_name} does not match the SOAP action {operation}."
            raise SoapFault(message, version=version)
        return operation
    if element_name not in operations:
        raise SoapFault(f"Server did not recognize the operation {element_name}.", version=version)
    return element_name


def _read_params(element: etree._Element) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for child in element.iterchildren(etree.Element):
        if child.get(_XSI_NIL) in ("true", "1"):
            params[_local_name(child)] = None
        else:
            params[_local_name(child)] = child.text or ""
    return params


_DATETIME = re.compile(
    r"\s*(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?\s*$"
)


def parse_datetime(text: str, to_local: Callable[[datetime], datetime] | None = None) -> datetime:
    """Read a request dateTime in any form docs/listrak-api.md §6 lists.

    Date-only, with ``T``, with fractional seconds (up to 7 digits) and with ``Z`` or an
    offset. The virtual clock is naive; a value with a zone is converted to UTC and the zone
    dropped, so naive account times are read as UTC. With ``to_local``, a value with a zone is
    then passed through it (UTC to the service's wall clock, as .NET converts to local time);
    a value without one is taken as it is.

    Raises:
        ValueError: the text is not a date or dateTime.
    """
    match = _DATETIME.match(text)
    if match is None:
        raise ValueError(f"not a dateTime: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    clock = (int(hour or 0), int(minute or 0), int(second or 0))
    value = datetime(int(year), int(month), int(day), *clock, micro)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        value -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    if zone and to_local is not None:
        value = to_local(value)
    return value


def parse_bool(text: str) -> bool:
    """Read an xsd:boolean (``true``/``false``/``1``/``0``).

    Raises:
        ValueError: anything else.
    """
    value = text.strip()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _envelope(version: SoapVersion, body: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{version.namespace}" xmlns:xsi="{XSI_NS}" xmlns:xsd="{XSD_NS}">'
        f"<soap:Body>{body}</soap:Body></soap:Envelope>"
    ).encode()


def response_envelope(version: SoapVersion, operation: str, children: str) -> bytes:
    """Wrap the children of ``<operation>Response`` in a SOAP envelope (no Header)."""
    return _envelope(version, f'<{operation}Response xmlns="{NAMESPACE}">{children}</{operation}Response>')


def fault_envelope(fault: SoapFault) -> bytes:
    """A SOAP fault envelope in the shape of the fault's SOAP version."""
    version = fault.version
    code = fault.code or (version.client_code if fault.client else version.server_code)
    text = escape_text(fault.message)
    if version is SOAP12:
        body = (
            f"<soap:Fault><soap:Code><soap:Value>{code}</soap:Value></soap:Code>"
            f'<soap:Reason><soap:Text xml:lang="en">{text}</soap:Text></soap:Reason>'
            "<soap:Detail /></soap:Fault>"
        )
    else:
        body = (
            f"<soap:Fault><faultcode>{code}</faultcode><faultstring>{text}</faultstring>"
            "<detail /></soap:Fault>"
        )
    return _envelope(version, body)
