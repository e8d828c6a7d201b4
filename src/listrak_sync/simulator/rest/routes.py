"""The REST GET routes the simulator serves, how their ids resolve, and what each answers.

A route is a template below ``/email/v1`` in the spec's spelling; its ``{names}`` are the
spec's path parameters, so a 404 names them as Listrak does (REST.md §3.4). Matching is
case-insensitive; an id that is not an integer matches no route (404 ERROR_UNKNOWN_ROUTE). Each
id resolves within its parent (a message of another list is a 404).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from listrak_sync.simulator.rest.activity import activity_item, totals
from listrak_sync.simulator.rest.params import RestError, invalid, parse_bool, parse_date
from listrak_sync.simulator.rest.world import RestWorld, Row

MAX_SEGMENTATION_FIELDS = 30


@dataclass(frozen=True)
class Answer:
    """What a route answers: one item (``resource``), all items (``collection``) or rows to page."""

    kind: str  # resource, collection, paged
    data: Any


Handler = Callable[[RestWorld, dict[str, Any], Mapping[str, str]], Answer]


@dataclass(frozen=True)
class Route:
    template: str
    names: tuple[str, ...]
    pattern: re.Pattern[str]
    handler: Handler


def _route(template: str, handler: Handler) -> Route:
    names = tuple(re.findall(r"{(\w+)}", template))
    regex = re.sub(r"{(\w+)}", lambda m: r"([^/]+)" if m.group(1) == "contactIdentifier" else r"(\d{1,9})",
                   template)
    return Route(template, names, re.compile(regex + r"/?", re.IGNORECASE), handler)


# -- resolution ---------------------------------------------------------------------------------

def resolve(world: RestWorld, names: tuple[str, ...], values: tuple[str, ...]) -> dict[str, Any] | None:
    """The objects behind a route's ids, each found within its parent; None if one is missing."""
    objs: dict[str, Any] = {}
    extras = world.extras
    for name, raw in zip(names, values, strict=True):
        found: Any = None
        if name == "listId":
            found = world.find_list(int(raw))
        elif name == "contactIdentifier":
            found = world.find_contact(objs["listId"], raw)
        elif name == "messageId":
            found = world.find_message(objs["listId"], int(raw))
        elif name == "messageLinkId":
            found = int(raw) if 1 <= int(raw) <= len(objs["messageId"].links) else None
        elif name == "campaignId":
            found = next((c for c in extras.of(objs["listId"]).campaigns if c[0] == int(raw)), None)
        elif name == "conversationId":
            found = next((c for c in extras.of(objs["listId"]).conversations if c.conversation_id == int(raw)), None)
        elif name == "conversationMessageId":
            found = next((m for m in objs["conversationId"].messages if m.message_id == int(raw)), None)
        elif name == "transactionalMessageId":
            found = next((t for t in extras.of(objs["listId"]).transactional
                          if t.transactional_id == int(raw)), None)
        elif name == "segmentationFieldGroupId":
            found = next((g for g in extras.of(objs["listId"]).groups if g.group_id == int(raw)), None)
        elif name == "segmentationFieldId":
            found = next((f for f in objs["segmentationFieldGroupId"].fields if f.field_id == int(raw)), None)
        if found is None:
            return None
        objs[name] = found
    return objs


# -- filters ------------------------------------------------------------------------------------

def _window(world: RestWorld, query: Mapping[str, str], end_exclusive: bool = False) -> tuple[int, int]:
    """Internal [low, high] of startDate/endDate (inclusive unless the end is exclusive)."""
    clock = world.account.clock
    to_local = None if clock.utc else clock.to_local
    low, high = -(2**62), 2**62
    if query.get("startdate"):
        low = clock.internal_us(parse_date("startDate", query["startdate"], to_local))
    if query.get("enddate"):
        high = clock.internal_us(parse_date("endDate", query["enddate"], to_local))
        if end_exclusive or world.profile.end_exclusive:
            high -= 1
    return low, high


def _between(rows: list[Row], key: str, window: tuple[int, int], filtered: bool) -> list[Row]:
    if not filtered:
        return rows
    low, high = window
    return [row for row in rows if row[1].get(key) is not None and low <= row[1][key] <= high]  # type: ignore[operator]


def _dated(world: RestWorld, query: Mapping[str, str], rows: list[Row], key: str) -> list[Row]:
    filtered = bool(query.get("startdate") or query.get("enddate"))
    return _between(rows, key, _window(world, query), filtered)


_ACTIVITY_TYPES = {"open": "open", "read": "read", "click": "click", "bounce": "bounce",
                   "unsubscribe": "unsubscribe", "abuse": "abuse"}


def _activity_filters(world: RestWorld, query: Mapping[str, str], rows: list[Row], date_type: bool) -> list[Row]:
    key = "send"
    if date_type:
        kind = (query.get("datetype") or "Send").lower()
        if kind not in ("send", "activity"):
            raise invalid("dateType")
        key = kind
    rows = _dated(world, query, rows, key)
    if query.get("activitytype"):
        flag = _ACTIVITY_TYPES.get(query["activitytype"].lower())
        if flag is None:
            raise invalid("activityType")
        rows = [row for row in rows if row[0][flag]]
    if date_type and query.get("emailaddress"):
        wanted = query["emailaddress"].strip().lower()
        rows = [row for row in rows if str(row[0]["emailAddress"]).lower() == wanted]
    return rows


