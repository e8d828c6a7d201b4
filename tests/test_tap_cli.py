"""tap-listrak's command line: discovery, --about, --test, configuration and secrets.

Discovery output is checked structurally here and, where the Singer target's virtualenv is
installed, by singer-python's own catalog parser and jsonschema's Draft 4 meta-schema.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, clean_env, cli, cli_env
from tap_helpers import (
    TAP_LISTRAK_KEYS,
    TEXT_DATES,
    config_for,
    parse_messages,
    records_of,
    run_tap,
    singer_target,
    target_python,
    write_json,
)

from listrak_sync.engine.state import SingerState
from listrak_sync.errors import ConfigError
from listrak_sync.settings import Settings
from listrak_sync.simulator import DEFAULT_PASSWORD, Simulator, User
from listrak_sync.singer.about import TAP_OPTIONS
from listrak_sync.singer.catalog import discover, read_selection, record_properties, text_dates
from listrak_sync.singer.main import settings_from_config
from listrak_sync.streams import STREAM_NAMES, STREAMS, ColumnType

# The catalog's shape per the Singer spec, as a Draft 4 schema (checked by jsonschema in the
# target's virtualenv, independently of our own code).
SINGER_CATALOG_SCHEMA = {
    "type": "object",
    "required": ["streams"],
    "properties": {
        "streams": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["tap_stream_id", "stream", "schema", "metadata", "key_properties"],
                "properties": {
                    "tap_stream_id": {"type": "string"},
                    "stream": {"type": "string"},
                    "key_properties": {"type": "array", "items": {"type": "string"}},
                    "schema": {"type": "object", "required": ["type", "properties"]},
                    "metadata": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["breadcrumb", "metadata"],
                            "additionalProperties": False,
                            "properties": {
                                "breadcrumb": {"type": "array", "items": {"type": "string"}},
                                "metadata": {"type": "object"},
                            },
                        },
                    },
                },
            },
        }
    },
}

# Runs in the target's virtualenv: singer-python parses the catalog, jsonschema checks it.
THIRD_PARTY_CHECK = """
import json, sys
from jsonschema import Draft4Validator
from singer import metadata
from singer.catalog import Catalog
doc, catalog_schema = json.load(sys.stdin)
Draft4Validator(catalog_schema).validate(doc)
catalog = Catalog.from_dict(doc)
out = {}
for entry in catalog.streams:
    Draft4Validator.check_schema(entry.schema.to_dict())
    mdata = metadata.to_map(entry.metadata)
    out[entry.tap_stream_id] = {
        "keys": metadata.get(mdata, (), "table-key-properties"),
        "method": metadata.get(mdata, (), "forced-replication-method"),
        "properties": sorted(entry.schema.to_dict()["properties"]),
    }
