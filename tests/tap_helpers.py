"""Run ``tap-listrak`` as a user or an orchestrator does, and read its Singer output back.

Used by ``test_tap*.py``. The tap runs as a subprocess (``python -m listrak_sync.singer``) against
the simulator over HTTP; its stdout is parsed strictly (one JSON message per line) and its
records are compared with the simulator's ground truth.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from helpers import REPO, clean_env, installed_tool

from listrak_sync.simulator import DEFAULT_PASSWORD, DEFAULT_USERNAME, Simulator
from listrak_sync.streams import STREAMS_BY_NAME, ColumnType, Stream

TAP = [sys.executable, "-m", "listrak_sync.singer"]
# The tap's command line with its clock set to the instant in the first argument (the simulator's
# virtual now), through the clock parameter of listrak_sync.singer.main.run.
TAP_AT = [sys.executable, "-c", "import sys; from datetime import datetime; from listrak_sync.singer.main import run; "
          "now = datetime.fromisoformat(sys.argv[1]); sys.exit(run(sys.argv[2:], clock=lambda: now))"]
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
# The dates Listrak's WSDL types s:string; tap-listrak 1.3.1 emitted them as the service sent them.
TEXT_DATES = {"message_clicks": "ClickDate", "message_opens": "OpenDate", "message_reads": "ReadDate",
              "message_bounces": "BounceDate"}
# tap-listrak 1.3.1's key properties (tap_listrak/schemas.py PK_FIELDS).
TAP_LISTRAK_KEYS = {
    "lists": ["ListID"],
    "messages": ["MsgID"],
    "message_bounces": ["MsgID", "EmailAddress"],
    "message_clicks": ["MsgID", "EmailAddress"],
    "message_opens": ["MsgID", "EmailAddress"],
    "message_reads": ["MsgID", "EmailAddress"],
    "message_sends": ["MsgID", "EmailAddress"],
    "message_unsubs": ["MsgID", "EmailAddress"],
    "subscribed_contacts": ["ListID", "ContactID"],
}
DEFAULT_TARGET = REPO / ".venv" / "targets" / "target-jsonl" / "bin" / "target-jsonl"


def tap_command(*args: str, now: datetime | None = None) -> list[str]:
    """The tap's command line; with ``now`` (naive: UTC) the run's clock reads that instant."""
    if now is None:
        return [*TAP, *args]
    return [*TAP_AT, now.replace(tzinfo=now.tzinfo or timezone.utc).isoformat(), *args]


def run_tap(*args: str, timeout: float = 300, now: datetime | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(tap_command(*args, now=now), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=clean_env())


def write_json(path: Path, value: Any) -> str:
    path.write_text(json.dumps(value), encoding="utf-8")
    return str(path)


def config_for(sim: Simulator, *, username: str = DEFAULT_USERNAME, password: str = DEFAULT_PASSWORD,
               start_date: str = "2024-01-01", **extra: Any) -> dict[str, Any]:
    return {"username": username, "password": password, "start_date": start_date, "endpoint": sim.url, **extra}


def parse_messages(stdout: str) -> list[dict[str, Any]]:
    """Every stdout line is one Singer message; SCHEMA comes before a stream's first RECORD."""
    messages = []
    schemas: set[str] = set()
    assert stdout.endswith("\n"), "the last message must end its line"
    for number, line in enumerate(stdout.splitlines(), 1):
        message = json.loads(line)
        assert isinstance(message, dict), f"line {number} is not a JSON object"
        kind = message.get("type")
        assert kind in ("SCHEMA", "RECORD", "STATE"), f"line {number}: unexpected type {kind!r}"
        if kind == "SCHEMA":
            assert set(message) == {"type", "stream", "schema", "key_properties"}, message.keys()
            schemas.add(message["stream"])
        elif kind == "RECORD":
            assert message["stream"] in schemas, f"line {number}: RECORD of {message['stream']} before its SCHEMA"
            assert isinstance(message["record"], dict)
        else:
            assert isinstance(message["value"], dict)
        messages.append(message)
    return messages


