"""How far back a run must ask for each list's messages, and in how many requests.

The message report is not paged: a client cuts the range from the start date until now into
windows of ``interval_days`` (docs/listrak-api.md §4). With an early start date most of those windows
are empty every run (27 of 30 per list on ``small`` from 2000). What a run learns is kept in
the plan, per list, and spares the next run those requests:

- **The quiet past.** Everything from the start date until the list's first message, or until
  ``L = lookback_hours`` ago if that is earlier, had no message when last read, and that past
  does not change (a message's send date is when it was sent). The next run asks from there.
  The list's periodic recheck (``full_recheck_days``) and ``--full-refresh`` ask from the start
  date again, so a message that appears in that past anyway is loaded within one recheck.
- **The known count.** Where the last read found at most :data:`ONE_WINDOW_MESSAGES` messages
  and was less than ``interval_days`` ago, the next run asks for the whole range at once: its
  answer is at most that many old messages plus one window's worth of new ones.
  ``interval_days`` still cuts every range whose size is not known.

The entry is ``plan["lists"][list]["reach"] = [start, quiet_until, count, read_at, from_start_at]``,
epoch seconds except ``count``. It holds only for the start date it was read with.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, MutableMapping
from datetime import datetime, timezone
from typing import Any

from listrak_sync.extract import MessageReach
from listrak_sync.time import utc

# A messages response of this many rows is a few MB of XML: far below max_response_bytes.
ONE_WINDOW_MESSAGES = 10_000


def _epoch(moment: datetime) -> int:
    return math.floor(utc(moment).timestamp())


def _instant(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


def message_reach(
    plan: MutableMapping[str, Any],
    list_id: int,
    *,
    start: datetime,
    now: datetime,
    interval_days: int,
    recheck_days: float,
    full_refresh: bool,
) -> MessageReach:
    """What this run asks for one list's messages, from what the last run recorded.

    Args:
        plan: the plan of the last completed load (:mod:`listrak_sync.engine`).
        list_id: the list.
        start: the start date as an instant.
        now: this run's clock (aware).
        interval_days: the window length for ranges of unknown size.
        recheck_days: the list's recheck period (0: every run starts from the start date).
        full_refresh: ignore what was recorded.
    """
    entry = plan.get("lists", {}).get(str(list_id), {}).get("reach")
    if full_refresh or not entry or entry[0] != _epoch(start):
        return MessageReach(start)
    _, quiet_until, count, read_at, from_start_at = entry
    if recheck_days <= 0 or _epoch(now) - from_start_at >= recheck_days * 86400:
        return MessageReach(start)
    one_window = count <= ONE_WINDOW_MESSAGES and _epoch(now) - read_at < interval_days * 86400
    return MessageReach(max(start, _instant(quiet_until)), one_window)


def record_reach(
    plan: MutableMapping[str, Any],
    list_id: int,
    send_dates: Iterable[datetime],
    *,
    reach: MessageReach,
    start: datetime,
    read_at: datetime,
    lookback_hours: float,
) -> None:
    """Remember what one list's messages read found (not for a refused list: it found nothing).

    Args:
        plan: the plan to update in place.
        list_id: the list.
        send_dates: the send dates (aware) of every message the read returned from ``start`` on.
        reach: what was asked.
        start: the start date as an instant.
        read_at: the clock when the read began (aware).
        lookback_hours: the horizon ``L``: the last ``L`` hours never count as quiet.
    """
    dates = list(send_dates)
    quiet_until = _epoch(read_at) - lookback_hours * 3600
    if dates:
        quiet_until = min(quiet_until, _epoch(min(dates)))
    entry = plan.setdefault("lists", {}).setdefault(str(list_id), {})
    previous = entry.get("reach")
    from_start_at = _epoch(read_at) if reach.ask_from <= start or not previous else previous[4]
    entry["reach"] = [_epoch(start), math.floor(quiet_until), len(dates), _epoch(read_at), from_start_at]


__all__ = ["ONE_WINDOW_MESSAGES", "MessageReach", "message_reach", "record_reach"]
