"""Access control: fault tokens, lockout, the IP allowlist and per-user list permissions."""

from __future__ import annotations

from datetime import datetime

import pytest
import requests
from conftest import SOAP12_NS, SoapCaller, call_body, envelope

from listrak_sync.simulator import DEFAULT_PASSWORD, DEFAULT_USERNAME, Simulator, User
from listrak_sync.streams import NAMESPACE

START, END = "2020-01-01", "2030-01-01"


def assert_fault(response, token: str, code: str = "soap:Client") -> None:  # type: ignore[no-untyped-def]
    assert response.status == 500
    assert response.fault_code == code
    assert f"[{token}]" in response.fault_string


def messages_of(sim: Simulator, list_id: int) -> list[int]:
    return [m["MsgID"] for m in sim.account.messages(list_id, datetime(2020, 1, 1), datetime(2030, 1, 1))]


def test_wrong_password_unknown_user_and_missing_header(simulator: Simulator, soap: SoapCaller) -> None:
    wrong = soap.call("GetContactListCollection", password="s3cret-guess")
    assert_fault(wrong, "InvalidLogonAttempt")
    assert "s3cret-guess" not in wrong.content.decode()
    assert_fault(soap.call("GetContactListCollection", username="nobody"), "InvalidLogonAttempt")
    assert_fault(soap.call("GetContactListCollection", username=None), "InvalidLogonAttempt")
    assert simulator.stats()["auth_failures"] == {"InvalidLogonAttempt": 3}
    assert soap.call("GetContactListCollection").status == 200


def test_soap12_faults_have_the_soap12_shape(soap: SoapCaller) -> None:
    body = envelope(call_body("GetContactListCollection"), password="nope", version="1.2")
    response = soap.post(body, {"Content-Type": f'application/soap+xml; charset=utf-8; '
                                                f'action="{NAMESPACE}GetContactListCollection"'})
    assert response.status == 500
    assert response.content_type == "application/soap+xml; charset=utf-8"
    assert response.root.nsmap["soap"] == SOAP12_NS
    assert response.fault_code == "soap:Sender"
    assert "[InvalidLogonAttempt]" in response.fault_string


def test_repeated_failures_lock_the_user_until_reset() -> None:
    other = User("other", "other-password")
    with Simulator(scale="tiny", lockout_after=3, users=[User(DEFAULT_USERNAME, DEFAULT_PASSWORD), other]) as sim:
        soap = SoapCaller(sim.url)
        for _ in range(2):
            assert_fault(soap.call("GetContactListCollection", password="bad"), "InvalidLogonAttempt")
        assert soap.call("GetContactListCollection").status == 200  # success clears the count
        for _ in range(3):
            assert_fault(soap.call("GetContactListCollection", password="bad"), "InvalidLogonAttempt")
        assert_fault(soap.call("GetContactListCollection"), "LoginAttemptsExceeded")
        assert_fault(soap.call("GetContactListCollection", password="bad"), "LoginAttemptsExceeded")
        assert sim.stats()["locked_users"] == [DEFAULT_USERNAME]
        assert soap.call("GetContactListCollection", username="other", password="other-password").status == 200

        sim.reset_lockouts()
        assert soap.call("GetContactListCollection").status == 200
        for _ in range(4):
            soap.call("GetContactListCollection", password="bad")
        assert_fault(soap.call("GetContactListCollection"), "LoginAttemptsExceeded")
        reset = requests.post(sim.base_url + "/_simulator/lockouts/reset", timeout=10)
        assert reset.status_code == 200
        assert soap.call("GetContactListCollection").status == 200


def test_lockout_after_zero_locks_from_the_start() -> None:
    with Simulator(scale="tiny", lockout_after=0) as sim:
        assert_fault(SoapCaller(sim.url).call("GetContactListCollection"), "LoginAttemptsExceeded")


@pytest.mark.parametrize(("allowlist", "allowed"), [
    (["10.0.0.0/8"], False),
    (["10.0.0.0/8", "::1"], False),
    (["127.0.0.0/8"], True),
    (["192.168.1.1", "127.0.0.1"], True),
])
def test_ip_allowlist(allowlist: list[str], allowed: bool) -> None:
    with Simulator(scale="tiny", ip_allowlist=allowlist) as sim:
        response = SoapCaller(sim.url).call("GetContactListCollection")
        if allowed:
            assert response.status == 200
        else:
            assert_fault(response, "ProhibitedIPAddress")
            assert "127.0.0.1" in response.fault_string
            assert sim.stats()["auth_failures"] == {"ProhibitedIPAddress": 1}


def test_a_user_sees_and_reads_only_its_lists() -> None:
    with Simulator(scale="tiny") as probe:
        first, second, third = probe.account.list_ids()
    user = User("limited", "limited-pw", list_ids=frozenset({first, third}), refused_list_ids=frozenset({third}))
    with Simulator(scale="tiny", users=[user]) as sim:
        soap = SoapCaller(sim.url)

        def call(operation: str, **params: object):  # type: ignore[no-untyped-def]
            return soap.call(operation, username="limited", password="limited-pw", **params)

        lists = call("GetContactListCollection")
        listed = [int(item.findtext(f"{{{NAMESPACE}}}ListID")) for item in lists.payload[0]]
        assert listed == [first, third]  # a refused list is listed, then refused
        assert call("GetContactList", ListID=first).status == 200
        assert call("ReportListMessageActivity", ListID=first, StartDate=START, EndDate=END,
                    IncludeTestMessages="true", WSException=None).status == 200
        msg = messages_of(sim, first)[0]
        assert call("ReportRangeMessageContactOpen", MsgID=msg, StartDate=START, EndDate=END, Page=1).status == 200
        for denied in (second, third, 999999):
            response = call("ReportListMessageActivity", ListID=denied, StartDate=START, EndDate=END,
                            IncludeTestMessages="true", WSException=None)
            assert_fault(response, "AccessDenied")
            assert f"ListID {denied}" in response.fault_string
            assert_fault(call("GetContactList", ListID=denied), "AccessDenied")
            assert_fault(call("ReportRangeSubscribedContacts", ListID=denied, StartDate=START, EndDate=END,
                              Page=1), "AccessDenied")
        for denied_msg in (messages_of(sim, second)[0], messages_of(sim, third)[0], 1):
            for operation in ("ReportRangeMessageContactOpen", "ReportRangeMessageContactBounces"):
                response = call(operation, MsgID=denied_msg, StartDate=START, EndDate=END, Page=1)
                assert_fault(response, "AccessDenied")
                assert f"MsgID {denied_msg}" in response.fault_string
            assert_fault(call("ReportMessageContactSent", MsgID=denied_msg, Page=1, WSException=None),
                         "AccessDenied")
        assert sim.stats()["access_denied"] == 3 * 3 + 3 * 3


def test_user_repr_hides_the_password() -> None:
    assert "hunter2" not in repr(User("u", "hunter2"))
