"""Time: one instant type (aware UTC ``datetime``) and the one conversion to the service's wall time.

Listrak reads and writes zone-less wall times in ``source_timezone``; :class:`ServiceClock` is
the one place that converts, at the request edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

# Requests carry whole seconds and the service's bounds may be exclusive (docs/listrak-api.md §12.7):
# every range is widened by this much at both ends, and the caller filters or de-duplicates.
EDGE = timedelta(seconds=1)


def utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime; a naive value is taken as UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


@dataclass(frozen=True)
class ServiceClock:
    """Converts between instants (aware UTC) and the service's wall time in ``zone``.

    Args:
        zone: the IANA name of the service's time zone (``Settings.source_timezone``).
    """

    zone: str = "UTC"

    def instant(self, value: datetime) -> datetime:
        """An instant from a value: naive values are service wall times, aware ones instants."""
        if value.tzinfo is not None:
            return value.astimezone(timezone.utc)
        return value.replace(tzinfo=ZoneInfo(self.zone), fold=0).astimezone(timezone.utc)

    def wall(self, instant: datetime) -> datetime:
        """The service's naive wall time at ``instant`` (an aware value; naive is taken as UTC)."""
        return utc(instant).astimezone(ZoneInfo(self.zone)).replace(tzinfo=None)

    def request_range(self, start: datetime, end: datetime) -> tuple[datetime, datetime]:
        """StartDate/EndDate (wall times, whole seconds) that surely include ``[start, end]``.

        Widened by :data:`EDGE` at both ends, so that exclusive bounds lose nothing.
        """
        first = self.wall(start).replace(microsecond=0) - EDGE
        last = self.wall(end)
        last = last.replace(microsecond=0) + (EDGE * 2 if last.microsecond else EDGE)
        return first, last


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
