"""The REST view of the SOAP account: lists, messages, activity, links, clickers, summaries, contacts.

Everything here is derived from the :class:`~listrak_sync.simulator.data.Account` the SOAP
service reads, so both APIs tell one story:

- lists and messages are the SOAP ones (``listId`` = ListID, ``messageId`` = MsgID); deleted
  messages and withdrawn lists are gone;
- a message's activity has one row per SOAP send; its flags and ``clickCount`` come from the
  SOAP opens, reads, clicks, bounces and unsubscribes visible at the clock, ``activityDate`` is
  the first of them, ``orderTotal`` the contact's orders;
- a message's links are its SOAP links (ids 1..n within the message; some are never clicked),
  with one clicker row per SOAP click;
- a summary's counts are the SOAP counters of the message (``sentCount`` = sends);
- contacts are the SOAP subscriptions: subscribed ones, and those unsubscribed through a message.

Items are dicts in the model's key order, with naive wall-clock datetimes (:mod:`.render`
writes them); :mod:`.extras` adds what SOAP lacks.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from typing import TYPE_CHECKING, Any

from listrak_sync.simulator.cache import SizedLRU
from listrak_sync.simulator.generate import NEVER, ContactList, Message
from listrak_sync.simulator.rest.activity import Contact, Send, activity_item, summary_item
from listrak_sync.simulator.rest.extras import Extras
from listrak_sync.simulator.rest.profile import RestProfile

if TYPE_CHECKING:
    from listrak_sync.simulator.data import Account

_BOUNCE_HANDLING = ("None", "Standard", "Aggressive")

# A row and the internal times its filters read ("send", "activity", "click", "subscribe", ...).
Row = tuple[dict[str, Any], dict[str, int | None]]


class RestWorld:
    """The REST resources of one account at its clock; not thread-safe (the service locks)."""

    def __init__(self, account: Account, profile: RestProfile) -> None:
        self.account = account
        self.profile = profile
        self.extras = Extras(self)
        self._sends: SizedLRU[int, list[Send]] = SizedLRU(1_000_000)
        self._unsub_methods: dict[int, dict[int, str]] = {}
        # Activity rows per (message, clock): a client pages through them with many requests.
        self._activity: SizedLRU[tuple[int, int], list[Row]] = SizedLRU(200_000)

    # -- clock and values ---------------------------------------------------------------------

    @property
    def now_us(self) -> int:
        return self.account._now_us

    @property
    def top_us(self) -> int:
        """The latest event time visible at the clock (events show up after the profile's delay)."""
        return self.account._now_us - self.account._delay_us

    def wall(self, us: int) -> Any:
        """The service's wall time of internal time ``us``."""
        return self.account.clock.wall(us)

    def text(self, value: Any) -> Any:
        """An unset string as the profile writes it (null, or "")."""
        return "" if value is None and self.profile.empty_strings else value

    def array(self, value: list[Any]) -> list[Any] | None:
        """An empty array as the profile writes it ([], or null)."""
        return None if not value and self.profile.null_arrays else value

    def contact(self, lst: ContactList, sub: int) -> Contact:
        """The address and external id of subscription ``sub`` of ``lst``."""
        person = lst.sub_person[sub]
        return Contact(self.account._people.emails[person], self.external_id(person))

    def external_id(self, person: int) -> str | None:
        """A contact's id in the customer's systems (two in three contacts have one)."""
        return None if person % 3 == 0 else f"CUST-{self.account._people.contact_ids[person]}"

    # -- lists --------------------------------------------------------------------------------

    def lists(self) -> list[ContactList]:
        """The lists visible at the clock, in SOAP order."""
        return [lst for lst in self.account._lists if self.account._visible(lst)]

    def find_list(self, list_id: int) -> ContactList | None:
        lst = self.account._lists_by_id.get(list_id)
        return lst if lst is not None and self.account._visible(lst) else None

    def list_item(self, lst: ContactList) -> dict[str, Any]:
        """The List model of ``lst`` (its SOAP row under REST names)."""
        row = lst.row
        return {
            "listId": lst.list_id,
            "listName": self.text(row["ListName"]),
            "folderId": 0,
            "ipPoolId": row["VmtaID"] or 0,
            "bounceDomainAlias": self.text(row["DomainAliasEmail"]),
            "bounceHandling": _BOUNCE_HANDLING[row["bounceHandling"]],
            "bounceUnsubscribeCount": row["BounceUnsubscribeCount"],
            "createDate": self.wall(lst.create_us),
            "enableBrowserLink": row["EnableBrowserLink"],
            "enableDoubleOptIn": row["EnableDoubleOptin"],
            "enableDynamicContent": row["EnableDynamicContent"],
            "enableGoogleAnalytics": row["EnableGoogleAnalytics"],
            "enableInternationalization": row["EnableInternationalization"],
            "enableListHygiene": row["EnableListHygiene"],
            "enableListRemovalHeader": row["EnableListRemoveHeader"],
            "enableListRemovalLink": row["EnableRemovalLink"],
            "enableListrakAnalytics": True,
            "enableSpamScorePersonalization": False,
            "enableToNamePersonalization": row["ShowAdvancedPersonalization"],
            "enableUniversalEmailKeySetting": lst.index % 2 == 0,
            "fromEmail": self.text(row["FromEmail"]),
            "fromName": self.text(row["FromName"]),
            "googleTrackingDomains": self.array(list(row["GoogleTrackingDomains"])),
            "linkDomainAlias": self.text(row["DomainAliasLink"]),
            "mediaDomainAlias": self.text(None),
        }

    # -- messages -----------------------------------------------------------------------------

    def messages(self, lst: ContactList, include_test: bool) -> list[Message]:
        """The list's messages sent by the clock and not deleted, by send date."""
        now, changes = self.now_us, self.account.changes
        sent = lst.messages[:bisect_right(lst.send_us, now)]
        return [m for m in sent if (include_test or not m.is_test) and not changes.deleted(m.msg_id, now)]

    def find_message(self, lst: ContactList, msg_id: int) -> Message | None:
        msg = self.account._messages_by_id.get(msg_id)
        if msg is None or msg.list_index != lst.index or msg.send_us > self.now_us:
            return None
        return None if self.account.changes.deleted(msg_id, self.now_us) else msg

    def message_item(self, msg: Message) -> dict[str, Any]:
        """The Message model."""
        campaign = self.extras.message_campaign(msg)
        return {
            "messageId": msg.msg_id,
            "sendDate": self.wall(msg.send_us),
            "messageStatus": "Sent",
            "campaignId": campaign,
            "externalCampaignId": self.text(f"EXT-{campaign}" if campaign else None),
            "subject": self.text(msg.subject),
        }

    def message_detail(self, msg: Message) -> dict[str, Any]:
        """The MessageExtendedSegmentsApplied model."""
        lst = self.account._lists[msg.list_index]
        item = self.message_item(msg)
        return {
            "messageId": item["messageId"], "sendDate": item["sendDate"], "messageStatus": item["messageStatus"],
            "enableUniversalEmailKeySetting": lst.index % 2 == 0, "campaignId": item["campaignId"],
            "bodyHtml": f"<html><body><h1>{msg.subject}</h1></body></html>", "bodyText": msg.subject,
            "codePage": 65001, "enablePassalong": False, "enableTracking": True,
            "externalCampaignId": item["externalCampaignId"], "fromEmail": self.text(lst.row["FromEmail"]),
            "fromName": self.text(lst.row["FromName"]), "googleAnalyticsCampaignName": self.text(None),
            "googleAnalyticsCampaignContent": self.text(None), "replyEmail": self.text(lst.row["FromEmail"]),
            "savedAudienceId": 0,
            "segmentsApplied": {"includedSegments": self.array([]), "excludedSegments": self.array([])},
            "subject": item["subject"], "toName": self.text(None),
        }

    # -- activity, links, clickers, summaries ---------------------------------------------------

    def sends(self, msg: Message) -> list[Send]:
        """One :class:`Send` per SOAP recipient of ``msg``, holding its SOAP events."""
        sends = self._sends.get(msg.msg_id)
        if sends is not None:
            return sends
        events = self.account._message_events(msg)
        by_sub = {sub: Send(msg.send_us, sub) for sub in events.recipients}
        compact = events.compact
        for t, sub in compact["message_opens"]:
            by_sub[sub].opens.append(t)
        for t, sub in compact["message_reads"]:
            by_sub[sub].reads.append(t)
        for t, sub, _link in compact["message_clicks"]:
            by_sub[sub].clicks.append(t)
        for t, sub, method in compact["message_unsubs"]:
            by_sub[sub].unsub = (t, method)
        email = self.account._people.emails
        lst = self.account._lists[msg.list_index]
        from listrak_sync.simulator.events import _BOUNCES  # the SOAP bounce texts

        for t, sub, reason, _count in compact["message_bounces"]:
            by_sub[sub].bounce = (t, _BOUNCES[reason][1].format(email=email[lst.sub_person[sub]]))
        for t, cents, sub in compact.get("orders", ()):
            by_sub[sub].orders.append((t, cents))
        sends = list(by_sub.values())
        self._sends.put(msg.msg_id, sends, len(sends))
        return sends

    def activity(self, msg: Message) -> list[Row]:
        """MessageActivity rows of ``msg`` (one per recipient) with their send and activity times.

        The rows are shared between calls at one clock time: callers must not change them.
        """
        lst = self.account._lists[msg.list_index]
        top, now = self.top_us, self.now_us
        cached = self._activity.get((msg.msg_id, now))
        if cached is not None:
            return cached
        rows: list[Row] = []
        for send in self.sends(msg):
            item = activity_item(send, self.contact(lst, send.sub), top, now, self.wall, self.text)
            rows.append((item, {"send": send.send_us, "activity": send.first_activity(top)}))
        self._activity.put((msg.msg_id, now), rows, len(rows))
        return rows

    def links(self, msg: Message) -> list[dict[str, Any]]:
        """MessageLink items: the message's links, ids 1..n, with the visible clicks on each."""
        counts = [0] * len(msg.links)
        for t, _sub, link in self.account._message_events(msg).compact["message_clicks"]:
            if t <= self.top_us:
                counts[link] += 1
        return [{"linkId": k + 1, "linkDescription": self.text(text), "linkUrl": self.text(url),
                 "clickCount": counts[k]} for k, (text, url) in enumerate(msg.links)]

    def clickers(self, msg: Message, link_id: int) -> list[Row]:
        """MessageLinkClicker rows of link ``link_id`` of ``msg``: one per visible click."""
        lst = self.account._lists[msg.list_index]
        email = self.account._people.emails
        return [({"emailAddress": email[lst.sub_person[sub]], "clickDate": self.wall(t)}, {"click": t})
                for t, sub, link in self.account._message_events(msg).compact["message_clicks"]
                if link == link_id - 1 and t <= self.top_us]

    def summary(self, msg: Message) -> dict[str, Any]:
        """MessageSummary of ``msg``: the SOAP counters at the clock."""
        summary = self.account._summary(msg)
        soap = summary.counters(self.now_us, self.account._unique)
        delivered = int(soap["DeliverCount"])
        cents = round(float(soap["OrderTotal"]) * 100)
        item = summary_item(summary.sends - delivered, int(soap["ClickCount"]), int(soap["ConversionCount"]),
                            int(soap["OpenCount"]), int(soap["ReadCount"]), cents, summary.sends,
                            int(soap["RemoveCount"]), int(soap["ClickerCount"]))
        item["revenue"], item["averageOrderValue"] = soap["OrderTotal"], soap["AverageOrderValue"]
        return item

    # -- contacts -----------------------------------------------------------------------------

    def _methods(self, lst: ContactList) -> dict[int, str]:
        methods = self._unsub_methods.get(lst.index)
        if methods is None:
            methods = {sub: method for msg in lst.messages for sub, _t, method in msg.unsubs}
            self._unsub_methods[lst.index] = methods
        return methods

    def contacts(self, lst: ContactList, state: str, field_ids: list[int] | None) -> list[Row]:
        """Contact rows of ``lst`` in ``state`` (Subscribed/Unsubscribed) at the clock.

        ``field_ids``: the profile fields whose values to include (None: none).
        """
        now = self.now_us
        end = bisect_right(lst.sub_add_us, now)
        back_us = lst.sub_resub_us
        rows: list[Row] = []
        for sub in range(end):
            removal = lst.sub_removal_us[sub]
            back = back_us[sub] if back_us else NEVER
            subscribed = removal > now or back <= now
            if subscribed != (state == "Subscribed"):
                continue
            item = self.contact_item(lst, sub, field_ids)
            recent = back if back <= now else lst.sub_add_us[sub]
            rows.append((item, {"subscribe": lst.sub_add_us[sub], "resubscribe": recent,
                                "unsubscribe": None if subscribed else removal}))
        return rows

    def contact_item(self, lst: ContactList, sub: int, field_ids: list[int] | None) -> dict[str, Any]:
        """The Contact model of subscription ``sub``."""
        now = self.now_us
        person = lst.sub_person[sub]
        email = self.account._people.emails[person]
        removal = lst.sub_removal_us[sub]
        back = lst.sub_resub_us[sub] if lst.sub_resub_us else NEVER
        subscribed = removal > now or back <= now
        values = self.extras.profile_values(lst, sub, field_ids)
        return {
            "emailAddress": email,
            "emailKey": hashlib.blake2b(f"{self.account.seed}:{person}".encode(), digest_size=10).hexdigest(),
            "universalEmailKey": hashlib.sha256(email.strip().lower().encode()).hexdigest(),
            "subscriptionState": "Subscribed" if subscribed else "Unsubscribed",
            "subscribeDate": self.wall(lst.sub_add_us[sub]),
            "resubscribeDate": self.wall(back) if back <= now else None,
            "subscribeMethod": self.text(lst.sub_rows[sub]["AdditionMethod"]),
            "unsubscribeDate": None if subscribed else self.wall(removal),
            "unsubscribeMethod": self.text(None if subscribed else self._methods(lst).get(sub)),
            "externalContactID": self.text(self.external_id(person)),
            "segmentationFieldValues": self.array(values),
        }

    def find_contact(self, lst: ContactList, identifier: str) -> int | None:
        """The subscription of an address or emailKey on ``lst`` (subscribed by the clock)."""
        wanted = identifier.strip().lower()
        end = bisect_right(lst.sub_add_us, self.now_us)
        for sub in range(end):
            person = lst.sub_person[sub]
            key = hashlib.blake2b(f"{self.account.seed}:{person}".encode(), digest_size=10).hexdigest()
            if wanted in (self.account._people.emails[person].lower(), key):
                return sub
        return None
