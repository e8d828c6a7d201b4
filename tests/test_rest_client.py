"""The REST client against the simulator over real HTTP: tokens, 401s, faults, paging, redaction.

Tables read with :class:`RestClient` and :func:`to_table` equal ``Account.rest_ground_truth``;
the token is renewed before it runs out and once more on a 401; bad credentials and wrong
endpoints fail at once in one line; a 429 storm and an outage are waited out; the client secret
shows nowhere, DEBUG logs included.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from rest_reader import sort_rows

from listrak_sync.errors import AccessError, ConfigError, EndlessPagesError, WrongEndpointError
from listrak_sync.rest.client import RestClient
from listrak_sync.settings import Settings
from listrak_sync.simulator import Simulator
from listrak_sync.streams import ColumnType, Stream, get_stream

CLIENT_ID = "rest-client-test"
SECRET = "s3cr3t-Pa55-for-rest"  # noqa: S105 - the simulator's test secret
START = "2024-01-01"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(scale="tiny", client_id=CLIENT_ID, client_secret=SECRET) as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def calm(sim: Simulator) -> Iterator[None]:
    yield
    sim.configure_faults(token_lifetime=3599, rest_429_rate=0.0, rest_rate_limit=None, outage_seconds=0)


def settings_for(sim: Simulator, **more: Any) -> Settings:
    values = {"client_id": CLIENT_ID, "client_secret": SECRET, "start_date": START,
              "rest_endpoint": sim.rest_url, "token_endpoint": sim.token_url,
              "backoff_base": 0.01, "backoff_max": 0.05, **more}
    return Settings.from_mapping(values)


def read_table(client: RestClient, stream: Stream, start: str = START) -> list[dict[str, Any]]:
    """Every row of ``stream`` as the ground truth holds it: walked from its parents, typed by to_table."""
    rows: list[dict[str, Any]] = []
    for ids, parent in parents(client, stream, start):
        params = dict(stream.query)
        if stream.date_param:
            params[stream.date_param] = f"{start}T00:00:00"
        if stream.rest_paged:
            items = [item for page in client.pages(stream.route or "", ids, params) for item in page]
        else:
            data = client.get(stream.route or "", ids, params)
            items = data if isinstance(data, list) else [data]
        rows += client.to_table(stream, items, ids, parent).to_pylist()
    return [as_truth(stream, row) for row in rows]


def parents(client: RestClient, stream: Stream, start: str) -> Iterator[tuple[dict[str, int], dict[str, Any]]]:
    if stream.parent is None:
        yield {}, {}
        return
    parent = get_stream(stream.parent)
    for ids, grand in parents(client, parent, start):
        params = dict(parent.query)
        if parent.date_param:
            params[parent.date_param] = f"{start}T00:00:00"
        if parent.rest_paged:
            items = [item for page in client.pages(parent.route or "", ids, params) for item in page]
        else:
            items = client.get(parent.route or "", ids, params)
        for row in client.to_table(parent, items, ids, grand).to_pylist():
            yield {c.name: row[c.name] for c in stream.path_keys}, row


def as_truth(stream: Stream, row: dict[str, Any]) -> dict[str, Any]:
    """A typed row as the ground truth writes it: UTC wall times without a zone, JSON decoded."""
    out = {}
    for column in stream.table_columns:
        value = row[column.name]
        if column.type is ColumnType.TIMESTAMP and value is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        if column.type is ColumnType.JSON and value is not None:
            value = json.loads(value)
        out[column.name] = value
    return out


@pytest.mark.parametrize("table", ["campaigns", "message_activity", "message_link_clickers", "segmentation_fields"])
def test_tables_read_through_the_client_equal_the_ground_truth(sim: Simulator, table: str) -> None:
    stream = get_stream(table)
    with RestClient(settings_for(sim), page_size=7) as client:
        rows = read_table(client, stream)
        assert client.stats.as_dict()["retries"] == 0
    truth = sim.account.rest_ground_truth(table, datetime(2024, 1, 1))
    assert rows and sort_rows(rows) == sort_rows(truth)


def test_pages_cross_many_cursors_at_small_page_sizes(sim: Simulator) -> None:
    with RestClient(settings_for(sim), page_size=3) as client:
        lists = client.check()
        pages = list(client.pages("/List/{listId}/Message", {"listId": lists[0]["listId"]},
                                  {"includeTestMessages": "true"}))
    assert len(pages) > 1 and all(0 < len(page) <= 3 for page in pages)
    ids = [item["messageId"] for page in pages for item in page]
    assert len(ids) == len(set(ids))


def test_the_token_is_renewed_before_it_runs_out(sim: Simulator) -> None:
    sim.configure_faults(token_lifetime=1.0)
    before = sim.stats()
    with RestClient(settings_for(sim)) as client:
        for _ in range(6):
            client.check()
            time.sleep(0.3)
        assert client.tokens_issued >= 2
    after = sim.stats()
    assert after["tokens_issued"] - before["tokens_issued"] >= 2
    assert after["rest_statuses"].get("401", 0) == before["rest_statuses"].get("401", 0)  # never refused


def test_a_401_gets_one_new_token_and_the_request_again(sim: Simulator) -> None:
    sim.configure_faults(token_lifetime=0.5)
    frozen = iter(lambda: 0.0, None)  # the client's clock stands still: it never renews by itself
    with RestClient(settings_for(sim), clock=lambda: next(frozen)) as client:
        assert client.check()
        time.sleep(0.7)  # the service expired the token
        assert client.check()
        assert client.tokens_issued == 2


def test_a_second_401_is_terminal_in_one_line(sim: Simulator) -> None:
    sim.configure_faults(token_lifetime=1e-6)  # every token is dead on arrival
    with RestClient(settings_for(sim)) as client, pytest.raises(AccessError) as info:
        client.check()
    text = str(info.value)
    assert "\n" not in text and "even with a new token" in text and CLIENT_ID in text
    assert all(word in text for word in ("paused", "IP address", "access area"))
    assert client.tokens_issued == 2  # no loop


@pytest.mark.parametrize("profile", ["friendly", "pessimistic"])
def test_bad_credentials_fail_at_once_in_one_line(profile: str) -> None:
    with Simulator(scale="tiny", client_id=CLIENT_ID, client_secret=SECRET, profile=profile) as other:
        settings = settings_for(other, client_secret="wrong-" + SECRET)
        with RestClient(settings) as client, pytest.raises(AccessError) as info:
            client.check()
        text = str(info.value)
        assert "\n" not in text and "LISTRAK_CLIENT_SECRET" in text and "IP address" in text
        assert SECRET not in text
        assert client.requests == 1  # refused, not retried
        with pytest.raises(AccessError):
            client.get("/List", {})  # the refusal is remembered: nothing more is sent
        assert client.requests == 1


def test_a_429_storm_and_an_outage_are_waited_out(sim: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    stream = get_stream("message_activity")
    truth = sim.account.rest_ground_truth("message_activity", datetime(2024, 1, 1))
    sim.configure_faults(rest_429_rate=0.3)
    with caplog.at_level(logging.INFO, logger="listrak_sync"), RestClient(settings_for(sim), page_size=7) as client:
        assert sort_rows(read_table(client, stream)) == sort_rows(truth)
        stats = client.stats.as_dict()
        assert stats["retries"] > 0 and stats["faults"].get("ServiceUnavailableError", 0) > 0
        assert client.limiter.snapshot()["decreases"] > 0
    sim.configure_faults(rest_429_rate=0.0, outage_seconds=1.5)
    with caplog.at_level(logging.INFO, logger="listrak_sync"), \
            RestClient(settings_for(sim, backoff_base=0.1, backoff_max=0.3)) as client:
        assert client.check()  # the token request and the GET both wait the outage out
    assert "overloaded (HTTP 429)" in caplog.text and "HTTP 503" in caplog.text
    assert client.stats.as_dict()["retries"] > 0


def test_a_wait_of_a_second_or_more_says_what_it_waits_for(sim: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    sim.configure_faults(outage_seconds=2.5)
    with caplog.at_level(logging.WARNING, logger="listrak_sync"), \
            RestClient(settings_for(sim, backoff_base=1.2, backoff_max=1.5)) as client:
        client._retrier._rng.uniform = lambda low, high: high  # type: ignore[method-assign]
        assert client.check()
    assert "Waiting 1 s before retry 1 of POST /OAuth2/Token" in caplog.text or \
        "before retry 1 of GET /List" in caplog.text


def test_wrong_endpoints_are_configuration_errors_naming_them(sim: Simulator) -> None:
    base = sim.rest_url.removesuffix("/v1")
    with RestClient(settings_for(sim, rest_endpoint=base)) as client, pytest.raises(WrongEndpointError) as info:
        client.check()
    assert base in str(info.value) and "rest_endpoint" in str(info.value)
    assert client.requests == 2  # a token, one GET: not retried
    with RestClient(settings_for(sim, token_endpoint=sim.url)) as client, pytest.raises(ConfigError) as info:
        client.check()
    assert "token_endpoint" in str(info.value) or "LISTRAK_CLIENT" in str(info.value)


def test_a_repeated_cursor_ends_the_pages_with_a_named_error(sim: Simulator) -> None:
    with RestClient(settings_for(sim), page_size=2) as client:
        lists = client.check()
        calls = client._call

        def looping(route: str, ids: Any, params: dict[str, str]) -> dict[str, Any]:
            body = calls(route, ids, {**params, "cursor": "Start"} if params.get("cursor") else params)
            return {**body, "nextPageCursor": "again"}

        client._call = looping  # type: ignore[method-assign]
        with pytest.raises(EndlessPagesError) as info:
            list(client.pages("/List/{listId}/Message", {"listId": lists[0]["listId"]}))
    assert "cursor it gave before" in str(info.value) and info.value.kind == "list"


def test_the_secret_shows_nowhere(sim: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_for(sim)
    with caplog.at_level(logging.DEBUG), RestClient(settings, page_size=5) as client:
        client.check()
        read_table(client, get_stream("campaigns"))
        texts = [repr(client), repr(settings), str(settings), repr(client.stats.as_dict())]
    with RestClient(settings_for(sim, client_secret=SECRET + "x")) as bad, pytest.raises(AccessError) as info:
        bad.check()
    texts += [str(info.value), repr(info.value), caplog.text]
    assert all(SECRET not in text for text in texts)
    assert "client_secret='********'" in repr(settings)


def test_rest_only_settings_and_the_one_line_without_any_credentials() -> None:
    settings = Settings.from_mapping({"client_id": "id", "client_secret": "secret", "start_date": START})
    assert settings.has_rest and not settings.has_soap
    assert settings.rest_endpoint == "https://api.listrak.com/email/v1"
    assert settings.token_endpoint == "https://auth.listrak.com/OAuth2/Token"
    both = Settings.from_mapping({"username": "u", "password": "p", "client_id": "id", "client_secret": "secret",
                                  "start_date": START})
    assert both.has_rest and both.has_soap
    with pytest.raises(ConfigError) as info:
        Settings.from_mapping({"start_date": START})
    text = str(info.value)
    assert "\n" not in text and all(v in text for v in ("LISTRAK_USERNAME", "LISTRAK_PASSWORD", "LISTRAK_CLIENT_ID",
                                                          "LISTRAK_CLIENT_SECRET"))
    with pytest.raises(ConfigError, match="client secret is empty"):
        Settings.from_mapping({"client_id": "id", "start_date": START})
    with pytest.raises(ConfigError, match="rest_endpoint"):
        Settings.from_mapping({"client_id": "id", "client_secret": "s", "start_date": START, "rest_endpoint": "x"})
    with pytest.raises(ConfigError, match="No REST credentials"):
        RestClient(Settings.from_mapping({"username": "u", "password": "p", "start_date": START}))


@pytest.mark.parametrize("table", ["message_activity", "contacts"])
def test_the_pessimistic_profile_reads_the_same(table: str) -> None:
    # Bearer with refresh_token null, tokens refused 3% early, an empty last page after a full
    # one, count clamped, rows shuffled, "" for unset strings: the client reads the ground truth.
    with Simulator(scale="tiny", client_id=CLIENT_ID, client_secret=SECRET, profile="pessimistic") as other:
        stream = get_stream(table)
        with RestClient(settings_for(other), page_size=7) as client:
            rows = read_contacts(client, stream) if table == "contacts" else read_table(client, stream)
        assert sort_rows(rows) == sort_rows(other.account.rest_ground_truth(table, datetime(2024, 1, 1)))


def read_contacts(client: RestClient, stream: Stream) -> list[dict[str, Any]]:
    """Contacts as the engine will read them: per list and state, profile fields 30 at a time, merged."""
    rows = []
    for lst in client.check():
        ids = {"listId": lst["listId"]}
        groups = client.get("/List/{listId}/SegmentationFieldGroup", ids)
        fields = [f["segmentationFieldId"] for g in groups for f in client.get(
            "/List/{listId}/SegmentationFieldGroup/{segmentationFieldGroupId}/SegmentationField",
            {**ids, "segmentationFieldGroupId": g["segmentationFieldGroupId"]})]
        for state in ("Subscribed", "Unsubscribed"):
            merged: dict[str, dict[str, Any]] = {}
            for k in range(0, max(len(fields), 1), 30):
                params = {"subscriptionState": state, "segmentationFieldIds": ",".join(map(str, fields[k:k + 30])),
                          "useOriginalSubscribeDate": "false", "startDate": f"{START}T00:00:00"}
                for page in client.pages(stream.route or "", ids, params):
                    for item in page:
                        row = merged.setdefault(item["emailAddress"], {**item, "segmentationFieldValues": []})
                        row["segmentationFieldValues"] += item.get("segmentationFieldValues") or []
            for row in merged.values():
                row["segmentationFieldValues"].sort(key=lambda v: v["segmentationFieldId"])
                row["segmentationFieldValues"] = row["segmentationFieldValues"] or None
            rows += [as_truth(stream, r) for r in client.to_table(stream, list(merged.values()), ids).to_pylist()]
    return rows
