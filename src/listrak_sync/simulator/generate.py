"""Clock-independent generation of the simulator's account: lists, contacts, message headers.

Everything here is a pure function of ``(seed, scale)``. Times are integer microseconds since
:data:`EPOCH` ("us" in names) so that comparisons and sorting are cheap; :func:`from_us`
turns them back into naive datetimes. Randomness comes from :func:`derive_rng`, which seeds a
``random.Random`` from a BLAKE2 digest of its parts, never from Python's salted ``hash()``,
so the account is identical in every process.

Per-message events are generated lazily in :mod:`listrak_sync.simulator.events`; this module
only decides who unsubscribes through which message, because that changes the recipients of
every later message of the list.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from listrak_sync.streams import get_stream

EPOCH = datetime(2024, 1, 1)
DEFAULT_NOW = datetime(2026, 6, 1)
# Data keeps arriving at the same pace for a year after DEFAULT_NOW, so the clock can move.
HORIZON = DEFAULT_NOW + timedelta(days=365)

US = 1_000_000
HOUR = 3600 * US
DAY = 24 * HOUR
NEVER = 2**62

_ONE_US = timedelta(microseconds=1)


@dataclass(frozen=True)
class Scale:
    """The size and behaviour of a synthetic account.

    ``contacts_per_list`` and ``messages_per_list`` count what exists before
    :data:`DEFAULT_NOW`; both keep growing at the same pace until a year later. Rates are
    per recipient (bounce, open), per open (read), per opener (click), per clicker
    (conversion) and per delivered recipient (unsubscribe).
    """

    lists: int
    contacts_per_list: int
    messages_per_list: int
    bounce_rate: float = 0.02
    open_rate: float = 0.25
    repeat_open_rate: float = 0.35
    read_rate: float = 0.45
    click_rate: float = 0.22
    repeat_click_rate: float = 0.4
    unsub_rate: float = 0.003
    conversion_rate: float = 0.12
    test_message_rate: float = 0.1
    shared_contact_rate: float = 0.15


SCALES: dict[str, Scale] = {
    "tiny": Scale(lists=3, contacts_per_list=30, messages_per_list=5, open_rate=0.4, click_rate=0.35,
                  unsub_rate=0.03, bounce_rate=0.04),
    "small": Scale(lists=5, contacts_per_list=380, messages_per_list=24),
    "medium": Scale(lists=10, contacts_per_list=1550, messages_per_list=60),
    "large": Scale(lists=20, contacts_per_list=4300, messages_per_list=118),
}


def to_us(dt: datetime) -> int:
    """Microseconds from :data:`EPOCH` to ``dt`` (negative before it)."""
    return (dt - EPOCH) // _ONE_US


def from_us(us: int) -> datetime:
    """The naive datetime ``us`` microseconds after :data:`EPOCH`."""
    seconds, micro = divmod(us, US)  # much faster than timedelta(microseconds=<large int>)
    return EPOCH + timedelta(0, seconds, micro)


def derive_rng(seed: int, *parts: object) -> random.Random:
    """A random generator determined by ``seed`` and ``parts`` alone (stable across processes)."""
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def binomial(rng: random.Random, n: int, p: float) -> int:
    """A draw from Binomial(n, p): Poisson for small means, normal otherwise (close enough here)."""
    mean = n * p
    if mean <= 0:
        return 0
    if mean < 30:
        limit, k, product = math.exp(-mean), 0, rng.random()
        while product > limit:
            k += 1
            product *= rng.random()
        return min(k, n)
    return max(0, min(n, round(rng.gauss(mean, math.sqrt(mean * (1 - p))))))


def fraction_ms(rng: random.Random, share: float = 0.12) -> int:
    """Usually 0; sometimes a whole number of milliseconds, as the real service sometimes emits."""
    return rng.randrange(1, 1000) * 1000 if rng.random() < share else 0


@dataclass
class Message:
    """A message header; its events are generated on demand from it and its list."""

    msg_id: int
    list_index: int
    ordinal: int  # position among the list's messages by SendDate
    send_us: int
    is_test: bool
    subject: str
    links: tuple[tuple[str, str], ...]
    prefix: int = 0  # subscriptions added at or before SendDate
    prev_regular_send_us: int = -NEVER  # previous non-test message of the list
    unsubs: list[tuple[int, int, str]] = field(default_factory=list)  # (sub, RemovalDate us, method)


@dataclass
class ContactList:
    """One list: its WSContactList row, its subscriptions sorted by AdditionDate, its messages."""

    index: int
    list_id: int
    row: dict
    create_us: int
    sub_person: list[int] = field(default_factory=list)
    sub_add_us: list[int] = field(default_factory=list)
    sub_engagement: list[float] = field(default_factory=list)
    sub_unsub_ordinal: list[int] = field(default_factory=list)
    sub_removal_us: list[int] = field(default_factory=list)
    sub_resub_us: list[int] = field(default_factory=list)  # resubscriptions; empty when none (profile)
    sub_rows: list[dict] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    send_us: list[int] = field(default_factory=list)

    def recipients(self, msg: Message) -> list[int]:
        """Subscriptions that were sent ``msg``: subscribed at SendDate, not unsubscribed earlier."""
        ordinal, removed_at = msg.ordinal, self.sub_unsub_ordinal
        if self.sub_resub_us:  # a resubscribed contact gets the messages sent after it came back
            back, send = self.sub_resub_us, msg.send_us
            regular = [s for s in range(msg.prefix) if removed_at[s] >= ordinal or back[s] <= send]
        else:
            regular = [s for s in range(msg.prefix) if removed_at[s] >= ordinal]
        return regular[:3] if msg.is_test else regular


@dataclass
class People:
    """Every contact of the account; a contact may be on several lists."""

    contact_ids: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    _taken: set[str] = field(default_factory=set)

    def add(self, rng: random.Random) -> int:
        index = len(self.emails)
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        local = rng.choice(_LOCAL_PATTERNS).format(f=first, l=last, i=first[0], n=index)
        if rng.random() < 0.03:
            local += "+" + rng.choice(("news", "shop", "promo"))
        email = f"{local}@{rng.choice(_DOMAINS)}"
        if email in self._taken:
            email = f"{local}.{index}@{rng.choice(_DOMAINS)}"
        self._taken.add(email)
        self.emails.append(email)
        self.contact_ids.append(str(40_000_000 + 7 * index + rng.randrange(7)))
        return index


@dataclass
class AccountData:
    """Everything about an account that does not depend on the clock, except the events."""

    lists: list[ContactList]
    people: People
    messages_by_id: dict[int, Message]


def build_account(seed: int, scale: Scale) -> AccountData:
    """Generate the lists, contacts, subscriptions and message headers of an account."""
    people = People()
    lists = [_build_list(seed, i, scale) for i in range(scale.lists)]
    for lst in lists:
        _subscribe(seed, lst, scale, people)
    schedules = [_schedule_messages(seed, lst, scale) for lst in lists]
    order = sorted((m.send_us, m.list_index, m.ordinal) for sched in schedules for m in sched)
    id_rng = derive_rng(seed, "msg-ids")
    messages_by_id: dict[int, Message] = {}
    next_id = 7_100_000
    for _, list_index, ordinal in order:
        next_id += id_rng.randint(1, 9)
        msg = schedules[list_index][ordinal]
        msg.msg_id = next_id
        messages_by_id[next_id] = msg
    for lst, sched in zip(lists, schedules, strict=True):
        lst.messages, lst.send_us = sched, [m.send_us for m in sched]
        _decide_unsubscribes(seed, lst, scale)
    return AccountData(lists, people, messages_by_id)


def _build_list(seed: int, index: int, scale: Scale) -> ContactList:
    rng = derive_rng(seed, "list", index)
    name = _LIST_NAMES[index % len(_LIST_NAMES)]
    if index >= len(_LIST_NAMES):
        name = f"{name} {index // len(_LIST_NAMES) + 1}"
    create_us = rng.randrange(0, 120 * DAY // US) * US + (index * 3 * DAY if index < 40 else 0)
    brand, domain = rng.choice(_BRANDS)
    has_vmta = index % 3 != 1
    tracking = [f"{d}.{domain}" for d in ("www", "shop", "blog")][: (index + rng.randrange(2)) % 4]
    list_id = 310_000 + 17 * index + rng.randrange(17)
    values: dict[str, object] = {
        "ListID": list_id,
        "ListName": name,
        "CreateDate": from_us(create_us),
        "FromName": brand,
        "FromEmail": f"news@{domain}",
        "EnableRemovalLink": rng.random() < 0.9,
        "EnableBrowserLink": rng.random() < 0.7,
        "bounceHandling": rng.randrange(3),
        "EnableDoubleOptin": rng.random() < 0.3,
        "EnableListHygiene": rng.random() < 0.5,
        "VmtaID": 900 + index % 4 if has_vmta else None,
        "VmtaDescription": f"Pool {index % 4} – shared IPs" if has_vmta else None,
        "ShowEmailList": rng.random() < 0.5,
        "ShowAdvancedPersonalization": rng.random() < 0.4,
        "BounceUnsubscribeCount": rng.choice((1, 3, 5)),
        "DomainAliasLink": f"links.{domain}" if rng.random() < 0.6 else None,
        "DomainAliasEmail": f"mail.{domain}" if rng.random() < 0.5 else None,
        "EnableRSS": rng.random() < 0.1,
        "EnableGoogleAnalytics": bool(tracking) or rng.random() < 0.2,
        "GoogleTrackingDomains": tracking,
        "EnableInternationalization": "ñ" in name or "ü" in name or rng.random() < 0.2,
        "EnableDynamicContent": rng.random() < 0.5,
        "EnableListRemoveHeader": rng.random() < 0.8,
    }
    row = {c.name: values[c.name] for c in get_stream("lists").columns}
    return ContactList(index=index, list_id=list_id, row=row, create_us=create_us)


def _subscribe(seed: int, lst: ContactList, scale: Scale, people: People) -> None:
    rng = derive_rng(seed, "subscriptions", lst.index)
    default_now_us, horizon_us = to_us(DEFAULT_NOW), to_us(HORIZON)
    span_before = default_now_us - lst.create_us
    total = round(scale.contacts_per_list * (horizon_us - lst.create_us) / span_before)
    imported = round(scale.contacts_per_list * 0.2)
    import_us = lst.create_us + HOUR + rng.randrange(3600) * US
    entries: list[tuple[int, int, str]] = []  # (AdditionDate us, person, method)
    on_list: set[int] = set()
    population = len(people.emails)
    for k in range(total):
        if population and rng.random() < scale.shared_contact_rate:
            person = rng.randrange(population)
            if person in on_list:
                person = people.add(rng)
        else:
            person = people.add(rng)
        on_list.add(person)
        if k < imported:
            entries.append((import_us, person, "Import"))
        else:
            added = lst.create_us + rng.randrange(1, (horizon_us - lst.create_us) // US) * US
            entries.append((added + fraction_ms(rng), person, rng.choice(_ADDITION_METHODS)))
    entries.sort()
    for added, person, method in entries:
        lst.sub_person.append(person)
        lst.sub_add_us.append(added)
        lst.sub_engagement.append(min(3.0, rng.lognormvariate(0, 0.5)))
        lst.sub_unsub_ordinal.append(NEVER)
        lst.sub_removal_us.append(NEVER)
        lst.sub_rows.append({
            "ContactID": people.contact_ids[person],
            "EmailAddress": people.emails[person],
            "AdditionDate": from_us(added),
            "AdditionMethod": method,
        })


def _schedule_messages(seed: int, lst: ContactList, scale: Scale) -> list[Message]:
    rng = derive_rng(seed, "messages", lst.index)
    default_now_us, horizon_us = to_us(DEFAULT_NOW), to_us(HORIZON)
    first_us = lst.create_us + 3 * DAY
    # One send just before and one just after DEFAULT_NOW, so moving the clock a few days
    # always shows late events and new messages.
    days = [rng.uniform(1.5, 6.0) * -1, rng.uniform(0.5, 5.0)]
    days += [rng.uniform((first_us - default_now_us) / DAY, -7) for _ in range(scale.messages_per_list - 1)]
    future = round(scale.messages_per_list * (horizon_us - default_now_us) / (default_now_us - first_us))
    days += [rng.uniform(5, (horizon_us - default_now_us) / DAY) for _ in range(max(0, future - 1))]
    sends: list[tuple[int, bool, str]] = []
    for offset in days:
        day_start = (default_now_us + int(offset * DAY)) // DAY * DAY
        send = day_start + rng.randrange(7 * 3600, 20 * 3600) * US + fraction_ms(rng, 0.2)
        subject = _subject(rng)
        sends.append((send, False, subject))
        if rng.random() < scale.test_message_rate or (lst.index == 0 and len(sends) == 1):
            sends.append((send - rng.randrange(1800, 5 * 3600) * US, True, "[TEST] " + subject))
    sends.sort()
    messages = []
    prev_regular = -NEVER
    for ordinal, (send, is_test, subject) in enumerate(sends):
        links = tuple(rng.sample(_LINKS, rng.randint(3, 6)))
        tag = f"m{lst.index}-{ordinal}"
        links = tuple((text, f"https://{url}?utm_source=listrak&utm_campaign={tag}") for text, url in links)
        msg = Message(0, lst.index, ordinal, send, is_test, subject, links,
                      prefix=bisect.bisect_right(lst.sub_add_us, send), prev_regular_send_us=prev_regular)
        messages.append(msg)
        if not is_test:
            prev_regular = send
    return messages


def _decide_unsubscribes(seed: int, lst: ContactList, scale: Scale) -> None:
    """Pick, message by message, who unsubscribes through it (it shrinks later recipient sets)."""
    removed = 0
    for msg in lst.messages:
        rng = derive_rng(seed, "unsubs", msg.msg_id)
        candidates = msg.prefix - removed
        if msg.is_test or candidates <= 0:
            continue
        count = binomial(rng, candidates, scale.unsub_rate)
        chosen: list[int] = []
        while len(chosen) < count:
            sub = rng.randrange(msg.prefix)
            if lst.sub_unsub_ordinal[sub] == NEVER:
                lst.sub_unsub_ordinal[sub] = msg.ordinal
                chosen.append(sub)
        removed += count
        for sub in sorted(chosen):
            removal = msg.send_us // US * US + event_delay_us(rng) + fraction_ms(rng)
            lst.sub_removal_us[sub] = removal
            msg.unsubs.append((sub, removal, rng.choice(_REMOVAL_METHODS)))


def event_delay_us(rng: random.Random) -> int:
    """Whole seconds (at least one) from a send to a reaction: most within hours, a tail to ~30 days."""
    u = rng.random()
    if u < 0.72:
        seconds = rng.expovariate(1 / (4 * 3600))
    elif u < 0.93:
        seconds = rng.uniform(12 * 3600, 3 * 86400)
    else:
        seconds = rng.uniform(3 * 86400, 30 * 86400)
    return (1 + int(seconds)) * US


def _subject(rng: random.Random) -> str:
    template = rng.choice(_SUBJECTS)
    return template.format(pct=rng.choice((10, 15, 20, 25, 30, 40)), item=rng.choice(_ITEMS))


_LIST_NAMES = (
    "Newsletter Zürich", "Ofertas de España ☀", "Weekly Deals", "VIP Customers & Friends",
    "Product <Launches>", "Abandoned Cart Reminders", "Rentrée scolaire – Été", "Back in Stock",
    "Loyalty Program", "Holiday Gift Guide", "Blog Digest", "Nordic Outdoors Ærø",
)
_BRANDS = (
    ("Müller & Söhne", "mueller-soehne.example.com"), ("Acme Outdoor", "acme-outdoor.example.com"),
    ("Café Olé", "cafe-ole.example.com"), ("Northwind", "northwind.example.com"),
)
_SUBJECTS = (
    "{pct}% off {item} – today only", "Tom & Jerry's picks: {item}", "New in: {item} <limited>",
    "¡Últimos días! {pct}% en {item} ☀", "Neu für Sie: {item}", "Your {item} is waiting 🛒",
    "{item} restocked & ready", "Save {pct}% on {item} > {pct} styles", "Weekend edit: {item}",
)
_ITEMS = ("sneakers", "rain jackets", "espresso cups", "wool socks", "tents", "crème brûlée kits",
          "backpacks", "sunglasses", "gift cards")
_LINKS = (
    ("Shop now", "shop.example.com/sale"), ("View in browser", "view.example.com/m"),
    ("Men's", "shop.example.com/c/men"), ("Women's", "shop.example.com/c/women"),
    ("Product: Trail Runner", "shop.example.com/p/1042"), ("Blog & Stories", "blog.example.com/post"),
    ("Store finder", "shop.example.com/stores"), ("Unsubscribe preferences", "prefs.example.com/u"),
    ("Instagram", "instagram.example.com/brand"), ("Gift guide", "shop.example.com/gifts"),
)
_ADDITION_METHODS = ("Signup Form", "Signup Form", "Checkout", "API", "Manual", "Pop-up Form")
_REMOVAL_METHODS = ("Unsubscribe Link", "Unsubscribe Link", "List-Unsubscribe Header", "Spam Complaint",
                    "Preference Center")
_FIRST = ("anna", "ben", "carla", "david", "emma", "felix", "grace", "hugo", "iris", "jon", "kai",
          "lena", "marco", "nina", "oscar", "paula", "quinn", "rosa", "sam", "tara", "uwe", "vera")
_LAST = ("smith", "garcia", "mueller", "o'brien", "rossi", "dubois", "kowalski", "nguyen", "d'angelo",
         "jensen", "silva", "kim", "novak", "walker", "ito")
_LOCAL_PATTERNS = ("{f}.{l}{n}", "{i}{l}{n}", "{f}{n}", "{f}_{l}.{n}", "{l}.{f}{n}")
_DOMAINS = ("example.com", "example.org", "mail.example.net", "example.de", "example.es")
