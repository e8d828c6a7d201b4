"""Typed settings for a replication run, validated once with messages that say how to fix them.

Every setting has one parser (:mod:`listrak_sync.settings_values`); the CLI, the dlt source and
the tests all build a :class:`Settings` through :meth:`Settings.from_mapping`, so a bad value
reads the same wherever it came from. The password is a :class:`Secret`: it shows as
``'********'`` in every repr, string and log line, and only the SOAP envelope builder calls
:meth:`Secret.reveal`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from listrak_sync.errors import ConfigError
from listrak_sync.settings_table import (
    PRODUCTION_ENDPOINT,
    REST_ENDPOINT,
    SETTINGS_BY_FIELD,
    TOKEN_ENDPOINT,
    default_of,
)
from listrak_sync.settings_values import (
    MAX_CONCURRENCY,
    PARSERS,
    START_DATE_FORMS,
    Secret,
    as_secret,
    check_endpoint,
    check_limits,
    check_timezone,
    parse_list_ids,
    parse_start_date,
    parse_tables,
    start_instant,
)


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
        check_endpoint(self.endpoint)
        check_endpoint(self.rest_endpoint, "rest_endpoint", REST_ENDPOINT)
        check_endpoint(self.token_endpoint, "token_endpoint", TOKEN_ENDPOINT)
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
        check_timezone(self.source_timezone)
        # Resolved once, here: past validation the start date is an instant, whatever was typed.
        object.__setattr__(self, "start_date", start_instant(self.start_date, self.source_timezone))
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
            kwargs[key] = (as_secret if setting.secret else PARSERS[setting.type])(key, value)
        return cls(**kwargs)



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
