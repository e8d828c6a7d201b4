"""How each setting's value is read: one parser per setting type, with messages that say how to fix a bad value.

:class:`~listrak_sync.settings.Settings` builds every field through :data:`PARSERS`; the start
date, list IDs and table names have public parsers of their own, and :class:`Secret` holds the
password and the REST client secret.
"""

from __future__ import annotations

import hmac
import math
import re
import zoneinfo
from collections.abc import Iterable
from datetime import date, datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from listrak_sync.errors import ConfigError
from listrak_sync.settings_table import PRODUCTION_ENDPOINT, Setting, SettingType
from listrak_sync.streams import REST_TABLE_NAMES, STREAM_NAMES
from listrak_sync.time import ServiceClock, utc

START_DATE_FORMS = "MM/DD/YYYY, YYYY-MM-DD or an ISO timestamp such as 2024-01-31T08:00:00Z"
_US_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
# Far above any polite load on one account; a typo like 800 should fail loudly, not hammer Listrak.
MAX_CONCURRENCY = 64
# Listrak was founded in 1999; a start date before 1990 is a typo (0001-01-01 overflowed the
# service-time arithmetic and failed with a traceback after the lists call).
EARLIEST_START = datetime(1990, 1, 1)


class Secret:
    """A password that never shows itself: ``repr``/``str`` are ``'********'``.

    Call :meth:`reveal` only where the value must go on the wire.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret value (for the SOAP header or the token request only)."""
        return self._value

    def __repr__(self) -> str:
        return "'********'"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


def parse_start_date(value: str | date | datetime, *, now: datetime | None = None) -> datetime:
    """Parse the replication start date.

    Args:
        value: ``MM/DD/YYYY`` (as hosted connectors ask for it), ``YYYY-MM-DD``, an ISO timestamp
            with or without ``Z``/offset, or a ``date``/``datetime``.
        now: the current time as naive UTC (default: the system clock); the date may not be later.

    Returns:
        The date as typed: a naive datetime (midnight for a date, the given time otherwise),
        which is the service's wall time, or, for a value with a zone, that instant as an
        aware UTC datetime. :class:`Settings` resolves a wall time to its instant with
        ``source_timezone``, so ``Settings.start_date`` is always an instant.

    Raises:
        ConfigError: malformed, impossible (02/30/2024), before 1990 or in the future.
    """
    parsed = _start_date_value(value)
    if _utc_wall(parsed) < EARLIEST_START:
        raise ConfigError(
            f"Start date {value!s} is before {EARLIEST_START:%Y-%m-%d}, long before Listrak held any data. "
            f"Pass a date from then on as {START_DATE_FORMS}."
        )
    current = now or datetime.now(timezone.utc).replace(tzinfo=None)
    if _utc_wall(parsed) > current:
        raise ConfigError(
            f"Start date {value!s} is in the future (now is {current:%Y-%m-%d %H:%M} UTC). "
            f"Pass a past date as {START_DATE_FORMS}."
        )
    return parsed


