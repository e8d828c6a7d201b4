"""rest/parse.py: JSON items into tables typed per the stream table, in every form REST.md allows."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pyarrow as pa
import pytest

from listrak_sync.errors import UnreadableValueError
from listrak_sync.extract import arrow_schema
from listrak_sync.rest.parse import request_date, to_table
from listrak_sync.streams import REST_STREAMS, get_stream

UTC = timezone.utc


def test_dates_in_every_form_become_utc_instants_on_the_service_clock() -> None:
    stream = get_stream("message_link_clickers")
    forms = ["2024-07-01T08:00:00", "2024-07-01T08:00:00.1234567", "2024-07-01T12:00:00Z",
             "2024-07-01T13:00:00+01:00", "2024-07-01T08:00:00.5", None, "0001-01-01T00:00:00"]
    items = [{"emailAddress": f"{i}@x", "clickDate": value} for i, value in enumerate(forms)]
    table = to_table(stream, items, {"listId": 1, "messageId": 2, "linkId": 3}, zone="America/New_York")
    got = table.column("clickDate").to_pylist()
    noon = datetime(2024, 7, 1, 12, tzinfo=UTC)
    assert got[:4] == [noon, noon.replace(microsecond=123456), noon, noon]
    assert got[4] == noon.replace(microsecond=500000)
    assert got[5] is None and got[6] is None  # null, and .NET's unset DateTime
    assert table.column_names[:3] == ["listId", "messageId", "linkId"]  # stamped ids first
    assert table.column("linkId").to_pylist() == [3] * len(forms)


def test_a_wall_time_in_the_fall_back_hour_is_the_earlier_instant_as_for_soap() -> None:
    stream = get_stream("message_link_clickers")
    table = to_table(stream, [{"emailAddress": "a@x", "clickDate": "2024-11-03T01:30:00"}],
                     {"listId": 1, "messageId": 2, "linkId": 3}, zone="America/New_York")
    assert table.column("clickDate")[0].as_py() == datetime(2024, 11, 3, 5, 30, tzinfo=UTC)


def test_numbers_bools_text_and_json() -> None:
    stream = get_stream("message_activity")
    item = {"abuse": False, "activityDate": None, "bounce": "true", "bounceReason": "", "click": 1,
            "clickCount": 3.0, "emailAddress": "a@x", "open": True, "orderTotal": 12, "read": False,
            "sendDate": "2024-01-01T00:00:00", "unsubscribe": False, "visitDate": None,
            "externalContactID": None, "somethingNew": {"x": 1}}
    row = to_table(stream, [item], {"listId": 1, "messageId": 2}).to_pylist()[0]
    assert row["bounce"] is True and row["click"] is True and row["clickCount"] == 3
    assert row["orderTotal"] == 12.0 and isinstance(row["orderTotal"], float)
    assert row["bounceReason"] == "" and row["externalContactID"] is None  # text as given
    assert "somethingNew" not in row
    contacts = get_stream("contacts")
    values = [{"segmentationFieldGroupId": 1, "segmentationFieldId": 2, "value": "Zürich"}]
    row = to_table(contacts, [{"emailAddress": "a@x", "segmentationFieldValues": values}], {"listId": 1}).to_pylist()[0]
    assert json.loads(row["segmentationFieldValues"]) == values and row["subscribeDate"] is None  # missing: null


def test_from_parent_columns_come_from_the_parent_row_raw_or_typed() -> None:
    stream = get_stream("message_summaries")
    summary = {name: 0 for name in ("averageOrderValue", "bounceCount", "clickCount", "conversionCount", "openCount",
                                    "passAlongCount", "readCount", "revenue", "sentCount", "unsubscribeCount",
                                    "visitCount")}
    raw = {"messageId": 2, "sendDate": "2024-02-01T10:00:00", "messageStatus": "Sent", "campaignId": 4,
           "externalCampaignId": None, "subject": "Hello"}
    typed = {**raw, "sendDate": datetime(2024, 2, 1, 10, tzinfo=UTC)}
    for parent in (raw, typed):
        row = to_table(stream, [summary], {"listId": 1, "messageId": 2}, parent).to_pylist()[0]
        assert row["subject"] == "Hello" and row["campaignId"] == 4
        assert row["sendDate"] == datetime(2024, 2, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(("column", "value"), [("clickCount", "many"), ("clickCount", 1.5), ("open", "yes"),
                                               ("sendDate", "yesterday"), ("clickCount", True)])
def test_an_unreadable_value_names_the_field(column: str, value: object) -> None:
    stream = get_stream("message_activity")
    item = {"emailAddress": "a@x", "abuse": False, "bounce": False, "click": False, "clickCount": 0, "open": False,
            "orderTotal": 0, "read": False, "unsubscribe": False, column: value}
    with pytest.raises(UnreadableValueError, match=f"message_activity: field {column}"):
        to_table(stream, [item], {"listId": 1, "messageId": 2})


@pytest.mark.parametrize("stream", [s for s in REST_STREAMS], ids=lambda s: s.name)
def test_every_rest_stream_has_its_arrow_schema_even_empty(stream) -> None:  # type: ignore[no-untyped-def]
    ids = {c.name: 1 for c in stream.path_keys}
    table = to_table(stream, [], ids)
    assert table.schema == arrow_schema(stream) and table.num_rows == 0
    assert all(isinstance(f.type, pa.DataType) for f in table.schema)


def test_request_dates_are_service_wall_times_in_whole_seconds() -> None:
    assert request_date(datetime(2024, 7, 1, 12, 0, 0, 999, tzinfo=UTC), "America/New_York") == "2024-07-01T08:00:00"
    assert request_date(datetime(2024, 1, 1, tzinfo=UTC)) == "2024-01-01T00:00:00"
