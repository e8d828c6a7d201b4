"""Shared fixtures and the suite's rules.

- ``simulator``: a :class:`Simulator` on a free loopback port, tiny scale, page size 7.
- ``soap``: a :class:`SoapCaller` bound to ``simulator`` that posts hand-written envelopes.
- ``wsdl_schema``: the XML Schema embedded in the bundled WSDL (xmlschema), to validate
  response bodies against the contract.
- Every test runs without the developer's settings in the environment (``helpers.clean_env``),
  and with a temporary directory of the session's own (runs lock their dataset there).
- A test marked ``postgres`` skips when no server listens on 127.0.0.1:5432.
- ``LISTRAK_SYNC_STRICT_SKIPS=1`` (``.ci/run`` sets it) turns every skip into a failure, so CI
  runs every test or fails.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import pytest
import requests
import xmlschema
from helpers import is_developer_setting, postgres_is_up
from lxml import etree

from listrak_sync.simulator import DEFAULT_PASSWORD, DEFAULT_USERNAME, Simulator
from listrak_sync.streams import NAMESPACE

SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
XSD_NS = "http://www.w3.org/2001/XMLSchema"
TEST_PAGE_SIZE = 7
STRICT_SKIPS = "LISTRAK_SYNC_STRICT_SKIPS"


def bundled_wsdl_bytes() -> bytes:
    """The WSDL file shipped in the package."""
    return (resources.files("listrak_sync.soap") / "IntegrationService.wsdl").read_bytes()


def embedded_schema(wsdl: bytes) -> xmlschema.XMLSchema:
    """The ``<s:schema>`` of a WSDL as an xmlschema object (namespace declarations kept)."""
    schema = etree.fromstring(wsdl).find(f".//{{{XSD_NS}}}schema")
    assert schema is not None
    return xmlschema.XMLSchema(etree.tostring(schema).decode())


def envelope(body: str, *, username: str | None = DEFAULT_USERNAME, password: str | None = DEFAULT_PASSWORD,
             version: str = "1.1") -> bytes:
    """A request envelope with a WSUser header (omitted when ``username`` is None)."""
    ns = SOAP12_NS if version == "1.2" else SOAP11_NS
    header = ""
    if username is not None:
        header = (f'<soap:Header><WSUser xmlns="{NAMESPACE}"><UserName>{username}</UserName>'
                  f"<Password>{password}</Password></WSUser></soap:Header>")
    return (f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{ns}" '
            f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">{header}'
            f"<soap:Body>{body}</soap:Body></soap:Envelope>").encode()


def call_body(operation: str, **params: Any) -> str:
    """``<Op xmlns=...><Name>value</Name>...</Op>``; a value of None is sent as xsi:nil."""
    children = "".join(
        f'<{name} xsi:nil="true" />' if value is None else f"<{name}>{value}</{name}>"
        for name, value in params.items()
    )
    return f'<{operation} xmlns="{NAMESPACE}">{children}</{operation}>'


@dataclass
class SoapResponse:
    """An HTTP response to a SOAP call, with its parsed envelope."""

    status: int
    content_type: str
    content: bytes

    @property
    def root(self) -> etree._Element:
        return etree.fromstring(self.content)

    @property
    def payload(self) -> etree._Element:
        """The single element inside the SOAP Body."""
        body = self.root[0]
        assert etree.QName(body).localname == "Body"
        assert len(body) == 1
        return body[0]

    @property
    def fault_string(self) -> str:
        fault = self.payload
        assert etree.QName(fault).localname == "Fault", self.content[:300]
        text = fault.findtext("faultstring")
        if text is None:  # SOAP 1.2
            text = fault.findtext(f"{{{SOAP12_NS}}}Reason/{{{SOAP12_NS}}}Text")
        return text or ""

    @property
    def fault_code(self) -> str:
        fault = self.payload
        code = fault.findtext("faultcode")
        return code if code is not None else fault.findtext(f"{{{SOAP12_NS}}}Code/{{{SOAP12_NS}}}Value") or ""


class SoapCaller:
    """Posts hand-written SOAP requests to a simulator over one pooled HTTP session."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()

    def post(self, data: bytes, headers: dict[str, str] | None = None, timeout: float = 10) -> SoapResponse:
        response = self.session.post(self.url, data=data, headers=headers or {}, timeout=timeout)
        return SoapResponse(response.status_code, response.headers.get("Content-Type", ""), response.content)

    def call(self, operation: str, *, username: str | None = DEFAULT_USERNAME,
             password: str | None = DEFAULT_PASSWORD, **params: Any) -> SoapResponse:
        """A SOAP 1.1 call with a quoted SOAPAction."""
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{NAMESPACE}{operation}"'}
        return self.post(envelope(call_body(operation, **params), username=username, password=password), headers)


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    """A running tiny simulator on a free port, page size 7."""
    with Simulator(scale="tiny", page_size=TEST_PAGE_SIZE) as sim:
        yield sim


@pytest.fixture
def soap(simulator: Simulator) -> Iterator[SoapCaller]:
    """Raw SOAP calls to the ``simulator`` fixture."""
    caller = SoapCaller(simulator.url)
    yield caller
    caller.session.close()


@pytest.fixture(scope="session")
def wsdl_schema() -> xmlschema.XMLSchema:
    """The XML Schema embedded in the bundled WSDL."""
    return embedded_schema(bundled_wsdl_bytes())



@pytest.fixture(autouse=True)
def _no_developer_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run each test without LISTRAK_*, SOURCES__*, DESTINATION__*, DLT_* ... variables, even those an
    earlier test set and left behind."""
    for name in [name for name in os.environ if is_developer_setting(name)]:
        monkeypatch.delenv(name)


@pytest.fixture(scope="session", autouse=True)
def _own_temporary_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A temporary directory of this session's own, for it and every process it starts.

    Runs keep their private working folders there, and remove the folders of runs that died:
    another checkout's tests running beside this session's are theirs, not this session's.
    """
    own = str(tmp_path_factory.mktemp("tmpdir"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", own)
        patch.setattr(tempfile, "tempdir", own)
        yield


_strict = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_strict] = os.environ.get(STRICT_SKIPS, "") not in ("", "0")
    # Before collection too: importing a module may read settings (the Dagster module builds its
    # definitions from the environment).
    for name in [name for name in os.environ if is_developer_setting(name)]:
        del os.environ[name]


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("postgres") and not postgres_is_up():
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432 (.ci/run starts one)")


def _fail_if_strict(config: pytest.Config, report: pytest.TestReport | pytest.CollectReport) -> None:
    if config.stash[_strict] and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under {STRICT_SKIPS}=1, where every test must run: {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    report: pytest.TestReport = yield
    _fail_if_strict(item.config, report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> pytest.CollectReport:
    report: pytest.CollectReport = yield
    _fail_if_strict(collector.config, report)
    return report