def records_of(messages: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for message in messages:
        if message["type"] == "RECORD":
            out.setdefault(message["stream"], []).append(message["record"])
    return out


def states_of(messages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["value"] for m in messages if m["type"] == "STATE"]


def parse_rfc3339(text: str) -> datetime:
    assert RFC3339_UTC.match(text), f"not an RFC 3339 UTC time: {text!r}"
    return datetime.fromisoformat(text[:-1] + "+00:00").astimezone(timezone.utc).replace(tzinfo=None)


def parse_sent_date(text: str) -> datetime:
    """A date as the simulator writes it (``YYYY-MM-DDTHH:MM:SS[.fff]`` or the US form), naive."""
    assert not text.endswith("Z"), f"expected the service's text, got an RFC 3339 time: {text!r}"
    if "/" in text:  # the US format of the string-typed dates (pessimistic profile)
        return datetime.strptime(text, "%m/%d/%Y %I:%M:%S %p")
    return datetime.fromisoformat(text)


def _value(column_type: ColumnType, value: Any, zone: str = "UTC") -> Any:
    if value is None:
        return None
    if column_type is ColumnType.TIMESTAMP and isinstance(value, str):
        # RFC 3339 from the tap (back to the service's wall time), or an event date as sent.
        if not value.endswith("Z"):
            return parse_sent_date(value)
        moment = parse_rfc3339(value)
        return moment if zone == "UTC" else wall_time(moment, zone)
    if column_type is ColumnType.TEXT_LIST:
        return tuple(value)
    return value


def wall_time(moment: datetime, zone: str) -> datetime:
    """The wall time in ``zone`` of a naive UTC instant."""
    return moment.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def record_row(stream: Stream, record: dict[str, Any], zone: str = "UTC") -> tuple[Any, ...]:
    """A Singer record as a tuple in table-column order (``Vmta`` flattened back).

    Args:
        zone: the tap's ``source_timezone``: RFC 3339 dates go back to that zone's wall time,
            which is what the simulator's ground truth holds.
    """
    values = []
    for column in stream.table_columns:
        value = record.get(column.path[0])
        if len(column.path) > 1:
            value = value.get(column.path[1]) if value else None
        values.append(_value(column.type, value, zone))
    return tuple(values)


def truth_row(stream: Stream, row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(_value(c.type, row.get(c.name)) for c in stream.table_columns)


def assert_records_match(table: str, records: list[dict[str, Any]], truth: list[dict[str, Any]]) -> None:
    """Records and ground truth are the same multiset of rows: nothing missing, extra or doubled.

    Timestamps are compared as instants, whether the record has them in RFC 3339 or as sent.
    """
    stream = STREAMS_BY_NAME[table]
    got = Counter(record_row(stream, r) for r in records)
    want = Counter(truth_row(stream, r) for r in truth)
    missing, extra = want - got, got - want
    assert not missing and not extra, (
        f"{table}: {sum(missing.values())} rows missing, {sum(extra.values())} unexpected; "
        f"e.g. missing {list(missing)[:2]} extra {list(extra)[:2]}"
    )


def assert_records_cover(
    table: str,
    records: list[dict[str, Any]],
    required: list[dict[str, Any]],
    allowed: list[dict[str, Any]] | None = None,
    *,
    zone: str = "UTC",
) -> int:
    """Every required row was emitted at least once, and no record is outside ``allowed``.

    The contract of runs continued from state: a row may come again (the lookback overlap,
    a resumed checkpoint), never not at all, and nothing is made up.

    Args:
        allowed: the rows a record may be (default: ``required``).
        zone: the tap's ``source_timezone`` (see :func:`record_row`).

    Returns:
        How many records were duplicates (a row emitted more than once counts n - 1).
    """
    stream = STREAMS_BY_NAME[table]
    got = Counter(record_row(stream, r, zone) for r in records)
    want = Counter(truth_row(stream, r) for r in required)
    missing = want - got  # a row the truth holds twice must come at least twice
    extra = set(got) - {truth_row(stream, r) for r in (required if allowed is None else allowed)}
    assert not missing and not extra, (
        f"{table}: {sum(missing.values())} rows never emitted, {len(extra)} emitted that are not in the ground "
        f"truth; e.g. missing {sorted(missing, key=repr)[:2]} extra {sorted(extra, key=repr)[:2]}"
    )
    return sum(max(0, n - max(1, want[row])) for row, n in got.items())


def singer_target(name: str = "LISTRAK_TEST_SINGER_TARGET") -> Path:
    """The Singer target executable (target-jsonl in its own virtualenv); a test skips without it."""
    return installed_tool(DEFAULT_TARGET, name, "make .venv/targets/target-jsonl/bin/target-jsonl")


def target_python(target: Path) -> Path:
    """The interpreter of the target's virtualenv (it has singer-python and jsonschema)."""
    return target.parent / "python"


def recorded(state: dict[str, Any], since_epoch: int = 0) -> dict[str, dict[int, int]]:
    """Per activity stream, the messages a STATE's plan records as fetched (at or after
    ``since_epoch``, epoch seconds), with when."""
    from listrak_sync.engine.state import SINGER_KEY, unpack_plan

    plan = unpack_plan(state[SINGER_KEY]["plan"])
    found: dict[str, dict[int, int]] = {}
    for entry in plan["lists"].values():
        for msg_id, seen in entry.get("messages", {}).items():
            for table, (_, _, fetched_at) in seen.items():
                if fetched_at >= since_epoch:
                    found.setdefault(table, {})[int(msg_id)] = fetched_at
    return found


# tap-listrak 2.x's REST streams: the table each is read from, and the key properties our 2.x
# mode emits (2.x's own where they do not collapse rows; docs/singer.md, "Switching from
# tap-listrak 2.x").
TAP_LISTRAK_2X = {
    "lists": ("rest_lists", ["listId"]),
    "campaigns": ("campaigns", ["campaignId"]),
    "contacts": ("contacts", ["listId", "emailAddress"]),
    "messages": ("rest_messages", ["messageId"]),
    "message_links": ("message_links", ["listId", "messageId", "linkId"]),  # 2.x: linkId
    "message_link_clickers": ("message_link_clickers",  # 2.x: linkId, emailAddress, clickDate
                              ["listId", "messageId", "linkId", "emailAddress", "clickDate"]),
    "message_activity": ("message_activity", []),
    "conversations": ("conversations", ["conversationId"]),
    "conversation_messages": ("conversation_messages", ["messageId"]),
    "conversation_message_activity": ("conversation_message_activity", []),
    "transactional_messages": ("transactional_messages", ["transactionalMessageId"]),
}


def rest_config_for(sim: Simulator, client_id: str, client_secret: str, **extra: Any) -> dict[str, Any]:
    """A tap-listrak 2.x config pointed at the simulator's REST API."""
    from listrak_sync.simulator.data import EPOCH

    return {"client_id": client_id, "client_secret": client_secret, "start_date": EPOCH.date().isoformat(),
            "rest_endpoint": sim.rest_url, "token_endpoint": sim.token_url, **extra}


def assert_rest_records_match(table: str, records: list[dict[str, Any]], truth: list[dict[str, Any]]) -> None:
    """2.x-mode records (camelCase, RFC 3339 dates) equal the REST ground truth as multisets."""
    from destination import normalize

    from listrak_sync.streams import get_stream

    stream = get_stream(table)
    dates = {c.name for c in stream.table_columns if c.type is ColumnType.TIMESTAMP}
    rows = [{k: parse_rfc3339(v) if k in dates and v is not None else v for k, v in r.items()} for r in records]
    got = normalize(stream, rows, listrak_names=True)
    want = normalize(stream, truth, listrak_names=True)
    missing, extra = want - got, got - want
    assert not missing and not extra, (
        f"{table}: {sum(missing.values())} rows missing, {sum(extra.values())} unexpected; "
        f"e.g. missing {list(missing)[:2]} extra {list(extra)[:2]}"
    )
