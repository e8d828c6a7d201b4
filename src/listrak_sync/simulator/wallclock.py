"""The service's wall clock: how the simulator turns its internal times into the dates it writes.

The account keeps every time as microseconds since EPOCH on a zone-less clock read as UTC.
The service may instead show a local wall clock (``Profile.service_timezone``, e.g. US Eastern,
docs/listrak-api.md §12.7): then every dateTime it writes is that zone's local time without a
designator, a request dateTime without a zone is read as that local time, and one with a zone
or ``Z`` is converted to it first, as .NET does. String-typed event dates may also be written
in a US format (``1/31/2024 8:05:00 PM``), which carries whole seconds only; the rows then hold
the time truncated to the second, so that they equal what a client parses back.

In the UTC zone with ISO dates the clock is the identity (:attr:`WallClock.identity`) and
rows are built exactly as they always were.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from listrak_sync.simulator.generate import US, from_us, to_us

_UTC = timezone.utc
# Zone transitions are looked up in a table covering the account's data and some margin.
_TABLE_START, _TABLE_END = datetime(2020, 1, 1, tzinfo=_UTC), datetime(2032, 1, 1, tzinfo=_UTC)


def format_us_date(value: datetime) -> str:
    """``M/D/YYYY h:mm:ss AM``: .NET's en-US general date format (whole seconds)."""
    hour = value.hour % 12 or 12
    half = "AM" if value.hour < 12 else "PM"
    return f"{value.month}/{value.day}/{value.year} {hour}:{value.minute:02d}:{value.second:02d} {half}"


def _transitions(zone: ZoneInfo) -> tuple[list[int], list[int]]:
    """Instants (us since EPOCH) where the zone's UTC offset changes, and the offsets (us) between."""
    def offset(moment: datetime) -> int:
        delta = moment.astimezone(zone).utcoffset() or timedelta(0)
        return int(delta.total_seconds()) * US

    instants: list[int] = []
    offsets = [offset(_TABLE_START)]
    day = _TABLE_START
    while day < _TABLE_END:
        following = day + timedelta(days=1)
        after = offset(following)
        if after != offsets[-1]:
            low, high = 0, 86_400  # seconds into the day: the old offset at low, the new one at high
            while high - low > 1:
                middle = (low + high) // 2
                if offset(day + timedelta(seconds=middle)) == after:
                    high = middle
                else:
                    low = middle
            instants.append(to_us(day.replace(tzinfo=None)) + high * US)
            offsets.append(after)
        day = following
    return instants, offsets


class WallClock:
    """Converts the account's internal times to and from the service's wall clock.

    The service's side of the conversion; the client's is :class:`listrak_sync.time.ServiceClock`.

    Args:
        timezone_name: an IANA zone name (``UTC``, ``America/New_York``).
        event_date_format: ``iso`` or ``us`` (string-typed event dates).
    """

    def __init__(self, timezone_name: str = "UTC", event_date_format: str = "iso") -> None:
        self.zone = ZoneInfo(timezone_name)
        self.utc = timezone_name == "UTC"
        self.us_dates = event_date_format == "us"
        self.identity = self.utc and not self.us_dates
        self._instants, self._offsets = ([], [0]) if self.utc else _transitions(self.zone)

    def wall(self, us: int) -> datetime:
        """The wall time the service writes for internal time ``us``."""
        if self.utc:
            return from_us(us)
        return from_us(us + self._offsets[bisect_right(self._instants, us)])

    def string_date(self, us: int) -> datetime:
        """The wall time a string-typed event date carries (whole seconds in the US format)."""
        if self.us_dates:
            us -= us % US  # offsets are whole seconds, so this truncates the wall time too
        return self.wall(us)

    def wall_converter(self, string_date: bool = False) -> Callable[[int], datetime]:
        """:meth:`wall` or :meth:`string_date` as a plain function (``from_us`` for the identity)."""
        if string_date and self.us_dates:
            return self.string_date
        return from_us if self.utc else self.wall

    def internal_us(self, wall: datetime) -> int:
        """The internal time of a service wall time (the earlier one where the clock repeats an hour)."""
        if self.utc:
            return to_us(wall)
        try:
            return to_us(wall.replace(tzinfo=self.zone).astimezone(_UTC).replace(tzinfo=None))
        except OverflowError:  # DateTime.MinValue or MaxValue: no shift matters there
            return to_us(wall)

    def to_local(self, instant: datetime) -> datetime:
        """The wall time of ``instant`` (a naive UTC time), as .NET converts a dateTime with a zone."""
        if self.utc:
            return instant
        try:
            return instant.replace(tzinfo=_UTC).astimezone(self.zone).replace(tzinfo=None)
        except OverflowError:
            return instant

    def wall_of(self, internal: datetime) -> datetime:
        """The wall time of an internal (naive UTC) datetime."""
        return self.wall(to_us(internal)) if not self.utc else internal