def _start_date_value(value: str | date | datetime) -> datetime:
    if isinstance(value, datetime):
        return _aware_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if not isinstance(value, str):
        raise ConfigError(f"Start date {value!r} is not a date. Pass {START_DATE_FORMS}.")
    text = value.strip()
    problem = f"Start date {value!r} is not a valid date. Pass {START_DATE_FORMS}, e.g. 01/31/2024."
    us = _US_DATE.match(text)
    try:
        if us:
            month, day, year = (int(part) for part in us.groups())
            return datetime(year, month, day)
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return datetime.strptime(text, "%Y-%m-%d")
        if re.match(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", text):
            iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
            return _aware_utc(datetime.fromisoformat(iso))
    except ValueError:
        raise ConfigError(problem) from None
    raise ConfigError(problem)


def _aware_utc(value: datetime) -> datetime:
    # A zone given with the start date names an instant; without one it is the service's wall
    # time, which Settings resolves with source_timezone (the field parser does not know it).
    if value.tzinfo is None:
        return value
    return value.astimezone(timezone.utc)


def start_instant(value: datetime, zone: str) -> datetime:
    if not isinstance(value, datetime):
        raise ConfigError(f"Settings.start_date must be a datetime, got {type(value).__name__}; "
                          "use Settings.from_mapping to parse a typed date.")
    return utc(value) if value.tzinfo is not None else ServiceClock(zone).instant(value)


def _utc_wall(value: datetime) -> datetime:
    return value if value.tzinfo is None else value.astimezone(timezone.utc).replace(tzinfo=None)


def parse_list_ids(value: str | Iterable[Any]) -> tuple[int, ...]:
    """Parse list IDs: ``"1,2"`` or an iterable of ints or digit strings.

    Returns:
        The IDs in the given order, duplicates removed.

    Raises:
        ConfigError: an ID is not a positive whole number, or none is given.
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    ids: list[int] = []
    for item in items:
        text = str(item).strip()
        if isinstance(item, bool) or not text.isdigit() or int(text) < 1:
            raise ConfigError(
                f"List ID {item!r} is not a positive whole number. Pass list IDs as numbers "
                "separated by commas, e.g. 12,34 (`listrak-sync check` lists the IDs)."
            )
        if int(text) not in ids:
            ids.append(int(text))
    if not ids:
        raise ConfigError("No list IDs given. Pass list IDs such as 12,34, or leave the setting out for all lists.")
    return tuple(ids)


def parse_tables(value: str | Iterable[Any]) -> tuple[str, ...]:
    """Parse table names: ``"lists,messages"`` or an iterable of names.

    Returns:
        The names in the given order, duplicates removed.

    Raises:
        ConfigError: an unknown table (the message lists the valid ones), or none given.
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    names: list[str] = []
    for item in items:
        name = str(item).strip()
        if name not in STREAM_NAMES + REST_TABLE_NAMES:
            raise ConfigError(f"Unknown table {name!r}. Valid tables: {', '.join(STREAM_NAMES + REST_TABLE_NAMES)}.")
        if name not in names:
            names.append(name)
    if not names:
        raise ConfigError(f"No tables given. Pick from: {', '.join(STREAM_NAMES)}, or leave the setting out.")
    return tuple(names)



def check_limits(setting: Setting, value: float) -> float:
    """``value`` if it is a finite number within ``setting.limits``.

    Raises:
        ConfigError: NaN, infinite or out of range, naming the setting and its range.
    """
    if not math.isfinite(value):
        raise ConfigError(f"{setting.name} must be a finite number, got {value}. Use {setting.range_text}.")
    low, high = setting.limits or (-math.inf, math.inf)
    if not low <= value <= high:
        raise ConfigError(f"{setting.name} must be within {setting.range_text}, got {value}.")
    return value


def _as_str(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be text, got {type(value).__name__}.")
    return value.strip() if key != "username" else value


def as_secret(key: str, value: Any) -> Secret:
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be text, got {type(value).__name__}.")
    return Secret(value)


def _as_int(key: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{key} must be a whole number, got {value!r}.")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    raise ConfigError(f"{key} must be a whole number, got {value!r}.")


def _as_float(key: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{key} must be a number of seconds, got {value!r}.")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a number of seconds, got {value!r}.") from None


def _as_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{key} must be true or false, got {value!r}.")


def _coerce_start(key: str, value: Any) -> datetime:
    return parse_start_date(value)


def _coerce_list_ids(key: str, value: Any) -> tuple[int, ...]:
    return parse_list_ids(value)


def _coerce_tables(key: str, value: Any) -> tuple[str, ...]:
    return parse_tables(value)


PARSERS = {
    SettingType.TEXT: _as_str,
    SettingType.DATE: _coerce_start,
    SettingType.INTEGER: _as_int,
    SettingType.NUMBER: _as_float,
    SettingType.BOOLEAN: _as_bool,
    SettingType.LIST_IDS: _coerce_list_ids,
    SettingType.TABLE_NAMES: _coerce_tables,
}


def check_endpoint(endpoint: str, name: str = "endpoint", production: str = PRODUCTION_ENDPOINT) -> None:
    parts = urlsplit(endpoint)
    label = "Endpoint" if name == "endpoint" else name
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{label} {endpoint!r} is not an http(s) URL. Use {production}, "
            "a proxy's URL, or the URL the simulator prints."
        )
    if parts.username or parts.password:
        pair = "LISTRAK_USERNAME/LISTRAK_PASSWORD" if name == "endpoint" else "LISTRAK_CLIENT_ID/LISTRAK_CLIENT_SECRET"
        raise ConfigError(f"The {name} URL must not hold credentials; set {pair} instead.")


def check_timezone(name: str) -> None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"source_timezone {name!r} is not a known time zone. Use an IANA name such as "
            "'UTC' or 'America/New_York'."
        ) from None


__all__ = [
    "EARLIEST_START",
    "MAX_CONCURRENCY",
    "PARSERS",
    "START_DATE_FORMS",
    "Secret",
    "as_secret",
    "check_endpoint",
    "check_limits",
    "check_timezone",
    "parse_list_ids",
    "parse_start_date",
    "parse_tables",
    "start_instant",
]
