"""What REST has and SOAP lacks, generated from the account's seed and scale.

Campaigns, profile-field groups and fields (and each contact's values), conversations with
their messages and sends, transactional messages with their sends. Everything is a pure
function of ``(seed, scale)`` drawn from :func:`~listrak_sync.simulator.generate.derive_rng`;
the clock only decides what is visible. Sends spread from a list's creation to a year after
DEFAULT_NOW, and their opens, clicks and orders come hours to weeks later, so moving the clock
shows new sends and late activity, as the SOAP events do.

Ids: campaigns 5000+, groups 100+, fields 1000+, conversations 600+, conversation messages
9,000,000+, transactional messages 700+ (each unique in the account).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from listrak_sync.simulator.generate import (
    DAY,
    DEFAULT_NOW,
    HORIZON,
    US,
    ContactList,
    Message,
    derive_rng,
    event_delay_us,
    to_us,
)
from listrak_sync.simulator.rest.activity import Send

if TYPE_CHECKING:
    from listrak_sync.simulator.rest.world import RestWorld

_CAMPAIGNS = ("Spring Sale", "Summer Launch", "Back to School", "Black Friday", "Holiday", "Loyalty", "Win-back")
_CONVERSATIONS = ("Welcome Series", "Abandoned Cart", "Browse Abandonment", "Post-Purchase", "Win-back")
_TRANSACTIONAL = ("Order Confirmation", "Shipping Notice", "Password Reset")
_GROUPS = ("Preferences", "Demographics", "Survey Answers")
_FIELDS = (("Favourite category", "RadioButton", 50), ("Birthday", "Date", 10), ("Shoe size", "Numeric", 5),
           ("Newsletter opt-in", "CheckBox", 5), ("Notes", "CommentArea", 2000), ("City", "Text", 100))
_VALUES = {"RadioButton": ("Men's", "Women's", "Kids & Baby", "Outdoor"), "CheckBox": ("on", "off"),
           "Text": ("Zürich", "Madrid", "O'Fallon", "New York"), "CommentArea": ("Prefers email <weekly>", "VIP")}
_BOUNCE = "550 5.1.1 Recipient address rejected: User unknown"


@dataclass
class SegmentationField:
    field_id: int
    name: str
    group_id: int
    data_type: str
    max_length: int
    position: int


@dataclass
class Group:
    group_id: int
    name: str
    position: int
    fields: list[SegmentationField] = field(default_factory=list)


@dataclass
class ConversationMessage:
    message_id: int
    subject: str
    send_us: int | None  # activation (None: a draft)
    status: str
    previous: bool  # a message of an earlier version of the conversation
    sends: list[Send] = field(default_factory=list)


@dataclass
class Conversation:
    conversation_id: int
    name: str
    campaign_id: int
    start_us: int
    expiration_us: int | None
    status: str
    messages: list[ConversationMessage] = field(default_factory=list)


@dataclass
class Transactional:
    transactional_id: int
    name: str
    campaign_id: int
    subject: str
    sends: list[Send] = field(default_factory=list)


@dataclass
class ListExtras:
    campaigns: list[tuple[int, str]]
    groups: list[Group]
    conversations: list[Conversation]
    transactional: list[Transactional]
    values: dict[int, list[tuple[int, int, str]]]  # sub -> [(group, field, value)] by field id


class Extras:
    """Generated REST resources of every list of a :class:`RestWorld` (built on first use)."""

    def __init__(self, world: RestWorld) -> None:
        self.world = world
        self._by_list: dict[int, ListExtras] = {}

    def of(self, lst: ContactList) -> ListExtras:
        extras = self._by_list.get(lst.index)
        if extras is None:
            extras = self._by_list[lst.index] = self._build(lst)
        return extras

    def message_campaign(self, msg: Message) -> int:
        """The campaign of a list message (0 for about a third of them)."""
        campaigns = self.of(self.world.account._lists[msg.list_index]).campaigns
        rng = derive_rng(self.world.account.seed, "rest-campaign", msg.msg_id)
        return 0 if rng.random() < 0.3 else campaigns[rng.randrange(len(campaigns))][0]

    def profile_values(self, lst: ContactList, sub: int, field_ids: list[int] | None) -> list[dict[str, Any]]:
        """A contact's values of the requested fields that it has (by field id)."""
        if not field_ids:
            return []
        wanted = set(field_ids)
        return [{"segmentationFieldGroupId": g, "segmentationFieldId": f, "value": v}
                for g, f, v in self.of(lst).values.get(sub, ()) if f in wanted]

    # -- generation ---------------------------------------------------------------------------

    def _build(self, lst: ContactList) -> ListExtras:
        seed, scale = self.world.account.seed, self.world.account.scale
        rng = derive_rng(seed, "rest-extras", lst.index)
        n_campaigns = 2 + rng.randrange(3)
        campaigns = [(5000 + 10 * lst.index + k, _CAMPAIGNS[(lst.index + k) % len(_CAMPAIGNS)])
                     for k in range(n_campaigns)]
        groups = self._groups(lst, rng)
        values = self._values(lst, groups)
        big = scale.contacts_per_list > 100
        conversations = [self._conversation(lst, k, campaigns) for k in range(3 if big else 2)]
        transactional = [self._transactional(lst, k, campaigns) for k in range(2)]
        return ListExtras(campaigns, groups, conversations, transactional, values)

    def _groups(self, lst: ContactList, rng: Any) -> list[Group]:
        # The first list has more than 30 fields, so a client needs several passes to read them all.
        sizes = [4, 3] + ([27] if lst.index == 0 else [])
        groups, next_field = [], 1000 + 100 * lst.index
        for g, size in enumerate(sizes):
            group = Group(100 + 10 * lst.index + g, _GROUPS[g], g + 1)
            for k in range(size):
                name, data_type, max_length = _FIELDS[(g * 2 + k) % len(_FIELDS)]
                suffix = "" if k < len(_FIELDS) else f" {k // len(_FIELDS) + 1}"
                group.fields.append(SegmentationField(next_field, name + suffix, group.group_id, data_type,
                                                      max_length, k + 1))
                next_field += 1 + rng.randrange(2)
            groups.append(group)
        return groups

    def _values(self, lst: ContactList, groups: list[Group]) -> dict[int, list[tuple[int, int, str]]]:
        rng = derive_rng(self.world.account.seed, "rest-profile-values", lst.index)
        fields = sorted((f for g in groups for f in g.fields), key=lambda f: f.field_id)
        values: dict[int, list[tuple[int, int, str]]] = {}
        for sub in range(len(lst.sub_person)):
            mine = []
            for f in fields:
                if rng.random() < 0.55:
                    mine.append((f.group_id, f.field_id, _value(rng, f.data_type)))
            if mine:
                values[sub] = mine
        return values

    def _conversation(self, lst: ContactList, k: int, campaigns: list[tuple[int, str]]) -> Conversation:
        seed = self.world.account.seed
        rng = derive_rng(seed, "rest-conversation", lst.index, k)
        start = lst.create_us + (5 + rng.randrange(60)) * DAY + rng.randrange(86400) * US
        expiration = to_us(HORIZON) + 30 * DAY if k == 1 else None
        name = _CONVERSATIONS[(lst.index + k) % len(_CONVERSATIONS)]
        conv = Conversation(600 + 10 * lst.index + k, name, campaigns[k % len(campaigns)][0] if k else 0, start,
                            expiration, "Active" if k != 2 else "Paused")
        switch = to_us(DEFAULT_NOW) - (20 + rng.randrange(60)) * DAY  # a new version went live then
        base = 9_000_000 + 1000 * lst.index + 100 * k
        steps = 2 + rng.randrange(2)
        versions = [(True, start), (False, switch)]
        for previous, active in versions:
            for step in range(1 if previous else steps):
                conv.messages.append(ConversationMessage(
                    base + len(conv.messages) + 1, f"{name}: step {step + 1}" + (" (v1)" if previous else ""),
                    active, "Previous Version" if previous else "Active", previous))
        if self.world.profile.draft_conversation_message:
            conv.messages.append(ConversationMessage(base + len(conv.messages) + 1, f"{name}: draft", None,
                                                     "Draft", False))
        entries = self._entries(lst, rng, start, repeat=0.25 if k == 1 else 0.0)
        for entry_us, sub in entries:
            current = entry_us >= switch
            live = [m for m in conv.messages if m.send_us is not None and m.previous != current]
            for step, message in enumerate(live):
                send_us = entry_us + step * 2 * DAY + rng.randrange(3600) * US
                message.sends.append(_draw_send(rng, send_us, sub, None))
        for message in conv.messages:
            message.sends.sort(key=lambda s: (s.send_us, s.sub))
        return conv

    def _transactional(self, lst: ContactList, k: int, campaigns: list[tuple[int, str]]) -> Transactional:
        rng = derive_rng(self.world.account.seed, "rest-transactional", lst.index, k)
        name = _TRANSACTIONAL[(lst.index + k) % len(_TRANSACTIONAL)]
        message = Transactional(700 + 10 * lst.index + k, name, campaigns[-1][0] if k == 0 else 0,
                                f"Your {name.lower()}")
        for entry_us, sub in self._entries(lst, rng, lst.create_us + DAY, repeat=0.3):
            key = hashlib.blake2b(f"{message.transactional_id}:{entry_us}:{sub}".encode(), digest_size=12)
            message.sends.append(_draw_send(rng, entry_us, sub, key.hexdigest().upper()))
        message.sends.sort(key=lambda s: (s.send_us, s.sub))
        return message

    def _entries(self, lst: ContactList, rng: Any, start: int, repeat: float) -> list[tuple[int, int]]:
        """When contacts enter a journey (or trigger a transactional send): some once, some again."""
        entries = []
        horizon = to_us(HORIZON)
        for sub, added in enumerate(lst.sub_add_us):
            if rng.random() >= 0.45:
                continue
            when = max(added, start) + (60 + rng.randrange(5 * 86400)) * US
            while when < horizon:
                entries.append((when, sub))
                if rng.random() >= repeat:
                    break
                when += (1 + rng.randrange(40)) * DAY + rng.randrange(86400) * US
        return entries


