"""Typed settings for a replication run, validated once with messages that say how to fix them.

Every setting has one parser here; the CLI, the dlt source and the tests all build a
:class:`Settings` through :meth:`Settings.from_mapping`, so a bad value reads the same wherever
it came from. The password is a :class:`Secret`: it shows as ``'********'`` in every repr,
string and log line, and only the SOAP envelope builder calls :meth:`Secret.reveal`.
"""

from __future__ import annotations

import dataclasses
import hmac
import math
import re
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from listrak_sync.errors import ConfigError
from listrak_sync.settings_table import (
    PRODUCTION_ENDPOINT,
    REST_ENDPOINT,
    SETTINGS_BY_FIELD,
    TOKEN_ENDPOINT,
    Setting,
    SettingType,
    default_of,
)
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


def _start_instant(value: datetime, zone: str) -> datetime:
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


@dataclass(frozen=True)
class Settings:
    """Everything a run needs; build it with :meth:`from_mapping` to get clear errors.

    The fields are the library keys of :data:`listrak_sync.settings_table.SETTINGS`, which
    holds their defaults, meanings and the reasons for each default.
    """

    username: str = default_of("username")
    password: Secret = Secret("")
    # An aware UTC instant once built: a date typed without a zone is the service's wall time in
    # source_timezone, one with Z or an offset is that instant.
    start_date: datetime = dataclasses.field(kw_only=True)
    client_id: str = default_of("client_id")
    client_secret: Secret = Secret("")
    endpoint: str = default_of("endpoint")
    rest_endpoint: str = default_of("rest_endpoint")
    token_endpoint: str = default_of("token_endpoint")
    concurrency: int = default_of("concurrency")
    connect_timeout: float = default_of("connect_timeout")
    read_timeout: float = default_of("read_timeout")
    request_deadline: float = default_of("request_deadline")
    max_response_bytes: int = default_of("max_response_bytes")
    max_retries: int = default_of("max_retries")
    retry_budget_seconds: float = default_of("retry_budget_seconds")
    backoff_base: float = default_of("backoff_base")
    backoff_max: float = default_of("backoff_max")
    interval_days: int = default_of("interval_days")
    include_test_messages: bool = default_of("include_test_messages")
    list_ids: tuple[int, ...] | None = default_of("list_ids")
    tables: tuple[str, ...] | None = default_of("tables")
    source_timezone: str = default_of("source_timezone")
    trust_short_pages: bool = default_of("trust_short_pages")
    trust_counters: bool = default_of("trust_counters")
    send_settle_hours: float = default_of("send_settle_hours")
    full_recheck_days: float = default_of("full_recheck_days")
    lookback_hours: float = default_of("lookback_hours")
    counter_reading: str = default_of("counter_reading")

    @property
    def has_soap(self) -> bool:
        """Whether the SOAP credentials (username and password) are set: the nine SOAP tables."""
        return bool(self.username.strip()) and bool(self.password)

    @property
    def has_rest(self) -> bool:
        """Whether the REST credentials (client ID and secret) are set: the REST tables."""
        return bool(self.client_id.strip()) and bool(self.client_secret)

    def __post_init__(self) -> None:
        for name in ("password", "client_secret"):
            if not isinstance(getattr(self, name), Secret):
                raise ConfigError(f"Settings.{name} must be a Secret; use Settings.from_mapping to build settings.")
        soap = bool(self.username.strip()) or bool(self.password)
        rest = bool(self.client_id.strip()) or bool(self.client_secret)
        if not soap and not rest:
            raise ConfigError(
                "No Listrak credentials. Set LISTRAK_USERNAME and LISTRAK_PASSWORD (the SOAP API), or "
                "LISTRAK_CLIENT_ID and LISTRAK_CLIENT_SECRET (the REST API), or both."
            )
        if soap or not rest:
            if not self.username or not self.username.strip():
                raise ConfigError("The Listrak username is empty. Set LISTRAK_USERNAME (or pass --username).")
            if not self.password.reveal():
                raise ConfigError("The Listrak password is empty. Set LISTRAK_PASSWORD.")
        if rest:
            if not self.client_id.strip():
                raise ConfigError("The Listrak client ID is empty. Set LISTRAK_CLIENT_ID (or pass --client-id).")
            if not self.client_secret.reveal():
                raise ConfigError("The Listrak client secret is empty. Set LISTRAK_CLIENT_SECRET.")
        _check_endpoint(self.endpoint)
        _check_endpoint(self.rest_endpoint, "rest_endpoint", REST_ENDPOINT)
        _check_endpoint(self.token_endpoint, "token_endpoint", TOKEN_ENDPOINT)
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise ConfigError(
                f"concurrency must be between 1 and {MAX_CONCURRENCY} requests in flight, got "
                f"{self.concurrency}. The default 8 is polite to Listrak."
            )
        for name in ("connect_timeout", "read_timeout", "backoff_base", "backoff_max"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be a positive number of seconds, got {getattr(self, name)}.")
        if self.backoff_max < self.backoff_base:
            raise ConfigError(
                f"backoff_max ({self.backoff_max}s) must not be below backoff_base ({self.backoff_base}s)."
            )
        if self.max_retries < 0:
            raise ConfigError(f"max_retries must be 0 or more, got {self.max_retries}.")
        if not self.request_deadline >= self.read_timeout:
            raise ConfigError(
                f"request_deadline ({self.request_deadline}s, one whole request) must not be below "
                f"read_timeout ({self.read_timeout}s, each read); raise it or lower read_timeout."
            )
        if self.max_response_bytes < 1024:
            raise ConfigError(
                f"max_response_bytes must be at least 1024 bytes, got {self.max_response_bytes}. "
                "The default is 134217728 (128 MiB)."
            )
        if self.retry_budget_seconds < 0:
            raise ConfigError(
                f"retry_budget_seconds must be 0 or more seconds, got {self.retry_budget_seconds}."
            )
        if self.interval_days < 1:
            raise ConfigError(f"interval_days must be at least 1, got {self.interval_days}.")
        for key, setting in SETTINGS_BY_FIELD.items():
            if setting.limits is not None:
                check_limits(setting, getattr(self, key))
        _check_timezone(self.source_timezone)
        # Resolved once, here: past validation the start date is an instant, whatever was typed.
        object.__setattr__(self, "start_date", _start_instant(self.start_date, self.source_timezone))
        if self.send_settle_hours < 0 or self.full_recheck_days < 0 or self.lookback_hours < 0:
            raise ConfigError("send_settle_hours, full_recheck_days and lookback_hours must be 0 or more.")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> Settings:
        """Build settings from plain values (CLI options, environment, dlt config).

        Strings are accepted for every field (``"8"``, ``"true"``, ``"1,2"``); ``None`` means
        the field's default.

        Args:
            mapping: field name to value; ``start_date`` is required, and ``username`` and
                ``password`` (SOAP) or ``client_id`` and ``client_secret`` (REST), or both.

        Returns:
            Validated settings.

        Raises:
            ConfigError: an unknown key, a missing required value, or a bad value; the message
                names the setting and how to fix it.
        """
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(mapping) - set(fields))
        if unknown:
            raise ConfigError(f"Unknown setting(s) {', '.join(unknown)}. Valid settings: {', '.join(fields)}.")
        values = {key: value for key, value in mapping.items() if value is not None}
        soap_only = not {"client_id", "client_secret"} & set(values) and {"username", "password"} & set(values)
        for key, setting in SETTINGS_BY_FIELD.items():
            if (setting.required or (soap_only and key in ("username", "password"))) and key not in values:
                raise ConfigError(f"Missing setting {key!r}. Set {setting.env}.")
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            setting = SETTINGS_BY_FIELD[key]
            kwargs[key] = (_as_secret if setting.secret else _PARSERS[setting.type])(key, value)
        return cls(**kwargs)


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


def _as_secret(key: str, value: Any) -> Secret:
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


_PARSERS = {
    SettingType.TEXT: _as_str,
    SettingType.DATE: _coerce_start,
    SettingType.INTEGER: _as_int,
    SettingType.NUMBER: _as_float,
    SettingType.BOOLEAN: _as_bool,
    SettingType.LIST_IDS: _coerce_list_ids,
    SettingType.TABLE_NAMES: _coerce_tables,
}


def _check_endpoint(endpoint: str, name: str = "endpoint", production: str = PRODUCTION_ENDPOINT) -> None:
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


def _check_timezone(name: str) -> None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"source_timezone {name!r} is not a known time zone. Use an IANA name such as "
            "'UTC' or 'America/New_York'."
        ) from None


__all__ = [
    "PRODUCTION_ENDPOINT",
    "START_DATE_FORMS",
    "Secret",
    "Settings",
    "check_limits",
    "parse_list_ids",
    "parse_tables",
    "parse_start_date",
]
