"""Refusals are told by their token, whatever fault code carries them; in-band text by what it says."""

from __future__ import annotations

import pytest

from listrak_sync.errors import ObjectRefusedError, ServerFaultError, ServiceFaultError
from listrak_sync.soap.classify import classify_fault
from listrak_sync.soap.parse import SoapFault

ASMX = "Server was unable to process request. ---> "


@pytest.mark.parametrize("code", ["Client", "Server"])
def test_a_token_refuses_one_object_whatever_the_fault_code(code: str) -> None:
    fault = SoapFault(code, ASMX + "[AccessDenied] ListID 12 is not available to this user.", "")
    error = classify_fault(fault, scope=("list", 12), username="u")
    assert isinstance(error, ObjectRefusedError) and error.object_id == 12


def test_an_asmx_server_fault_without_a_token_is_transient() -> None:
    fault = SoapFault("Server", ASMX + "Object reference not set to an instance of an object.", "")
    assert isinstance(classify_fault(fault, scope=("message", 3), username="u"), ServerFaultError)


@pytest.mark.parametrize(
    ("description", "kind"),
    [
        ("[AccessDenied] MsgID 5 is not available to this user.", ObjectRefusedError),
        ("Access denied for this list.", ObjectRefusedError),
        ("The message does not exist.", ObjectRefusedError),
        ("404 - File or directory not found.", ObjectRefusedError),
        ("Timeout expired. The timeout period elapsed prior to completion of the operation.", ServerFaultError),
        ("Transaction (Process ID 61) was deadlocked on lock resources.", ServerFaultError),
    ],
)
def test_in_band_exceptions_refuse_only_when_they_say_so(description: str, kind: type) -> None:
    error = classify_fault(SoapFault("", description, ""), scope=("message", 5), username="u", in_band=True)
    assert isinstance(error, kind)
    unscoped = classify_fault(SoapFault("", description, ""), scope=None, username="u", in_band=True)
    assert isinstance(unscoped, ServiceFaultError if kind is ObjectRefusedError else ServerFaultError)
