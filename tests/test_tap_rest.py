"""tap-listrak's 2.x mode: PyPI tap-listrak 2.x's config and streams over the simulator's REST API.

The tap runs as a subprocess (``python -m listrak_sync.singer``) with a config holding only
``client_id``, ``client_secret`` and ``start_date`` (plus the simulator's endpoints), and its
records are compared with the simulator's REST ground truth, stream by stream.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from tap_helpers import (
    TAP_LISTRAK_2X,
    assert_rest_records_match,
    config_for,
    parse_messages,
    records_of,
    rest_config_for,
    run_tap,
    states_of,
    write_json,
)

from listrak_sync.errors import ConfigError
from listrak_sync.simulator import Simulator
from listrak_sync.simulator.data import EPOCH
from listrak_sync.singer.rest_mode import OFFERED, rest_config
from listrak_sync.streams import STREAM_NAMES

CLIENT_ID, CLIENT_SECRET = "tap-2x-client", "tap-2x-secret-never-shown"
# What the engine can ask for by date is read every run (tests/test_rest_run.py).
DATED_ROUTES = {"/List", "/List/{listId}/Message", "/List/{listId}/Contact"}


@pytest.fixture(params=["tiny", "small"])
def sim(request: pytest.FixtureRequest) -> Iterator[Simulator]:
    with Simulator(scale=request.param, client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as simulator:
        yield simulator


def tap(tmp_path: Path, sim: Simulator, *args: str, state: dict | None = None, **extra: object) -> tuple[str, str]:
    config = write_json(tmp_path / "config.json", rest_config_for(sim, CLIENT_ID, CLIENT_SECRET, **extra))
    if state is not None:
        args = (*args, "--state", write_json(tmp_path / "state.json", state))
    result = run_tap("--config", config, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert CLIENT_SECRET not in result.stdout + result.stderr
    return result.stdout, result.stderr


def test_discover_with_a_2x_config_lists_the_2x_streams_and_keys(tmp_path: Path) -> None:
    with Simulator(scale="tiny", client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as sim:
        out, _ = tap(tmp_path, sim, "--discover")
    entries = {e["tap_stream_id"]: e for e in json.loads(out)["streams"]}
    for name, (table, keys) in TAP_LISTRAK_2X.items():
        entry = entries[name]
        assert entry["key_properties"] == keys, name
        root = entry["metadata"][0]["metadata"]
        assert root["table-key-properties"] == keys and root["selected-by-default"] is True
        assert OFFERED[name].name == table
        assert "listId" in entry["schema"]["properties"] and set(keys) <= set(entry["schema"]["properties"])
    # The other REST tables are offered too, not selected by default (2.x had none of them).
    extra = set(entries) - set(TAP_LISTRAK_2X)
    assert extra and all(not entries[n]["metadata"][0]["metadata"]["selected-by-default"] for n in extra)
    assert not set(entries) & (set(STREAM_NAMES) - {"lists", "messages"})


def test_a_2x_sync_emits_the_ground_truth_and_a_re_run_reads_only_what_is_dated(sim: Simulator,
                                                                                  tmp_path: Path) -> None:
    out, err = tap(tmp_path, sim, "--debug")
    messages = parse_messages(out)
    records = records_of(messages)
    assert set(records) <= set(TAP_LISTRAK_2X)
    schemas = {m["stream"]: m for m in messages if m["type"] == "SCHEMA"}
    assert set(schemas) == set(TAP_LISTRAK_2X)
    for name, (table, keys) in TAP_LISTRAK_2X.items():
        assert schemas[name]["key_properties"] == keys
        truth = sim.account.rest_ground_truth(table, EPOCH)
        assert_rest_records_match(table, records.get(name, []), truth)
        if keys:  # 2.x's keys (or ours where 2.x's collapse rows) are unique in the truth
            assert len({tuple(r[k] for k in keys) for r in truth}) == len(truth), name
    assert messages[-1]["type"] == "STATE" and len(states_of(messages)) == 1
    state = messages[-1]["value"]
    assert CLIENT_SECRET not in json.dumps(state)

    first = dict(sim.stats()["rest_requests"])
    again_out, _ = tap(tmp_path, sim, state=state)
    again = {route: n - first.get(route, 0) for route, n in sim.stats()["rest_requests"].items()
             if n - first.get(route, 0)}
    assert set(again) <= DATED_ROUTES | {"/OAuth2/Token"}, again
    # The lists, and per list its messages and its two contact passes (transactional activity,
    # also dated, is not a 2.x stream and not selected by default).
    # (one more contact request per pass and 30 profile fields past the first 30).
    dated = sum(n for route, n in again.items() if route in DATED_ROUTES)
    fields = Counter(f["listId"] for f in sim.account.rest_ground_truth("segmentation_fields", EPOCH))
    contacts = sum(2 * max(1, math.ceil(fields[i] / 30)) for i in sim.account.list_ids())
    assert dated == 1 + len(sim.account.list_ids()) + contacts < 0.1 * sum(first.values())
    print(f"2.x mode on {len(sim.account.list_ids())} lists: first run {sum(first.values())} REST requests, "
          f"re-run {sum(again.values())}")
    # Nothing changed: the re-run emits the lists, messages and contacts it asked for by date, and
    # no activity (no message is new or recent).
    rerun = records_of(parse_messages(again_out))
    assert not rerun.get("message_activity") and not rerun.get("message_link_clickers")
    assert parse_messages(again_out)[-1]["value"]["rest_plan"]["start"]


def test_a_2x_catalog_selects_streams_and_fields(tmp_path: Path) -> None:
    with Simulator(scale="tiny", client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as sim:
        catalog = json.loads(tap(tmp_path, sim, "--discover")[0])
        for entry in catalog["streams"]:
            selected = entry["tap_stream_id"] in ("messages", "message_summaries")
            entry["metadata"][0]["metadata"]["selected"] = selected
            if entry["tap_stream_id"] == "messages":
                entry["metadata"].append({"breadcrumb": ["properties", "subject"], "metadata": {"selected": False}})
        out, _ = tap(tmp_path, sim, "--catalog", write_json(tmp_path / "catalog.json", catalog))
        records = records_of(parse_messages(out))
        assert set(records) == {"messages", "message_summaries"}
        assert all("subject" not in r and "messageId" in r for r in records["messages"])
        assert_rest_records_match("message_summaries", records["message_summaries"],
                                  sim.account.rest_ground_truth("message_summaries", EPOCH))
        assert sim.stats()["rest_requests"].get("/List/{listId}/Contact") is None


def test_both_pairs_keep_the_soap_streams_and_test_checks_the_rest_api(tmp_path: Path) -> None:
    with Simulator(scale="tiny", client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as sim:
        both = config_for(sim, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
        result = run_tap("--config", write_json(tmp_path / "both.json", both), "--discover")
        assert result.returncode == 0
        assert [e["tap_stream_id"] for e in json.loads(result.stdout)["streams"]] == list(STREAM_NAMES)
        _, err = tap(tmp_path, sim, "--test", "--debug")
        assert "Connection OK" in err and f"{len(sim.account.list_ids())} lists visible" in err
        assert sum(sim.stats()["requests"].values()) == 0  # no SOAP call in the 2.x mode


def test_num_activity_days_sets_the_lookback() -> None:
    assert rest_config({"num_activity_days": 7})["lookback_hours"] == 168
    assert rest_config({"num_activity_days": "2", "lookback_hours": 5})["lookback_hours"] == 5
    with pytest.raises(ConfigError, match="num_activity_days"):
        rest_config({"num_activity_days": "a week"})

