"""The simulator's REST service: auth, token expiry, errors, paging edges, 429s, outages, the
pessimistic profile and the CLI, all read with plain ``requests``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

import pytest
import requests
from rest_reader import CLIENT_ID, CLIENT_SECRET, Reader, sort_rows
from test_simulator_cli import interrupt, start

from listrak_sync.simulator import Simulator
from listrak_sync.streams import REST_TABLE_NAMES, get_stream

UNAUTHORIZED = {"status": 401, "error": "ERROR_UNAUTHORIZED", "message": "Authorization was denied for this request."}
FORM = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(scale="tiny", client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as simulator:
        yield simulator


def token(sim: Simulator) -> dict[str, str]:
    answer = requests.post(sim.token_url, data=FORM, timeout=10)
    assert answer.status_code == 200
    return {"Authorization": "Bearer " + answer.json()["access_token"]}


def first_list(sim: Simulator, auth: dict[str, str]) -> int:
    return int(requests.get(sim.rest_url + "/List", headers=auth, timeout=10).json()["data"][0]["listId"])


def test_tokens_and_the_bearer_check(sim: Simulator) -> None:
    answer = requests.post(sim.token_url, data=FORM, headers={"Accept": "text/plain"}, timeout=10)
    body = answer.json()
    assert answer.status_code == 200 and list(body) == ["access_token", "token_type", "expires_in"]
    assert body["token_type"] == "bearer" and body["expires_in"] == 3599 and len(body["access_token"]) > 20
    bad = requests.post(sim.token_url, data={**FORM, "client_secret": "wrong"}, timeout=10)
    assert bad.status_code == 401 and bad.json()["error"] == "ERROR_INVALID_CREDENTIALS"
    assert "wrong" not in bad.text and CLIENT_SECRET not in bad.text
    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic " + body["access_token"]}):
        for path in ("/List", "/No/Such/Route", "/List/abc"):
            refused = requests.get(sim.rest_url + path, headers=headers, timeout=10)
            assert refused.status_code == 401 and refused.json() == UNAUTHORIZED  # before routing
    auth = {"Authorization": "Bearer " + body["access_token"]}
    assert requests.get(sim.rest_url.replace("/email/v1", "/EMAIL/V1") + "/lIsT", headers=auth,
                        timeout=10).status_code == 200
    unknown = requests.get(sim.rest_url + "/List/abc", headers=auth, timeout=10)
    assert unknown.status_code == 404 and unknown.json()["error"] == "ERROR_UNKNOWN_ROUTE"
    stats = sim.stats()
    assert stats["tokens_issued"] == 1 and stats["rest_requests_total"] == 11
    assert stats["rest_requests"]["/List"] == 4
    assert CLIENT_SECRET not in repr(sim) and CLIENT_SECRET not in repr(sim.rest)


def test_404s_name_every_id_of_the_route(sim: Simulator) -> None:
    auth = token(sim)
    list_id = first_list(sim, auth)
    other = requests.get(sim.rest_url + "/List", headers=auth, timeout=10).json()["data"][1]["listId"]
    message = requests.get(f"{sim.rest_url}/List/{other}/Message", headers=auth, timeout=10).json()["data"][0]
    cases = {
        "/List/1": "listId",
        f"/List/{list_id}/Message/{message['messageId']}/Summary": "listId and messageId",  # another list's message
        f"/List/{list_id}/Conversation/1/Message/2/Summary": "listId, conversationId, and conversationMessageId",
    }
    for path, names in cases.items():
        answer = requests.get(sim.rest_url + path, headers=auth, timeout=10)
        assert answer.status_code == 404
        assert answer.json() == {"status": 404, "error": "ERROR_UNABLE_TO_LOCATE_RESOURCE", "message":
                                 f"Unable to locate a resource associated with the {names} supplied."}


def test_tokens_expire(sim: Simulator) -> None:
    sim.configure_faults(token_lifetime=1)
    auth = token(sim)
    assert requests.get(sim.rest_url + "/List", headers=auth, timeout=10).status_code == 200
    time.sleep(1.2)
    answer = requests.get(sim.rest_url + "/List", headers=auth, timeout=10)
    assert answer.status_code == 401 and answer.json() == UNAUTHORIZED
    assert requests.get(sim.rest_url + "/List", headers=token(sim), timeout=10).status_code == 200


def test_parameters_are_checked(sim: Simulator) -> None:
    auth = token(sim)
    route = f"{sim.rest_url}/List/{first_list(sim, auth)}/Contact"
    for params in ({"count": "5001"}, {"count": "0"}, {"count": "ten"}, {"cursor": "garbled!"},
                   {"startDate": "yesterday"}, {"subscriptionState": "All"}, {"useOriginalSubscribeDate": "yes"},
                   {"segmentationFieldIds": ",".join(str(n) for n in range(31))}):
        answer = requests.get(route, params=params, headers=auth, timeout=10)
        assert answer.status_code == 400, params
        code = "ERROR_TOO_MANY_SEGMENTATION_FIELDS" if "segmentationFieldIds" in params else "ERROR_INVALID_PARAMETER"
        assert answer.json()["error"] == code
    first = requests.get(route, params={"count": "2"}, headers=auth, timeout=10).json()
    moved = requests.get(route, params={"count": "2", "cursor": first["nextPageCursor"], "startDate": "2025-01-01"},
                         headers=auth, timeout=10)
    assert moved.status_code == 400  # a cursor belongs to its filters
    counts = set()
    for text in ("2025-01-01", "2025-01-01T00:00:00", "2025-01-01T00:00:00.000Z", "2025-01-01T00:00:00+00:00",
                 "01/01/2025"):
        answer = requests.get(route, params={"startDate": text}, headers=auth, timeout=10)
        assert answer.status_code == 200, text
        counts.add(len(answer.json()["data"]))
    assert len(counts) == 1


def test_429s_and_outages(sim: Simulator) -> None:
    auth = token(sim)
    sim.configure_faults(rest_429_rate=1.0)
    answer = requests.get(sim.rest_url + "/List", headers=auth, timeout=10)
    assert answer.status_code == 429 and answer.json() == {
        "status": 429, "error": "ERROR_TOO_MANY_REQUESTS", "message": answer.json()["message"]}
    sim.configure_faults(rest_429_rate=0.0, rest_rate_limit=5)
    statuses = [requests.get(sim.rest_url + "/List", headers=auth, timeout=10).status_code for _ in range(30)]
    assert 200 in statuses and 429 in statuses
    time.sleep(1.0)
    assert requests.get(sim.rest_url + "/List", headers=auth, timeout=10).status_code == 200  # the bucket drained
    sim.configure_faults(rest_rate_limit=None, outage_seconds=30)
    assert requests.get(sim.rest_url + "/List", headers=auth, timeout=10).status_code == 503
    assert requests.post(sim.token_url, data=FORM, timeout=10).status_code == 503
    sim.configure_faults(outage_seconds=0)
    assert requests.get(sim.rest_url + "/List", headers=auth, timeout=10).status_code == 200
    settings = requests.get(sim.base_url + "/_simulator/faults", timeout=10).json()
    assert settings["token_lifetime"] == 3599 and settings["rest_429_rate"] == 0.0


def test_a_simulator_without_rest_credentials_serves_no_rest() -> None:
    with Simulator(scale="tiny") as plain:
        assert requests.get(plain.base_url + "/email/v1/List", timeout=10).status_code == 404
        with pytest.raises(RuntimeError, match="client_id"):
            _ = plain.rest_url
        with pytest.raises(TypeError, match="no REST"):
            plain.configure_faults(token_lifetime=5)


@pytest.fixture(scope="module")
def pessimistic() -> Iterator[Simulator]:
    with Simulator(scale="tiny", profile="pessimistic", client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as sim:
        yield sim


@pytest.mark.parametrize("table", REST_TABLE_NAMES)
def test_pessimistic_tables_equal_the_ground_truth(pessimistic: Simulator, table: str) -> None:
    reader = Reader(pessimistic.rest_url, pessimistic.token_url, count=5)
    truth = pessimistic.account.rest_ground_truth(table, datetime(2024, 1, 1))
    assert sort_rows(reader.rows(get_stream(table), "2024-01-01")) == sort_rows(truth)


def test_pessimistic_plays_the_worst_variants(pessimistic: Simulator) -> None:
    sim = pessimistic
    body = requests.post(sim.token_url, data=FORM, timeout=10).json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900 and body["refresh_token"] is None
    bad = requests.post(sim.token_url, data={**FORM, "client_id": "x"}, timeout=10)
    assert bad.status_code == 400 and bad.json() == {"error": "invalid_client"}
    auth = {"Authorization": "Bearer " + body["access_token"]}
    lists = requests.get(sim.rest_url + "/List", headers=auth, timeout=10).json()["data"]
    assert "lastModifiedDate" in lists[0] and lists[0]["mediaDomainAlias"] == ""  # unknown fields; "" for null
    list_id = lists[0]["listId"]
    route = f"{sim.rest_url}/List/{list_id}/Message"
    everything = requests.get(route, params={"includeTestMessages": "true"}, headers=auth, timeout=10).json()
    n = len(everything["data"])
    full = requests.get(route, params={"includeTestMessages": "true", "count": str(n)}, headers=auth, timeout=10)
    cursor = full.json()["nextPageCursor"]
    assert cursor is not None  # a full last page still carries a cursor ...
    empty = requests.get(route, params={"includeTestMessages": "true", "count": str(n), "cursor": cursor},
                         headers=auth, timeout=10).json()
    assert empty["data"] == [] and empty["nextPageCursor"] is None  # ... and the next page is empty
    clamped = requests.get(route, params={"count": "10000"}, headers=auth, timeout=10)
    assert clamped.status_code == 200
    ids = [m["messageId"] for m in everything["data"]]
    assert ids != sorted(ids)  # no order promised
    contacts = requests.get(f"{sim.rest_url}/List/{list_id}/Contact", headers=auth, timeout=10).json()["data"]
    assert all(c["segmentationFieldValues"] is None for c in contacts)  # null for an unset array
    soap = {m["MsgID"]: m["SendDate"] for m in sim.account.ground_truth("messages", datetime(2024, 1, 1))}
    for message in everything["data"]:
        assert datetime.fromisoformat(message["sendDate"]) == soap[message["messageId"]]  # Eastern, as SOAP


def test_pessimistic_tokens_are_refused_a_little_early(pessimistic: Simulator) -> None:
    pessimistic.configure_faults(token_lifetime=2)
    try:
        auth = token(pessimistic)
        time.sleep(1.96)  # 2 s lifetime, refused 3% early
        assert requests.get(pessimistic.rest_url + "/List", headers=auth, timeout=10).status_code == 401
    finally:
        pessimistic.configure_faults(token_lifetime=900)


def test_the_cli_serves_rest_with_client_credentials() -> None:
    proc, banner = start("--scale", "tiny", "--client-id", "cli-id", "--client-secret", "cli-secret-123",
                         "--token-lifetime", "60")
    try:
        assert banner["REST"].endswith("/email/v1") and banner["token URL"].endswith("/OAuth2/Token")
        answer = requests.post(banner["token URL"], data={**FORM, "client_id": "cli-id",
                                                         "client_secret": "cli-secret-123"}, timeout=10)
        assert answer.status_code == 200 and answer.json()["expires_in"] == 60
        auth = {"Authorization": "Bearer " + answer.json()["access_token"]}
        assert len(requests.get(banner["REST"] + "/List", headers=auth, timeout=10).json()["data"]) == 3
    finally:
        code, out, err = interrupt(proc)
    assert code == 0 and "Traceback" not in err
    assert "cli-secret-123" not in out + err