def _value(rng: Any, data_type: str) -> str:
    if data_type == "Date":
        return f"{rng.randrange(1950, 2005)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
    if data_type == "Numeric":
        return str(rng.randrange(4, 14))
    return str(rng.choice(_VALUES[data_type]))


def _draw_send(rng: Any, send_us: int, sub: int, resend_key: str | None) -> Send:
    send = Send(send_us, sub, resend_key=resend_key)
    u = rng.random()
    if u < 0.03:
        send.bounce = (send_us + (1 + rng.randrange(1800)) * US, _BOUNCE)
        return send
    if u > 0.5:
        return send
    first = send_us + event_delay_us(rng)
    send.opens.append(first)
    if rng.random() < 0.3:
        send.opens.append(first + (1 + rng.randrange(5 * 86400)) * US)
    if rng.random() < 0.5:
        send.reads.append(first + (2 + rng.randrange(240)) * US)
    if rng.random() < 0.35:
        click = first + (3 + rng.randrange(900)) * US
        send.clicks.append(click)
        if rng.random() < 0.3:
            send.clicks.append(click + (1 + rng.randrange(7200)) * US)
        if rng.random() < 0.15:
            send.orders.append((click + (60 + rng.randrange(2 * 86400)) * US, int(rng.lognormvariate(8.3, 0.7))))
    elif rng.random() < 0.02:
        send.unsub = (first + 30 * US, "Unsubscribe Link")
    return send