def _field_ids(query: Mapping[str, str]) -> list[int] | None:
    text = query.get("segmentationfieldids")
    if not text:
        return None
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise invalid("segmentationFieldIds") from None
    if len(ids) > MAX_SEGMENTATION_FIELDS:
        raise RestError(400, "ERROR_TOO_MANY_SEGMENTATION_FIELDS",
                        f"No more than {MAX_SEGMENTATION_FIELDS} segmentation fields may be requested.")
    return ids


# -- handlers -----------------------------------------------------------------------------------

def _conv_message_item(world: RestWorld, msg: Any, extended: bool) -> dict[str, Any]:
    lst_from = world.text
    item: dict[str, Any] = {
        "messageId": msg.message_id,
        "sendDate": None if msg.send_us is None else world.wall(msg.send_us),
        "messageStatus": lst_from(msg.status),
    }
    if not extended:
        return {**item, "campaignId": 0, "externalCampaignId": lst_from(None), "subject": lst_from(msg.subject)}
    return {**item, "enableUniversalEmailKeySetting": False, "campaignId": 0,
            "bodyHtml": f"<p>{msg.subject}</p>", "bodyText": msg.subject, "codePage": 65001,
            "enablePassalong": False, "enableTracking": True, "externalCampaignId": lst_from(None),
            "fromEmail": lst_from(None), "fromName": lst_from(None), "googleAnalyticsCampaignName": lst_from(None),
            "googleAnalyticsCampaignContent": lst_from(None), "replyEmail": lst_from(None), "savedAudienceId": 0,
            "subject": lst_from(msg.subject), "toName": lst_from(None)}


def _sends_rows(world: RestWorld, lst: Any, sends: list[Any], transactional: bool) -> list[Row]:
    top, now = world.top_us, world.now_us
    return [(activity_item(s, world.contact(lst, s.sub), top, now, world.wall, world.text, transactional),
             {"send": s.send_us, "activity": s.first_activity(top)}) for s in sends if s.send_us <= now]


def _contacts(w: RestWorld, o: dict[str, Any], q: Mapping[str, str]) -> Answer:
    state = q.get("subscriptionstate") or "Subscribed"
    if state.lower() not in ("subscribed", "unsubscribed"):
        raise invalid("subscriptionState")
    state = state.capitalize()
    original = parse_bool("useOriginalSubscribeDate", q.get("useoriginalsubscribedate"), True)
    rows = w.contacts(o["listId"], state, _field_ids(q))
    if q.get("externalcontactid"):
        rows = [r for r in rows if r[0]["externalContactID"] == q["externalcontactid"]]
    key = "unsubscribe" if state == "Unsubscribed" else ("subscribe" if original else "resubscribe")
    window = _window(w, q, end_exclusive=state == "Subscribed" and not original)
    return Answer("paged", _between(rows, key, window, bool(q.get("startdate") or q.get("enddate"))))


def _messages(w: RestWorld, o: dict[str, Any], q: Mapping[str, str]) -> Answer:
    include = parse_bool("includeTestMessages", q.get("includetestmessages"), False)
    rows: list[Row] = [(w.message_item(m), {"send": m.send_us}) for m in w.messages(o["listId"], include)]
    return Answer("paged", _dated(w, q, rows, "send"))


def _conv_messages(w: RestWorld, o: dict[str, Any], q: Mapping[str, str]) -> Answer:
    previous = parse_bool("includePreviousVersions", q.get("includepreviousversions"), False)
    return Answer("paged", [(_conv_message_item(w, m, False), {}) for m in o["conversationId"].messages
                            if previous or not m.previous])


def _conversation_item(w: RestWorld, c: Any) -> dict[str, Any]:
    return {"conversationId": c.conversation_id, "conversationName": w.text(c.name), "campaignId": c.campaign_id,
            "expirationDate": None if c.expiration_us is None else w.wall(c.expiration_us),
            "status": w.text(c.status)}


def _group_item(w: RestWorld, g: Any) -> dict[str, Any]:
    return {"segmentationFieldGroupId": g.group_id, "segmentationFieldGroupName": w.text(g.name),
            "position": g.position}


def _field_item(w: RestWorld, f: Any) -> dict[str, Any]:
    return {"segmentationFieldId": f.field_id, "segmentationFieldName": w.text(f.name),
            "segmentationFieldGroupId": f.group_id, "dataType": f.data_type, "maxLength": f.max_length,
            "position": f.position}


def _transactional_item(w: RestWorld, t: Any) -> dict[str, Any]:
    return {"transactionalMessageId": t.transactional_id, "transactionalMessageName": w.text(t.name),
            "campaignId": t.campaign_id, "externalCampaignId": w.text(f"EXT-{t.campaign_id}" if t.campaign_id
                                                                      else None),
            "subject": w.text(t.subject)}


