"""The REST ground truth: what a correct client's REST tables hold after a full run.

Rows are keyed by :attr:`Stream.table_columns` (the route's ids first), with values as the
service writes them under the account's profile, as the SOAP ground truth has them: dates as
naive wall times of the service's clock, ``""`` where the profile writes it for an unset
string, and no unknown fields. ``start_date`` (a service wall time) bounds, inclusively:

- messages by send date, so message activity, links, clickers and summaries (test sends
  included, as ``rest_messages`` asks for them);
- contacts: subscribed ones by their latest subscribe date (the resubscription, if any),
  unsubscribed ones by their unsubscribe date; their ``segmentationFieldValues`` hold every
  value the contact has, over all the list's fields, by field id;
- conversation and transactional activity by the send date.

Campaigns, conversations, their messages and summaries, transactional messages and profile
fields are not bounded by date.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from listrak_sync.simulator.rest.activity import totals
from listrak_sync.simulator.rest.routes import (
    _conv_message_item,
    _conversation_item,
    _field_item,
    _group_item,
    _sends_rows,
    _transactional_item,
)
from listrak_sync.simulator.rest.world import RestWorld
from listrak_sync.streams import get_stream


def rest_ground_truth(world: RestWorld, table: str, start_date: datetime) -> list[dict[str, Any]]:
    """The rows of REST table ``table`` after a full run from ``start_date``.

    ``rest_lists`` and ``rest_messages`` (no table: the Singer tap's 2.x ``lists`` and
    ``messages``) are every list, and every message sent since ``start_date``.

    Raises:
        KeyError: ``table`` is not a REST stream.
    """
    stream = get_stream(table)
    if stream.api != "rest":
        raise KeyError(f"{table!r} is not a REST stream")
    start = world.account.clock.internal_us(start_date)
    rows: list[dict[str, Any]] = []
    for lst in world.lists():
        ids = {"listId": lst.list_id}
        extras = world.extras.of(lst)
        if table == "rest_lists":
            rows.append(world.list_item(lst))
        elif table == "rest_messages":
            rows += [{**ids, **world.message_item(m)} for m in world.messages(lst, include_test=True)
                     if m.send_us >= start]
        elif table == "contacts":
            fields = [f.field_id for g in extras.groups for f in g.fields]
            for state, key in (("Subscribed", "resubscribe"), ("Unsubscribed", "unsubscribe")):
                rows += [{**ids, **item} for item, dates in world.contacts(lst, state, fields)
                         if (dates[key] or 0) >= start]
        elif table == "campaigns":
            rows += [{**ids, "campaignId": c, "campaignName": world.text(n)} for c, n in extras.campaigns]
        elif table == "segmentation_field_groups":
            rows += [{**ids, **_group_item(world, g)} for g in extras.groups]
        elif table == "segmentation_fields":
            rows += [{**ids, **_field_item(world, f)} for g in extras.groups for f in g.fields]
        elif table == "transactional_messages":
            rows += [{**ids, **_transactional_item(world, t)} for t in extras.transactional]
        elif table == "transactional_message_activity":
            for t in extras.transactional:
                rows += [{**ids, "transactionalMessageId": t.transactional_id, **item}
                         for item, dates in _sends_rows(world, lst, t.sends, True) if (dates["send"] or 0) >= start]
        elif table in ("conversations", "conversation_messages", "conversation_message_activity",
                       "conversation_message_summaries"):
            rows += _conversation_rows(world, table, lst, start)
        else:
            rows += _message_rows(world, table, lst, start)
    return rows


def _conversation_rows(world: RestWorld, table: str, lst: Any, start: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for conv in world.extras.of(lst).conversations:
        ids = {"listId": lst.list_id, "conversationId": conv.conversation_id}
        if table == "conversations":
            rows.append({"listId": lst.list_id, **_conversation_item(world, conv)})
            continue
        for msg in conv.messages:
            if table == "conversation_messages":
                rows.append({**ids, **_conv_message_item(world, msg, True)})
            elif table == "conversation_message_summaries":
                rows.append({**ids, "messageId": msg.message_id, **totals(msg.sends, world.now_us)})
            else:
                rows += [{**ids, "messageId": msg.message_id, **item}
                         for item, dates in _sends_rows(world, lst, msg.sends, False) if (dates["send"] or 0) >= start]
    return rows


def _message_rows(world: RestWorld, table: str, lst: Any, start: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for msg in world.messages(lst, include_test=True):
        if msg.send_us < start:
            continue
        ids = {"listId": lst.list_id, "messageId": msg.msg_id}
        if table == "message_activity":
            rows += [{**ids, **item} for item, _ in world.activity(msg)]
        elif table == "message_links":
            rows += [{**ids, **item} for item in world.links(msg)]
        elif table == "message_link_clickers":
            for link in world.links(msg):
                rows += [{**ids, "linkId": link["linkId"], **item}
                         for item, _ in world.clickers(msg, link["linkId"])]
        elif table == "message_summaries":
            message = world.message_item(msg)
            rows.append({**ids, **{k: v for k, v in message.items() if k != "messageId"}, **world.summary(msg)})
        else:
            raise KeyError(f"{table!r} is not a stored REST table")
    return rows
