"""Time: one instant type, the service's wall time, and the one rule between them.

- **Instants.** Inside the package every instant is an aware UTC ``datetime``. A naive value is
  refused (:func:`utc`, :meth:`ServiceClock.wall`), never guessed at: a naive value is a wall
  time, and only :class:`ServiceClock` may read it.
- **Wall times.** Listrak reads and writes zone-less wall times in ``source_timezone``.
  :class:`ServiceClock` converts both ways, in one place: request edges (instant -> wall; the
  envelope takes only those naive wall times and refuses an aware value),
  response dates (wall -> instant, :mod:`listrak_sync.soap.parse` through
  :meth:`ServiceClock.instants`) and the start date typed without a zone (wall -> instant, in
  :class:`~listrak_sync.settings.Settings`).
- **The daylight-saving rule** (wall -> instant; the other way is unambiguous):

  - a wall time that occurs twice (the hour repeated when clocks go back) is the **earlier**
    instant: ``2024-11-03 01:30`` in New York is 05:30 UTC (EDT), not 06:30 (EST);
  - a wall time that never occurs (the hour skipped when clocks go forward) is moved
    **forward to the end of the gap**, the instant the clocks jumped: ``2024-03-10 02:30`` in
    New York is 07:00 UTC (03:00 EDT).

  The service is assumed to read our request dates by the same rule, so a request's EndDate
  is moved on until it reads back at or after the instant it stands for
  (:meth:`ServiceClock.request_range`). Arrow applies the rule (``assume_timezone`` with
  ``ambiguous="earliest"``, ``nonexistent="latest"``) to whole columns and to single values
  alike, so requests and responses cannot drift apart.
- **Now** is the service's clock, not this machine's (``ListrakClient.service_now``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

# Requests carry whole seconds and the service's bounds may be exclusive (docs/listrak-api.md §12.7):
# every range is widened by this much at both ends, and the caller filters or de-duplicates.
EDGE = timedelta(seconds=1)

_INSTANTS = pa.timestamp("us", tz="UTC")
_WALLS = pa.timestamp("us")


def utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime.

    Raises:
        TypeError: ``moment`` is naive (a wall time, whose zone only :class:`ServiceClock` knows).
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise TypeError(
            f"{moment!r} has no time zone; an instant must be aware (a naive value is a wall "
            "time: convert it with ServiceClock.instant)"
        )
    return moment.astimezone(timezone.utc)


@dataclass(frozen=True)
class ServiceClock:
    """Converts between instants (aware UTC) and the service's wall time in ``zone``.

    Args:
        zone: the IANA name of the service's time zone (``Settings.source_timezone``).
    """

    zone: str = "UTC"

    def instant(self, wall: datetime) -> datetime:
        """The instant of a service wall time, by the module's daylight-saving rule.

        Raises:
            TypeError: ``wall`` is aware (already an instant).
        """
        if wall.tzinfo is not None:
            raise TypeError(f"{wall!r} is aware; ServiceClock.instant takes the service's naive wall time")
        if self.zone == "UTC":
            return wall.replace(tzinfo=timezone.utc)
        instant: datetime = self.instants(pa.array([wall], _WALLS))[0].as_py()
        return instant.astimezone(timezone.utc)

    def instants(self, walls: pa.Array) -> pa.Array:
        """A column of wall times (``timestamp[us]``, no zone) as instants (``timestamp[us, UTC]``)."""
        if self.zone != "UTC":
            walls = pc.assume_timezone(walls, self.zone, ambiguous="earliest", nonexistent="latest")
        return walls.cast(_INSTANTS)

    def wall(self, instant: datetime) -> datetime:
        """The service's naive wall time at ``instant``.

        Raises:
            TypeError: ``instant`` is naive.
        """
        return utc(instant).astimezone(ZoneInfo(self.zone)).replace(tzinfo=None)

    def request_range(self, start: datetime, end: datetime) -> tuple[datetime, datetime]:
        """StartDate/EndDate (wall times, whole seconds) that surely include ``[start, end]``.

        Widened by :data:`EDGE` at both ends, so that exclusive bounds lose nothing. In the hour
        a fall-back repeats, EndDate is moved on until it reads back (by the module's rule) at
        or after ``end``; StartDate always reads back at or before ``start``.

        Raises:
            TypeError: ``start`` or ``end`` is naive.
        """
        first = self.wall(_whole_seconds(utc(start)) - EDGE)
        target = _whole_seconds(utc(end), up=True) + EDGE
        last = self.wall(target)
        short = target - self.instant(last)
        return first, last + short if short > timedelta(0) else last


def _whole_seconds(moment: datetime, *, up: bool = False) -> datetime:
    whole = moment.replace(microsecond=0)
    return whole + EDGE if up and whole != moment else whole


def date_windows(start: datetime, end: datetime, days: int) -> list[tuple[datetime, datetime]]:
    """Cut ``[start, end]`` into windows of at most ``days`` days that overlap by :data:`EDGE`.

    Whether the service's bounds are inclusive is unknown (docs/listrak-api.md §12.7): with exclusive
    bounds, windows that only shared an instant would lose a row exactly on it. Overlapping
    windows may return such a row twice; the caller de-duplicates by key.

    Returns:
        ``(window_start, window_end)`` pairs; none if ``start`` is after ``end``.
    """
    windows: list[tuple[datetime, datetime]] = []
    window_start = start
    while window_start <= end:
        window_end = min(window_start + timedelta(days=days), end)
        windows.append((window_start, window_end))
        if window_end >= end:
            break
        window_start = window_end - EDGE
    return windows


__all__ = ["EDGE", "ServiceClock", "date_windows", "utc"]
