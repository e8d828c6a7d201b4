"""The dates the service writes as text: ISO-like or US-style, with or without a zone.

The WSDL types some dates as strings and their format is undocumented (docs/listrak-api.md
§12), so both forms are read; Arrow's casts read the common ISO form faster and come first in
:mod:`listrak_sync.soap.parse`, which falls back to :func:`read_datetime`.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from listrak_sync.time import ServiceClock

_ISO = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{0,9}))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?"
)
_US = re.compile(
    r"(\d{1,2})/(\d{1,2})/(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{0,9}))?)?\s*([AaPp][Mm])?)?"
)



def parse_service_datetime(text: str, zone: str = "UTC") -> datetime:
    """Read one datetime the service wrote, as a naive wall time in ``zone``.

    Accepts ISO-like ``YYYY-MM-DD[THH:MM[:SS[.fffffff]]]`` and US ``M/D/YYYY h:mm[:ss] AM/PM``
    (the string-typed dates' format is undocumented). Digits past microseconds are dropped.
    A value with its own ``Z``/offset is converted to ``zone``.

    Raises:
        ValueError: neither form, or an impossible date or time.
    """
    moment = read_datetime(text)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc if zone == "UTC" else ZoneInfo(zone)).replace(tzinfo=None)
    return moment


def parse_service_instant(text: str, zone: str = "UTC") -> datetime:
    """Read one datetime the service wrote as an instant (aware UTC): a value with its own
    ``Z``/offset is that instant, one without is a wall time in ``zone`` (the one DST rule of
    :class:`~listrak_sync.time.ServiceClock`).

    Raises:
        ValueError: as :func:`parse_service_datetime`.
    """
    moment = read_datetime(text)
    if moment.tzinfo is not None:
        return moment.astimezone(timezone.utc)
    return ServiceClock(zone).instant(moment)


def read_datetime(text: str) -> datetime:
    """A naive wall time, or an aware instant where the text carries ``Z`` or an offset.

    Raises:
        ValueError: neither form, or an impossible date or time.
    """
    iso = _ISO.fullmatch(text)
    if iso:
        year, month, day, hour, minute, second, fraction, offset = iso.groups()
        meridiem = None
    else:
        us = _US.fullmatch(text)
        if not us:
            raise ValueError(text)
        month, day, year, hour, minute, second, fraction, meridiem = us.groups()
        offset = None
    hours = int(hour or 0)
    if meridiem:
        if not 1 <= hours <= 12:
            raise ValueError(text)
        hours = hours % 12 + (12 if meridiem.lower() == "pm" else 0)
    micro = int((fraction or "").ljust(6, "0")[:6])
    moment = datetime(int(year), int(month), int(day), hours, int(minute or 0), int(second or 0), micro)
    if offset:
        moment = datetime.fromisoformat(moment.isoformat() + _offset(offset))
    return moment


def _offset(text: str) -> str:
    if text == "Z":
        return "+00:00"
    return text if ":" in text else f"{text[:3]}:{text[3:]}"


__all__ = ["parse_service_datetime", "parse_service_instant", "read_datetime"]
