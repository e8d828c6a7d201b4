"""Settings: every parser accepts the documented forms and refuses the rest with a useful message."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from helpers import cli, cli_env

from listrak_sync.errors import ConfigError
from listrak_sync.settings import (
    PRODUCTION_ENDPOINT,
    Secret,
    Settings,
    parse_list_ids,
    parse_start_date,
    parse_tables,
)
from listrak_sync.simulator import Simulator
from listrak_sync.streams import STREAM_NAMES

PASSWORD = "p@ss<&>word-only-here"
BASE = {"username": "api-user", "password": PASSWORD, "start_date": "01/31/2024"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("01/31/2024", datetime(2024, 1, 31)),
        ("1/5/2024", datetime(2024, 1, 5)),
        (" 2024-01-31 ", datetime(2024, 1, 31)),
        ("2024-01-31T08:30:00", datetime(2024, 1, 31, 8, 30)),
        ("2024-01-31T08:30:00Z", datetime(2024, 1, 31, 8, 30, tzinfo=timezone.utc)),
        ("2024-01-31T08:30:00.250+02:00", datetime(2024, 1, 31, 6, 30, 0, 250000, tzinfo=timezone.utc)),
        ("2024-02-29", datetime(2024, 2, 29)),
        (date(2024, 1, 31), datetime(2024, 1, 31)),
        (datetime(2024, 1, 31, 12, tzinfo=timezone(timedelta(hours=-5))),
         datetime(2024, 1, 31, 17, tzinfo=timezone.utc)),
    ],
)
def test_start_date_forms(value: object, expected: datetime) -> None:
    assert parse_start_date(value) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["02/30/2024", "2023-02-29", "13/01/2024", "31/01/2024", "2024/01/31",
                                   "yesterday", "", "2024-01-31T25:00:00", "01-31-2024"])
def test_bad_start_dates_name_the_value_and_the_forms(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_start_date(value)
    message = str(info.value)
    assert repr(value) in message and "MM/DD/YYYY" in message and "YYYY-MM-DD" in message
    assert "\n" not in message


def test_future_start_date_is_refused() -> None:
    with pytest.raises(ConfigError, match="in the future"):
        parse_start_date("2030-01-01", now=datetime(2029, 12, 31))
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=2)).strftime("%m/%d/%Y")
    with pytest.raises(ConfigError, match="in the future"):
        parse_start_date(tomorrow)
    assert parse_start_date("2029-12-31", now=datetime(2029, 12, 31)) == datetime(2029, 12, 31)


@pytest.mark.parametrize(
    ("typed", "zone", "instant"),
    [
        ("01/31/2024", "UTC", datetime(2024, 1, 31, tzinfo=timezone.utc)),
        ("01/31/2024", "America/New_York", datetime(2024, 1, 31, 5, tzinfo=timezone.utc)),
        ("2024-07-01T08:00:00", "America/New_York", datetime(2024, 7, 1, 12, tzinfo=timezone.utc)),
        ("2024-03-10T02:30:00", "America/New_York", datetime(2024, 3, 10, 7, tzinfo=timezone.utc)),  # gap: its end
        ("2024-11-03T01:30:00", "America/New_York", datetime(2024, 11, 3, 5, 30, tzinfo=timezone.utc)),  # twice: 1st
        ("2024-01-31T08:00:00Z", "America/New_York", datetime(2024, 1, 31, 8, tzinfo=timezone.utc)),
        ("2024-01-31T08:00:00+02:00", "UTC", datetime(2024, 1, 31, 6, tzinfo=timezone.utc)),
        (datetime(2024, 1, 31, 8), "Europe/Berlin", datetime(2024, 1, 31, 7, tzinfo=timezone.utc)),
    ],
)
def test_the_start_date_is_an_instant_once_validated(typed: object, zone: str, instant: datetime) -> None:
    """Typed without a zone: the service's wall time in source_timezone; with one: that instant."""
    settings = Settings.from_mapping({**BASE, "start_date": typed, "source_timezone": zone})
    assert settings.start_date == instant and settings.start_date.tzinfo is timezone.utc
    assert dataclasses.replace(settings, concurrency=2).start_date == instant  # resolved once, not again


def test_list_ids() -> None:
    assert parse_list_ids("12, 34,12") == (12, 34)
    assert parse_list_ids([5, "6"]) == (5, 6)
    for bad in ("12,abc", "0", "-3", "1.5", ""):
        with pytest.raises(ConfigError, match="List ID|No list IDs"):
            parse_list_ids(bad)
    with pytest.raises(ConfigError):
        parse_list_ids([True])


