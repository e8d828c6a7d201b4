"""The contract file: the bundled WSDL agrees with docs/listrak-api.md §2-§5 and with the stream table."""

from __future__ import annotations

import pytest
import requests
from conftest import XSD_NS, bundled_wsdl_bytes
from lxml import etree

from listrak_sync.simulator import Simulator
from listrak_sync.streams import NAMESPACE, STREAMS, Stream

WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
SOAP_BINDING_NS = "http://schemas.xmlsoap.org/wsdl/soap/"
SOAP12_BINDING_NS = "http://schemas.xmlsoap.org/wsdl/soap12/"
NS = {"wsdl": WSDL_NS, "s": XSD_NS, "soap": SOAP_BINDING_NS, "soap12": SOAP12_BINDING_NS}
REQUIRED_OPERATIONS = {
    "GetContactListCollection",
    "GetContactList",
    "ReportListMessageActivity",
    "ReportRangeMessageContactClick",
    "ReportRangeMessageContactOpen",
    "ReportRangeMessageContactRead",
    "ReportRangeMessageContactRemoval",
    "ReportRangeMessageContactBounces",
    "ReportMessageContactSent",
    "ReportRangeSubscribedContacts",
}
PRODUCTION = "https://webservices.listrak.com/v31/IntegrationService.asmx"

WSDL = etree.fromstring(bundled_wsdl_bytes())
SCHEMA = WSDL.find("wsdl:types/s:schema", NS)


def sequence_of(type_name: str) -> list[etree._Element]:
    complex_type = SCHEMA.find(f"s:complexType[@name='{type_name}']", NS)
    assert complex_type is not None, type_name
    return complex_type.findall("s:sequence/s:element", NS)


def element_sequence(element_name: str) -> list[etree._Element]:
    element = SCHEMA.find(f"s:element[@name='{element_name}']", NS)
    assert element is not None, element_name
    return element.findall("s:complexType/s:sequence/s:element", NS)


def facts(element: etree._Element) -> tuple[str, str, str, str, bool]:
    return (element.get("name"), element.get("type"), element.get("minOccurs"), element.get("maxOccurs"),
            element.get("nillable") == "true")


def test_target_namespace_and_schema_form() -> None:
    assert WSDL.get("targetNamespace") == NAMESPACE
    assert SCHEMA.get("targetNamespace") == NAMESPACE
    assert SCHEMA.get("elementFormDefault") == "qualified"


def test_operations_bindings_and_service_names() -> None:
    port_type = WSDL.find("wsdl:portType[@name='IntegrationServiceSoap']", NS)
    operations = {op.get("name") for op in port_type.findall("wsdl:operation", NS)}
    assert operations >= REQUIRED_OPERATIONS
    bindings = {b.get("name"): b for b in WSDL.findall("wsdl:binding", NS)}
    assert set(bindings) == {"IntegrationServiceSoap", "IntegrationServiceSoap12"}
    assert bindings["IntegrationServiceSoap"].find("soap:binding", NS) is not None
    assert bindings["IntegrationServiceSoap12"].find("soap12:binding", NS) is not None
    ports = WSDL.findall("wsdl:service[@name='IntegrationService']/wsdl:port", NS)
    assert {p.get("binding") for p in ports} == {"tns:IntegrationServiceSoap", "tns:IntegrationServiceSoap12"}
    addresses = [a.get("location") for p in ports for a in p]
    assert addresses == [PRODUCTION, PRODUCTION]


@pytest.mark.parametrize(("binding", "prefix"), [("IntegrationServiceSoap", "soap"),
                                                  ("IntegrationServiceSoap12", "soap12")])
def test_every_input_carries_the_wsuser_header_and_no_output_does(binding: str, prefix: str) -> None:
    operations = WSDL.findall(f"wsdl:binding[@name='{binding}']/wsdl:operation", NS)
    assert len(operations) >= len(REQUIRED_OPERATIONS)
    for op in operations:
        name = op.get("name")
        assert op.find(f"{prefix}:operation", NS).get("soapAction") == NAMESPACE + name
        header = op.find(f"wsdl:input/{prefix}:header", NS)
        assert header is not None and header.get("part") == "WSUser", name
        assert header.get("message") == f"tns:{name}WSUser"
        assert op.find(f"wsdl:output/{prefix}:header", NS) is None
        message = WSDL.find(f"wsdl:message[@name='{name}WSUser']/wsdl:part", NS)
        assert (message.get("name"), message.get("element")) == ("WSUser", "tns:WSUser")
        for suffix, element in (("SoapIn", name), ("SoapOut", f"{name}Response")):
            part = WSDL.find(f"wsdl:message[@name='{name}{suffix}']/wsdl:part", NS)
            assert (part.get("name"), part.get("element")) == ("parameters", f"tns:{element}")