print(json.dumps(out))
"""


def test_discover_prints_a_singer_catalog_without_config_or_network() -> None:
    result = run_tap("--discover")
    assert result.returncode == 0, result.stderr
    catalog = json.loads(result.stdout)
    assert catalog == discover()
    assert list(catalog) == ["streams"]
    assert [e["tap_stream_id"] for e in catalog["streams"]] == list(STREAM_NAMES)
    for stream, entry in zip(STREAMS, catalog["streams"], strict=True):
        assert set(entry) == {"tap_stream_id", "stream", "key_properties", "schema", "metadata"}
        # tap-listrak 1.3.1's keys: subscribed_contacts is ListID, ContactID (the dlt table's key
        # stays the stream table's ContactID, ListID).
        assert entry["stream"] == stream.name and entry["key_properties"] == TAP_LISTRAK_KEYS[stream.name]
        assert set(entry["key_properties"]) == set(stream.key)
        schema = entry["schema"]
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        assert tuple(schema["properties"]) == record_properties(stream)
        for column in stream.table_columns:
            prop = schema["properties"][column.path[0]]
            if len(column.path) > 1:
                assert prop["type"] == ["null", "object"]
                prop = prop["properties"][column.path[1]]
            assert prop["type"][0] == "null", column.name  # every property nullable, as in tap-listrak
            if TEXT_DATES.get(stream.name) == column.name:  # s:string in the WSDL: as sent
                assert prop == {"type": ["null", "string"], "description": column.description}
            elif column.type is ColumnType.TIMESTAMP:
                assert prop["type"] == ["null", "string"] and prop["format"] == "date-time"
            if column.type is ColumnType.TEXT_LIST:
                assert prop["type"] == ["null", "array"] and prop["items"] == {"type": "string"}
        root = [m["metadata"] for m in entry["metadata"] if m["breadcrumb"] == []]
        assert len(root) == 1
        assert root[0]["table-key-properties"] == TAP_LISTRAK_KEYS[stream.name]
        assert root[0]["forced-replication-method"] == "FULL_TABLE"
        # tap-listrak 1.3.1 marks the parents automatic, and every field.
        parent = stream.name in ("lists", "messages")
        assert root[0]["inclusion"] == ("automatic" if parent else "available")
        assert root[0]["selected-by-default"] is True
        assert root[0].get("parent-tap-stream-id") == stream.parent
        fields = {tuple(m["breadcrumb"]): m["metadata"] for m in entry["metadata"] if m["breadcrumb"]}
        assert set(fields) == {("properties", name) for name in schema["properties"]}
        assert all(field == {"inclusion": "automatic", "selected-by-default": True} for field in fields.values())
    lists = catalog["streams"][0]["schema"]["properties"]
    assert set(lists["Vmta"]["properties"]) == {"VmtaID", "Description"}


def test_the_text_dates_are_read_from_the_wsdl_and_typed_event_dates_types_them(tmp_path: Path) -> None:
    assert text_dates() == set(TEXT_DATES.items())
    config = write_json(tmp_path / "config.json", {"typed_event_dates": True})
    result = run_tap("--config", config, "--discover")
    assert result.returncode == 0, result.stderr
    typed = json.loads(result.stdout)
    assert typed == discover(typed_event_dates=True)
    for entry in typed["streams"]:
        field = TEXT_DATES.get(entry["tap_stream_id"])
        if field:
            assert entry["schema"]["properties"][field]["format"] == "date-time"
    untyped = {e["tap_stream_id"]: e for e in discover()["streams"]}
    for entry in typed["streams"]:  # nothing else differs
        field = TEXT_DATES.get(entry["tap_stream_id"])
        if field:
            entry["schema"]["properties"][field].pop("format")
        assert entry == untyped[entry["tap_stream_id"]]


def test_discover_output_passes_singer_python_and_jsonschema(tmp_path: Path) -> None:
    python = target_python(singer_target())
    document = json.dumps([discover(), SINGER_CATALOG_SCHEMA])
    result = subprocess.run([str(python), "-c", THIRD_PARTY_CHECK], input=document,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    parsed = json.loads(result.stdout)
    assert list(parsed) == list(STREAM_NAMES)
    for stream in STREAMS:
        assert parsed[stream.name]["keys"] == TAP_LISTRAK_KEYS[stream.name]
        assert parsed[stream.name]["method"] == "FULL_TABLE"
        assert parsed[stream.name]["properties"] == sorted(record_properties(stream))


def test_about_json_and_markdown() -> None:
    as_json = run_tap("--about", "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    about = json.loads(as_json.stdout)
    assert about["name"] == "tap-listrak" and about["version"]
    assert {"catalog", "properties", "discover", "state", "about"} <= set(about["capabilities"])
    settings = about["settings"]
    # username/password or client_id/client_secret: neither pair is required on its own
    assert settings["required"] == ["start_date"]
    assert {"interval_days", "endpoint", "concurrency", "read_timeout"} <= set(settings["properties"])
    assert settings["properties"]["password"]["secret"] is True
    assert "tables" not in settings["properties"]  # selection is the catalog's job
    settings_fields = {f.name for f in dataclasses.fields(Settings)}
    # Every tap key is a real setting, or one of the tap's own.
    assert set(settings["properties"]) <= settings_fields | set(TAP_OPTIONS)
    assert settings["properties"]["typed_event_dates"]["type"] == "boolean"
    assert settings["properties"]["typed_event_dates"]["default"] is False
    assert json.loads(run_tap("--about").stdout) == about
    markdown = run_tap("--about", "--format", "markdown")
    assert markdown.returncode == 0
    assert markdown.stdout.startswith("# `tap-listrak`") and "## Settings" in markdown.stdout
    for name in settings["properties"]:
        assert f"`{name}`" in markdown.stdout


def test_every_tap_setting_and_flag_is_in_the_manual_s_singer_page() -> None:
    section = (Path(__file__).parent.parent / "docs" / "singer.md").read_text(encoding="utf-8")
    for name in json.loads(run_tap("--about").stdout)["settings"]["properties"]:
        assert f"`{name}`" in section or f'"{name}"' in section, f"docs/singer.md does not name {name}"
    for flag in ("--version", "--about", "--test", "--discover", "--catalog", "--state", "--properties", "--debug"):
        assert flag in section, flag


def _listrak_check(sim: Simulator, password: str) -> str:
    result = cli("check", env=cli_env(sim.url, password=password), timeout=120)
    assert result.returncode == 3, result.stderr
    return result.stderr.strip().removeprefix("Error: ")


@pytest.mark.parametrize(
    ("make_sim", "password", "needle"),
    [
        (lambda: Simulator(scale="tiny"), "wrong-password", "rejected the username or password"),
        (lambda: Simulator(scale="tiny", ip_allowlist=["10.0.0.0/8"]), DEFAULT_PASSWORD, "SOAP API IP Authorization"),
    ],
    ids=["bad-password", "ip-refused"],
)
def test_test_flag_fails_with_the_check_command_s_message(
    make_sim: Callable[[], Simulator], password: str, needle: str, tmp_path: Path
) -> None:
    with make_sim() as sim:
        result = run_tap("--config", write_json(tmp_path / "c.json", config_for(sim, password=password)), "--test")
        assert sum(sim.stats()["requests"].values()) == 1  # never retried: Listrak locks accounts
        check_message = _listrak_check(sim, password)
    assert result.returncode == 3
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines == [f"CRITICAL {check_message}"] and needle in lines[0]


def test_version_is_the_listrak_sync_distribution_s() -> None:
    result = run_tap("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"tap-listrak {metadata.version('listrak-sync')} (listrak-sync)\n"


def test_the_console_script_and_both_module_names_run_the_tap() -> None:
    # pyproject's `tap-listrak = module:function` names the entry point a fresh install writes.
    script = re.search(r'^tap-listrak = "([\w.]+):(\w+)"$', (REPO / "pyproject.toml").read_text(), re.MULTILINE)
    assert script, "pyproject.toml declares no tap-listrak script"
    module, function = script.groups()
    assert callable(getattr(importlib.import_module(module), function))
    for name in (module, "listrak_sync.singer", "listrak_sync.singer"):  # the last: the old module name
        result = subprocess.run([sys.executable, "-m", name, "--version"], capture_output=True, text=True,
                                timeout=60, env=clean_env())
        assert result.returncode == 0 and result.stdout.startswith("tap-listrak "), (name, result.stderr)


@pytest.mark.parametrize("flags", [["--test"], []], ids=["test", "sync"])
def test_an_unreachable_endpoint_is_configuration_exit_2_as_in_listrak_sync_check(
    flags: list[str], tmp_path: Path
) -> None:
    endpoint = "http://127.0.0.1:9/v31/IntegrationService.asmx"  # the discard port: connection refused
    config = {"username": "u", "password": "pw-1234", "start_date": "2024-01-01", "endpoint": endpoint,
              "max_retries": 0}
    result = run_tap("--config", write_json(tmp_path / "config.json", config), *flags)
    check = cli("check", env=cli_env(endpoint, username="u", password="pw-1234", LISTRAK_MAX_RETRIES="0"),
                timeout=120)
    assert (result.returncode, check.returncode) == (2, 2), (result.stderr, check.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("CRITICAL Cannot connect") and "Traceback" not in result.stderr
    assert lines[0].removeprefix("CRITICAL ") == check.stderr.strip().removeprefix("Error: ")


def test_test_flag_passes_with_good_credentials(tmp_path: Path) -> None:
    with Simulator(scale="tiny") as sim:
        result = run_tap("--config", write_json(tmp_path / "c.json", config_for(sim)), "--test")
        assert sim.stats()["requests"] == {"GetContactListCollection": 1}
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # not a sync: no Singer messages
    assert "Connection OK" in result.stderr and "3 lists visible" in result.stderr


def test_the_password_never_appears_on_stdout_or_stderr(tmp_path: Path) -> None:
    password = f"S3cret-{uuid.uuid4().hex}"
    with Simulator(scale="tiny", page_size=20, users=[User("leaky", password)]) as sim:
        good = config_for(sim, username="leaky", password=password)
        synced = run_tap("--config", write_json(tmp_path / "good.json", good), "--debug")
        assert synced.returncode == 0, synced.stderr
        assert "ReportRangeMessageContactOpen" in synced.stderr  # DEBUG really logged the calls
        assert records_of(parse_messages(synced.stdout))["lists"]
        outputs = [synced]
        for name, config, flags in (
            ("wrong", {**good, "password": password + "x"}, ["--test"]),
            ("wrong", {**good, "password": password + "x"}, []),
            ("bad-date", {**good, "start_date": "13/45/2024"}, []),
            ("bad-key", {**good, "concurrency": "many"}, ["--test"]),
        ):
            outputs.append(run_tap("--config", write_json(tmp_path / f"{name}.json", config), *flags, "--debug"))
    assert [r.returncode for r in outputs] == [0, 3, 3, 2, 2]
    for result in outputs:
        assert password not in result.stdout and password not in result.stderr


@pytest.mark.parametrize(
    ("config", "args", "needle"),
    [
        ({"username": "u", "start_date": "2024-01-01"}, [], "'password'"),
        ({"username": "u", "password": "pw-1234", "start_date": "13/45/2024"}, [], "start date"),
        ({"username": "u", "password": "pw-1234", "start_date": "01/01/2999"}, [], "future"),
        ({"username": "u", "password": "pw-1234", "start_date": "2024-01-01", "concurrency": 0}, [], "concurrency"),
        ({"username": "u", "password": "pw-1234", "start_date": "2024-01-01", "typed_event_dates": "maybe"}, [],
         "typed_event_dates"),
        (None, [], "not valid JSON"),
        ({"username": "u", "password": "pw-1234", "start_date": "2024-01-01"}, ["--catalog", "CATALOG"], "streams"),
        ({"username": "u", "password": "pw-1234", "start_date": "2024-01-01"}, ["--state", "STATE"], "ISO 8601"),
    ],
    ids=["no-password", "bad-date", "future-date", "bad-concurrency", "bad-typed-dates", "not-json", "bad-catalog",
         "bad-state"],
)
def test_bad_configuration_is_one_critical_line_and_exit_2(
    tmp_path: Path, config: dict[str, Any] | None, args: list[str], needle: str
) -> None:
    path = tmp_path / "config.json"
    if config is None:
        path.write_text('{"username": "u", "password": ')
    else:
        write_json(path, {**config, "endpoint": "http://127.0.0.1:9/v31/IntegrationService.asmx"})
    files = {"CATALOG": write_json(tmp_path / "catalog.json", {"type": "not a catalog"}),
             "STATE": write_json(tmp_path / "state.json", {"bookmarks": {"message_opens": {"OpenDate": "yesterday"}}})}
    result = run_tap("--config", str(path), *[files.get(a, a) for a in args])
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("WARNING")]
    assert len(lines) == 1 and lines[0].startswith("CRITICAL ") and "Traceback" not in result.stderr
    assert needle.lower() in lines[0].lower()
    assert result.stdout == ""


@pytest.mark.parametrize(
    "start_date", ["2024-01-01", "2024-01-01T00:00:00Z", "01/01/2024", "2024-01-01T00:00:00.000000Z"]
)
def test_tap_listrak_config_and_date_forms(start_date: str, caplog: pytest.LogCaptureFixture) -> None:
    config = {"username": "u", "password": "pw-1234", "start_date": start_date, "interval_days": "30",
              "user_agent": "x"}
    settings = settings_from_config(config)
    # A zone in the start date names that instant; without one it is the service's wall time
    # (source_timezone, UTC here): either way an instant once validated.
    assert settings.start_date == datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert settings.start_date.tzinfo is timezone.utc
    assert settings.interval_days == 30
    assert "user_agent" in caplog.text  # ignored, and said so
    # `tables` is the dlt job's setting; in the tap the catalog selects.
    assert settings_from_config({**config, "tables": "lists"}).tables is None


def test_selection_reads_tap_listrak_and_meltano_catalogs() -> None:
    # tap-listrak 1.3.1's discovery: the same metadata as ours, with "selected": true everywhere.
    old = discover()
    for entry in old["streams"]:
        for item in entry["metadata"]:
            item["metadata"]["selected"] = True
    assert read_selection(old).streams == set(STREAM_NAMES)
    # Meltano writes an explicit "selected" everywhere: it wins over "automatic", for a parent
    # stream (tap-listrak 1.3.1 would still emit lists) and for a non-key field alike.
    for entry in old["streams"]:
        if entry["tap_stream_id"] in ("lists", "message_sends"):
            entry["metadata"][0]["metadata"]["selected"] = False
        if entry["tap_stream_id"] == "subscribed_contacts":
            for item in entry["metadata"]:
                if item["breadcrumb"] in (["properties", "AdditionMethod"], ["properties", "ListID"]):
                    assert item["metadata"]["inclusion"] == "automatic"
                    item["metadata"]["selected"] = False
    old["streams"].append({"tap_stream_id": "campaigns", "schema": {}, "metadata": []})  # a stream we do not have
    selection = read_selection(old)
    assert selection.streams == set(STREAM_NAMES) - {"lists", "message_sends"}
    contacts = selection.properties["subscribed_contacts"]
    assert "AdditionMethod" not in contacts and "ListID" in contacts  # key properties are always emitted
    # No selection information at all: nothing is selected (the Singer convention).
    bare = {"streams": [{"tap_stream_id": s.name, "schema": {}} for s in STREAMS]}
    assert read_selection(bare).streams == set()
    assert read_selection({"streams": discover()["streams"]}).streams == set(STREAM_NAMES)


def test_state_keeps_unknown_keys_and_rejects_garbage() -> None:
    run_time = datetime.fromisoformat("2026-06-01T00:00:00+00:00")
    state = SingerState({"bookmarks": {"lists": {"x": 1}}, "currently_syncing": "lists"})
    state.complete("message_opens", run_time)
    value = state.value({})
    assert value["bookmarks"] == {"lists": {"x": 1}, "message_opens": {"OpenDate": "2026-06-01T00:00:00.000000Z"}}
    assert value["currently_syncing"] == "lists"
    refused = {"ClickDate": "2026-01-01", "refused": {"lists": {}, "messages": {}}}
    for garbage in ([], {"bookmarks": []}, {"bookmarks": {"message_clicks": {"ClickDate": 5}}},
                    {"bookmarks": {"message_clicks": {"ClickDate": "2026-01-01", "progress": {"until": "x"}}}},
                    {"bookmarks": {"message_clicks": {**refused, "refused": []}}},
                    {"bookmarks": {"message_clicks": {**refused, "refused": {"lists": {"twelve": "2026-01-01"}}}}},
                    {"bookmarks": {"message_clicks": {**refused, "refused": {"lists": {"12": "soon"}}}}},
                    {"bookmarks": {"message_clicks": {**refused, "refused": {"messages": {"812": {"ListID": 12}}}}}}):
        with pytest.raises(ConfigError):
            SingerState(garbage)