def test_tables() -> None:
    assert parse_tables("lists, messages,lists") == ("lists", "messages")
    assert parse_tables(["message_clicks"]) == ("message_clicks",)
    with pytest.raises(ConfigError) as info:
        parse_tables("lists,clicks")
    assert "'clicks'" in str(info.value)
    assert all(name in str(info.value) for name in STREAM_NAMES)


def test_from_mapping_defaults_and_coercion() -> None:
    settings = Settings.from_mapping(
        {**BASE, "concurrency": "4", "include_test_messages": "false", "list_ids": "7,8", "tables": None,
         "read_timeout": "2.5", "trust_short_pages": "0", "source_timezone": "America/New_York"}
    )
    assert settings.endpoint == PRODUCTION_ENDPOINT
    assert settings.start_date == datetime(2024, 1, 31, 5, tzinfo=timezone.utc)  # midnight in New York
    assert settings.concurrency == 4 and settings.read_timeout == 2.5
    assert settings.include_test_messages is False and settings.trust_short_pages is False
    assert settings.list_ids == (7, 8) and settings.tables is None
    assert settings.password.reveal() == PASSWORD
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.concurrency = 9  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"username": "  "}, "username is empty"),
        ({"password": ""}, "password is empty"),
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 500}, "concurrency"),
        ({"concurrency": "eight"}, "whole number"),
        ({"endpoint": "webservices.listrak.com/v31"}, "not an http(s) URL"),
        ({"endpoint": "ftp://example.com/x"}, "not an http(s) URL"),
        ({"endpoint": "https://user:pw@example.com/x"}, "must not hold credentials"),
        ({"read_timeout": 0}, "read_timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"backoff_base": 5, "backoff_max": 1}, "backoff_max"),
        ({"interval_days": 0}, "interval_days"),
        ({"source_timezone": "Mars/Olympus"}, "time zone"),
        ({"include_test_messages": "maybe"}, "true or false"),
        ({"tables": "lists,nope"}, "'nope'"),
        ({"start_date": "02/30/2024"}, "not a valid date"),
        ({"colour": "blue"}, "Unknown setting"),
    ],
)
def test_from_mapping_rejects_with_clear_messages(change: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_mapping({**BASE, **change})
    assert words in str(info.value)
    assert PASSWORD not in str(info.value)


@pytest.mark.parametrize("missing", ["username", "password", "start_date"])
def test_from_mapping_requires_credentials_and_start(missing: str) -> None:
    values = {key: value for key, value in BASE.items() if key != missing}
    with pytest.raises(ConfigError, match=missing):
        Settings.from_mapping(values)
    with pytest.raises(ConfigError, match=missing):
        Settings.from_mapping({**values, missing: None})


def test_password_never_shows() -> None:
    settings = Settings.from_mapping(BASE)
    for text in (repr(settings), str(settings), repr(settings.password), str(settings.password),
                 f"{settings.password}", repr(dataclasses.asdict(settings))):
        assert PASSWORD not in text
    assert repr(settings.password) == "'********'" and str(settings.password) == "'********'"
    assert Secret("a") == Secret("a") and Secret("a") != Secret("b") and hash(Secret("a")) == hash(Secret("a"))


def test_direct_construction_is_validated() -> None:
    with pytest.raises(ConfigError, match="Secret"):
        Settings("user", PASSWORD, start_date=datetime(2024, 1, 1))  # type: ignore[arg-type]
    settings = Settings("user", Secret(PASSWORD), start_date=datetime(2024, 1, 1))
    assert settings.concurrency == 8
    assert Settings.from_mapping({**BASE, "password": Secret(PASSWORD)}).password == Secret(PASSWORD)


@pytest.mark.parametrize(("flag", "value", "needle"), [
    ("--start-date", "0001-01-01", "before 1990-01-01"),
    ("--connect-timeout", "inf", "connect_timeout must be a finite number"),
    ("--retry-budget-seconds", "nan", "retry_budget_seconds must be a finite number"),
    ("--max-retries", str(2**63), "max_retries must be within 0-1,000"),
    ("--connect-timeout", "5000", "connect_timeout must be within 0-3,600 s"),
])
def test_a_number_or_date_out_of_range_is_exit_2_before_any_request(
        flag: str, value: str, needle: str, tmp_path: Path) -> None:
    with Simulator(scale="tiny") as sim:
        args = ["run", "--start-date", "01/01/2024", flag, value] if flag != "--start-date" else ["run", flag, value]
        result = cli(*args, env=cli_env(sim.url), cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert needle in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert sum(sim.stats()["requests"].values()) == 0
        assert not list(tmp_path.iterdir())  # no file, nothing written
