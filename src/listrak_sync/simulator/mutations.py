"""What a profile changes in an account over time: deletions, resubscriptions, a lost list, re-opens.

Everything here is a pure function of ``(seed, scale, profile)`` and draws from its own seeded
generators, so a friendly profile leaves the account exactly as :mod:`.generate` builds it.

- **Deleted messages** (``message_deletion_rate``): a deleted message disappears from
  ReportListMessageActivity once the clock reaches its deletion time, and its event reports
  and recipients come back empty from then on. Deletions fall 0.5-30 days after the send; in
  addition, the first list's last regular message sent before DEFAULT_NOW is deleted 1-3 days
  after DEFAULT_NOW, so that a run, a clock move of a few days and another run always see one.
- **Resubscriptions** (``resubscribe_rate``): an unsubscribed contact subscribes again 1-60
  days after its RemovalDate; it is then in ``subscribed_contacts`` again and receives the
  list's later messages. The last contact of each list to unsubscribe before DEFAULT_NOW comes
  back 0.5-3 days after DEFAULT_NOW.
- **A withdrawn list** (``list_withdrawal_days``): at DEFAULT_NOW plus that many days, one list
  (never the first) is taken from the API user: it leaves GetContactListCollection and its
  ListID and messages are refused.
- **Late re-opens** (``late_reopen_rate``): openers who open the message again 0.5-20 days
  after their last open (and, at the scale's read rate, read it again), so that events arrive
  long after the send while unique counters stand still.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from listrak_sync.simulator.events import MessageEvents, first_times, refresh_summary
from listrak_sync.simulator.generate import (
    DAY,
    DEFAULT_NOW,
    NEVER,
    US,
    AccountData,
    ContactList,
    Message,
    Scale,
    derive_rng,
    fraction_ms,
    to_us,
)
from listrak_sync.simulator.profile import Profile


@dataclass
class AccountChanges:
    """When messages are deleted, contacts come back and a list is withdrawn (internal us)."""

    deleted_us: dict[int, int] = field(default_factory=dict)  # MsgID -> deletion time
    resubscribed: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # ListID -> [(time, sub)]
    withdrawn_list_id: int | None = None
    withdrawn_us: int = NEVER

    def deleted(self, msg_id: int, now_us: int) -> bool:
        """Whether message ``msg_id`` has been deleted by ``now_us``."""
        return self.deleted_us.get(msg_id, NEVER) <= now_us

    def withdrawn(self, list_id: int, now_us: int) -> bool:
        """Whether list ``list_id`` has been taken from the API user by ``now_us``."""
        return list_id == self.withdrawn_list_id and self.withdrawn_us <= now_us


def plan_changes(seed: int, data: AccountData, profile: Profile) -> AccountChanges:
    """Decide the account's deletions, resubscriptions and withdrawal under ``profile``.

    Resubscriptions are written into each list's ``sub_resub_us``, which changes the recipients
    of later messages; call this before any events are generated.
    """
    changes = AccountChanges()
    if profile.message_deletion_rate:
        changes.deleted_us = _deletions(seed, data.lists, profile.message_deletion_rate)
    if profile.resubscribe_rate:
        for lst in data.lists:
            comebacks = _resubscriptions(seed, lst, profile.resubscribe_rate)
            if comebacks:
                changes.resubscribed[lst.list_id] = comebacks
    if profile.list_withdrawal_days is not None and len(data.lists) > 1:
        index = derive_rng(seed, "withdrawn-list").randrange(1, len(data.lists))
        changes.withdrawn_list_id = data.lists[index].list_id
        changes.withdrawn_us = to_us(DEFAULT_NOW) + round(profile.list_withdrawal_days * DAY)
    return changes


def _deletions(seed: int, lists: Iterable[ContactList], rate: float) -> dict[int, int]:
    deleted: dict[int, int] = {}
    default_now_us = to_us(DEFAULT_NOW)
    for lst in lists:
        for msg in lst.messages:
            rng = derive_rng(seed, "deleted", msg.msg_id)
            if rng.random() < rate:
                deleted[msg.msg_id] = msg.send_us + round(rng.uniform(0.5, 30) * DAY) // US * US
        if lst.index == 0:
            before = [m for m in lst.messages if not m.is_test and m.send_us < default_now_us]
            if before:
                rng = derive_rng(seed, "deleted-soon", lst.index)
                deleted[before[-1].msg_id] = default_now_us + round(rng.uniform(1, 3) * DAY) // US * US
    return deleted


def _resubscriptions(seed: int, lst: ContactList, rate: float) -> list[tuple[int, int]]:
    rng = derive_rng(seed, "resubscribed", lst.index)
    removal = lst.sub_removal_us
    back = [NEVER] * len(removal)
    gone = [s for s in range(len(removal)) if removal[s] != NEVER]
    for sub in gone:
        if rng.random() < rate:
            back[sub] = removal[sub] // US * US + round(rng.uniform(1, 60) * DAY) // US * US + fraction_ms(rng)
    default_now_us = to_us(DEFAULT_NOW)
    before = [s for s in gone if removal[s] <= default_now_us]
    if before:
        last = max(before, key=lambda s: (removal[s], s))
        back[last] = default_now_us + round(rng.uniform(0.5, 3) * DAY) // US * US
    comebacks = sorted((time, sub) for sub, time in enumerate(back) if time != NEVER)
    if comebacks:
        lst.sub_resub_us = back
    return comebacks


def shape_events(seed: int, scale: Scale, events: MessageEvents, msg: Message, profile: Profile) -> None:
    """Apply ``profile`` to a message's freshly generated events (before any rows are built)."""
    if profile.late_reopen_rate:
        _add_late_reopens(seed, scale, events, msg, profile.late_reopen_rate)
    if profile.unique_open_count:
        events.summary.first_opens = first_times(events.compact["message_opens"])
    if profile.unique_read_count:
        events.summary.first_reads = first_times(events.compact["message_reads"])


def _add_late_reopens(seed: int, scale: Scale, events: MessageEvents, msg: Message, rate: float) -> None:
    opens, reads = events.compact["message_opens"], events.compact["message_reads"]
    last_open: dict[int, int] = {}
    for time, sub in opens:
        last_open[sub] = time
    if not last_open:
        return
    rng = derive_rng(seed, "late-reopens", msg.msg_id)
    added = False
    for sub, last in last_open.items():
        if rng.random() >= rate:
            continue
        # Whole seconds at least half a day after the contact's last open and read: still distinct
        # from every earlier event when a US date format cuts the milliseconds.
        reopen = last // US * US + round(rng.uniform(0.5, 20) * DAY) // US * US
        opens.append((reopen + fraction_ms(rng), sub))
        if rng.random() < scale.read_rate:
            reads.append((reopen + (2 + rng.randrange(240)) * US + fraction_ms(rng), sub))
        added = True
    if added:
        opens.sort()
        reads.sort()
        refresh_summary(events)