def test_wsuser_type() -> None:
    assert [facts(e) for e in sequence_of("WSUser")] == [
        ("UserName", "s:string", "0", "1", False),
        ("Password", "s:string", "0", "1", False),
    ]


def test_ws_exception_type_and_in_out_parameter() -> None:
    assert [facts(e) for e in sequence_of("WSException")] == [
        ("SoapMethod", "s:string", "0", "1", False),
        ("DateTime", "s:dateTime", "1", "1", True),
        ("Description", "s:string", "0", "1", False),
    ]
    ws_exception = ("WSException", "tns:WSException", "1", "1", True)
    for op in ("ReportListMessageActivity", "ReportMessageContactSent"):
        assert facts(element_sequence(op)[-1]) == ws_exception
        response = [facts(e) for e in element_sequence(f"{op}Response")]
        assert response[1:] == [ws_exception] and response[0][0] == f"{op}Result"


@pytest.mark.parametrize(("operation", "expected"), [
    ("ReportListMessageActivity", ["ListID", "StartDate", "EndDate", "IncludeTestMessages", "WSException"]),
    ("ReportRangeMessageContactOpen", ["MsgID", "StartDate", "EndDate", "Page"]),
    ("ReportRangeMessageContactBounces", ["MsgID", "StartDate", "EndDate", "Page"]),
    ("ReportMessageContactSent", ["MsgID", "Page", "WSException"]),
    ("ReportRangeSubscribedContacts", ["ListID", "StartDate", "EndDate", "Page"]),
    ("GetContactList", ["ListID"]),
    ("GetContactListCollection", []),
])
def test_request_wrappers(operation: str, expected: list[str]) -> None:
    elements = element_sequence(operation)
    assert [e.get("name") for e in elements] == expected
    assert all(e.get("minOccurs") == "1" for e in elements)


def test_get_contact_list_returns_a_nillable_ws_contact_list() -> None:
    assert [facts(e) for e in element_sequence("GetContactListResponse")] == [
        ("WSContactList", "tns:WSContactList", "1", "1", True)
    ]


def test_google_tracking_domains_is_a_repeated_element_and_vmta_is_nested() -> None:
    by_name = {e.get("name"): facts(e) for e in sequence_of("WSContactList")}
    assert by_name["GoogleTrackingDomains"] == ("GoogleTrackingDomains", "s:string", "0", "unbounded", False)
    assert by_name["Vmta"] == ("Vmta", "tns:WSVmta", "0", "1", False)
    assert [facts(e) for e in sequence_of("WSVmta")] == [
        ("VmtaID", "s:int", "1", "1", False), ("Description", "s:string", "0", "1", False)]


def xml_paths(stream: Stream) -> list[str]:
    """The stream's columns as top-level element names, nested paths collapsed to their parent."""
    paths: list[str] = []
    for column in stream.columns:
        top = column.path[0]
        if not paths or paths[-1] != top or len(column.path) == 1:
            paths.append(top)
    return paths


@pytest.mark.parametrize("stream", STREAMS, ids=lambda s: s.name)
def test_item_type_sequence_matches_the_stream_table(stream: Stream) -> None:
    response = element_sequence(f"{stream.operation}Response")
    assert response[0].get("name") == stream.result_element
    array_type = response[0].get("type").removeprefix("tns:")
    (item,) = sequence_of(array_type)
    assert facts(item) == (stream.item_element, f"tns:{stream.item_element}", "0", "unbounded", True)
    elements = sequence_of(stream.item_element)
    assert [e.get("name") for e in elements] == xml_paths(stream)
    nested = [c for c in stream.columns if len(c.path) > 1]
    for column in nested:
        child_type = next(e.get("type") for e in elements if e.get("name") == column.path[0])
        assert column.path[1] in [e.get("name") for e in sequence_of(child_type.removeprefix("tns:"))]
    by_name = {e.get("name"): e for e in elements}
    for column in stream.columns:
        if len(column.path) == 1 and not column.nullable:  # required value types are minOccurs=1
            assert by_name[column.name].get("minOccurs") == "1", column.name


def test_served_wsdl_points_at_the_server_in_any_case(simulator: Simulator) -> None:
    for query in ("WSDL", "wsdl", "Wsdl"):
        response = requests.get(f"{simulator.url}?{query}", timeout=10)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/xml")
        served = etree.fromstring(response.content)
        locations = [a.get("location") for a in served.iterfind("wsdl:service/wsdl:port/*", NS)]
        assert locations == [simulator.url, simulator.url]
    assert response.content.replace(simulator.url.encode(), PRODUCTION.encode()) == bundled_wsdl_bytes()
    assert simulator.stats()["wsdl_requests"] == 3
