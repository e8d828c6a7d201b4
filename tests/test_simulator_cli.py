"""``listrak-sync simulator`` as a user runs it: a process that prints its URL and serves until Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import requests
from conftest import SoapCaller

from listrak_sync.simulator.profile import KNOBS, Profile

RUN = [sys.executable, "-c", "from listrak_sync.simulator.cli import simulator_command; simulator_command()"]


def start(*args: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """Start the command and read its banner into a dict (endpoint, WSDL, username, ...)."""
    proc = subprocess.Popen([*RUN, "--port", "0", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    banner: dict[str, str] = {}
    deadline = time.monotonic() + 30
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("  ") and ":" in line:
            key, value = line.strip().split(":", 1)
            banner[key] = value.strip()
        if line.startswith("Press Ctrl-C"):
            return proc, banner
    proc.kill()
    raise AssertionError(f"no banner; stderr: {proc.stderr.read() if proc.stderr else ''}")


def interrupt(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=15)
    return proc.returncode, out, err


def test_serves_with_the_printed_url_and_credentials_until_interrupted() -> None:
    proc, banner = start("--scale", "tiny", "--page-size", "3", "--username", "alice", "--password", "pw-123")
    try:
        assert banner["username"] == "alice" and banner["password"] == "pw-123"
        assert banner["WSDL"] == banner["endpoint"] + "?WSDL"
        assert requests.get(banner["WSDL"], timeout=10).status_code == 200
        soap = SoapCaller(banner["endpoint"])
        ok = soap.call("GetContactListCollection", username="alice", password="pw-123")
        assert ok.status == 200 and len(ok.payload[0]) == 3
        assert "[InvalidLogonAttempt]" in soap.call("GetContactListCollection").fault_string  # demo is not a user
        stats = requests.get(banner["stats"], timeout=10).json()
        assert stats["requests"] == {"GetContactListCollection": 2}
    finally:
        code, out, err = interrupt(proc)
    assert code == 0
    assert "Traceback" not in err
    assert "Simulator stopped." in out


def test_fault_options_reach_the_server() -> None:
    proc, banner = start("--scale", "tiny", "--fail-rate", "1", "--fail-kinds", "unavailable",
                         "--latency-ms", "5", "--max-concurrency", "4")
    try:
        response = SoapCaller(banner["endpoint"]).call("GetContactListCollection")
        assert response.status == 503
        settings = requests.get(banner["endpoint"].replace("/v31/IntegrationService.asmx", "/_simulator/faults"),
                                timeout=10).json()
        assert settings["fault_kinds"] == ["unavailable"] and settings["max_concurrency"] == 4
        assert settings["latency_ms"] == 5.0
    finally:
        code, _, err = interrupt(proc)
    assert code == 0 and "Traceback" not in err


def test_bad_options_fail_cleanly() -> None:
    for args in (["--fail-kinds", "meteor"], ["--scale", "huge"], ["--fail-rate", "2"], ["--profile", "grumpy"],
                 ["--service-timezone", "Mars/Olympus"], ["--page-size-factor", "GetContactList=2"],
                 ["--list-withdrawal-days", "soon"]):
        result = subprocess.run([*RUN, "--port", "0", *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, args
        assert "Traceback" not in result.stderr
    help_text = subprocess.run([*RUN, "--help"], capture_output=True, text=True, timeout=60).stdout
    for option in ("--host", "--port", "--scale", "--seed", "--page-size", "--latency-ms", "--fail-rate",
                   "--fail-kinds", "--max-concurrency", "--username", "--password", "Example", "--profile",
                   "pessimistic", *(knob.flag for knob in KNOBS)):
        assert option in help_text


def test_profile_and_knob_flags_reach_the_server() -> None:
    proc, banner = start("--scale", "tiny", "--profile", "pessimistic", "--range-bounds", "inclusive",
                         "--page-size-factor", "ReportRangeMessageContactOpen=3", "--list-withdrawal-days", "never",
                         "--lenient-http")
    try:
        assert banner["profile"] == "pessimistic+custom"
        stats = requests.get(banner["stats"], timeout=10).json()
        expected = Profile.pessimistic().replace(
            range_bounds="inclusive", list_withdrawal_days=None, strict_http=False,
            page_size_factors={**dict(Profile.pessimistic().page_size_factors), "ReportRangeMessageContactOpen": 3})
        assert stats["profile"] == expected.settings()
        wrong = SoapCaller(banner["endpoint"]).call("GetContactListCollection", password="nope")
        assert wrong.fault_code == "soap:Server" and "[InvalidLogonAttempt]" in wrong.fault_string
    finally:
        code, _, err = interrupt(proc)
    assert code == 0 and "Traceback" not in err
