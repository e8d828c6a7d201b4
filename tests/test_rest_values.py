"""Profile-field values asked for by id (rest/values.py): batches of 30, merged by email."""

from __future__ import annotations

from listrak_sync.rest.values import merge_values, value_batches
from listrak_sync.streams import get_stream

CONTACTS = get_stream("contacts")


def test_ids_go_out_30_at_a_time_and_none_means_no_parameter() -> None:
    ids = tuple(range(1000, 1034))
    batches = value_batches(CONTACTS, ids)
    assert [b[0] for b in batches] == ["segmentationFieldIds"] * 2
    assert batches[0][1].split(",") == [str(i) for i in ids[:30]] and batches[1][1] == "1030,1031,1032,1033"
    assert value_batches(CONTACTS, ()) == []
    assert value_batches(get_stream("campaigns"), ids) == []


def test_later_batches_values_join_each_contact_by_address() -> None:
    first = [{"emailAddress": "a@x", "segmentationFieldValues": [{"segmentationFieldId": 1, "value": "1"}]},
             {"emailAddress": "b@x", "segmentationFieldValues": None}]
    extra = {("a@x",): [{"segmentationFieldId": 31, "value": "31"}], ("c@x",): [{"segmentationFieldId": 32}]}
    merged = merge_values(CONTACTS, first, extra)
    assert [v["segmentationFieldId"] for v in merged[0]["segmentationFieldValues"]] == [1, 31]
    assert merged[1]["segmentationFieldValues"] == []
    assert first[0]["segmentationFieldValues"] == [{"segmentationFieldId": 1, "value": "1"}]  # not mutated