def _conversation_summary(w: RestWorld, c: Any) -> dict[str, Any]:
    item = totals([s for m in c.messages for s in m.sends], w.now_us)
    delivered = item["sentCount"] - item["bounceCount"]
    keys = ("averageOrderValue", "bounceCount", "clickCount", "conversionCount")
    rest = ("openCount", "readCount", "revenue", "sentCount", "unsubscribeCount", "visitCount")
    return {**{k: item[k] for k in keys}, "deliveredCount": delivered, **{k: item[k] for k in rest}}


_L, _M, _C = "/List/{listId}", "/List/{listId}/Message/{messageId}", "/List/{listId}/Conversation/{conversationId}"
_CM = _C + "/Message/{conversationMessageId}"
_T, _G = "/List/{listId}/TransactionalMessage/{transactionalMessageId}", \
    "/List/{listId}/SegmentationFieldGroup/{segmentationFieldGroupId}"

ROUTES: tuple[Route, ...] = tuple(_route(t, h) for t, h in (
    ("/List", lambda w, o, q: Answer("collection", [w.list_item(lst) for lst in w.lists()])),
    (_L, lambda w, o, q: Answer("resource", w.list_item(o["listId"]))),
    (_L + "/Message", _messages),
    (_M, lambda w, o, q: Answer("resource", w.message_detail(o["messageId"]))),
    (_M + "/Activity", lambda w, o, q: Answer("paged", _activity_filters(w, q, w.activity(o["messageId"]), True))),
    (_M + "/Link", lambda w, o, q: Answer("paged", [(i, {}) for i in w.links(o["messageId"])])),
    (_M + "/Link/{messageLinkId}",
     lambda w, o, q: Answer("resource", w.links(o["messageId"])[o["messageLinkId"] - 1])),
    (_M + "/Link/{messageLinkId}/Clicker",
     lambda w, o, q: Answer("paged", _dated(w, q, w.clickers(o["messageId"], o["messageLinkId"]), "click"))),
    (_M + "/Summary", lambda w, o, q: Answer("resource", w.summary(o["messageId"]))),
    (_L + "/Contact", _contacts),
    (_L + "/Contact/{contactIdentifier}",
     lambda w, o, q: Answer("resource", w.contact_item(o["listId"], o["contactIdentifier"], _field_ids(q)))),
    (_L + "/Campaign", lambda w, o, q: Answer("collection", [{"campaignId": c, "campaignName": w.text(n)}
                                                             for c, n in w.extras.of(o["listId"]).campaigns])),
    (_L + "/Campaign/{campaignId}",
     lambda w, o, q: Answer("resource", {"campaignId": o["campaignId"][0],
                                         "campaignName": w.text(o["campaignId"][1])})),
    (_L + "/Conversation", lambda w, o, q: Answer("collection", [_conversation_item(w, c) for c in
                                                                 w.extras.of(o["listId"]).conversations])),
    (_C, lambda w, o, q: Answer("resource", _conversation_item(w, o["conversationId"]))),
    (_C + "/Summary", lambda w, o, q: Answer("resource", _conversation_summary(w, o["conversationId"]))),
    (_C + "/Message", _conv_messages),
    (_CM, lambda w, o, q: Answer("resource", _conv_message_item(w, o["conversationMessageId"], True))),
    (_CM + "/Activity", lambda w, o, q: Answer("paged", _activity_filters(
        w, q, _sends_rows(w, o["listId"], o["conversationMessageId"].sends, False), False))),
    (_CM + "/Summary", lambda w, o, q: Answer("resource", totals(o["conversationMessageId"].sends, w.now_us))),
    (_L + "/TransactionalMessage", lambda w, o, q: Answer("collection", [
        _transactional_item(w, t) for t in w.extras.of(o["listId"]).transactional])),
    (_T, lambda w, o, q: Answer("resource", _transactional_item(w, o["transactionalMessageId"]))),
    (_T + "/Activity", lambda w, o, q: Answer("paged", _activity_filters(
        w, q, _sends_rows(w, o["listId"], o["transactionalMessageId"].sends, True), True))),
    (_L + "/SegmentationFieldGroup", lambda w, o, q: Answer("collection", [
        _group_item(w, g) for g in w.extras.of(o["listId"]).groups])),
    (_G, lambda w, o, q: Answer("resource", _group_item(w, o["segmentationFieldGroupId"]))),
    (_G + "/SegmentationField", lambda w, o, q: Answer("collection", [
        _field_item(w, f) for f in o["segmentationFieldGroupId"].fields])),
    (_G + "/SegmentationField/{segmentationFieldId}",
     lambda w, o, q: Answer("resource", _field_item(w, o["segmentationFieldId"]))),
))


def match(path: str) -> tuple[Route, tuple[str, ...]] | None:
    """The route a path below ``/email/v1`` matches, and its raw ids."""
    for route in ROUTES:
        found = route.pattern.fullmatch(path)
        if found:
            return route, found.groups()
    return None
