"""One time module: instants are aware, wall times meet instants by one daylight-saving rule in
both directions, and "now" is the service's clock (issue 17, item 3).

The clock tests run the real simulator over HTTP with its virtual clock moved away from this
machine's, and check that the extractor, the tap and a dlt run follow the service's clock.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import requests
from destination import assert_matches_truth, read_duckdb
from tap_helpers import (
    assert_records_cover,
    config_for,
    parse_messages,
    parse_rfc3339,
    records_of,
    run_tap,
    states_of,
    write_json,
)
from test_extract import filtered_settings
from test_hostile_http import HostileServer
from test_parse import opens, read, response

from listrak_sync.extract import Extractor
from listrak_sync.pipeline.runner import replicate
from listrak_sync.settings import Settings
from listrak_sync.simulator import Simulator
from listrak_sync.simulator.data import EPOCH
from listrak_sync.soap.client import ListrakClient
from listrak_sync.streams import STREAM_NAMES, get_stream
from listrak_sync.time import EDGE, ServiceClock, utc

UTC = timezone.utc
ZONES = ("America/New_York", "Europe/Berlin", "Australia/Sydney")
# Days on which each zone's clocks change in 2024 (spring forward, fall back).
CHANGES = {"America/New_York": ("2024-03-10", "2024-11-03"), "Europe/Berlin": ("2024-03-31", "2024-10-27"),
           "Australia/Sydney": ("2024-10-06", "2024-04-07")}


def minutes_of(day: str) -> list[datetime]:
    start = datetime.fromisoformat(day)
    return [start + timedelta(minutes=m) for m in range(0, 24 * 60, 5)]


# -- instants are aware -----------------------------------------------------------------------------


def test_a_naive_instant_is_refused_naming_the_value() -> None:
    naive = datetime(2024, 5, 6, 7, 8, 9)
    for call in (utc, ServiceClock("America/New_York").wall):
        with pytest.raises(TypeError, match=r"datetime\(2024, 5, 6, 7, 8, 9\).*no time zone"):
            call(naive)
    with pytest.raises(TypeError, match="naive"):
        ServiceClock("UTC").request_range(naive, naive.replace(tzinfo=UTC))
    with pytest.raises(TypeError, match=r"2024, 5, 6, 7, 8, 9, tzinfo.*aware"):
        ServiceClock("UTC").instant(naive.replace(tzinfo=UTC))  # already an instant
    assert utc(datetime(2024, 5, 6, 9, tzinfo=timezone(timedelta(hours=2)))) == datetime(2024, 5, 6, 7, tzinfo=UTC)


# -- one daylight-saving rule, both directions ------------------------------------------------------


def test_the_rule_at_the_changes() -> None:
    clock = ServiceClock("America/New_York")
    assert clock.instant(datetime(2024, 3, 10, 2, 30)) == datetime(2024, 3, 10, 7, tzinfo=UTC)  # gap: its end
    assert clock.instant(datetime(2024, 3, 10, 1, 59, 59)) == datetime(2024, 3, 10, 6, 59, 59, tzinfo=UTC)
    assert clock.instant(datetime(2024, 11, 3, 1, 30)) == datetime(2024, 11, 3, 5, 30, tzinfo=UTC)  # twice: 1st
    assert clock.wall(datetime(2024, 11, 3, 6, 30, tzinfo=UTC)) == datetime(2024, 11, 3, 1, 30)  # the 2nd 1:30
    # A response value with its own offset is that instant, not its wall time read again.
    table = read(get_stream("message_opens"), opens("2024-11-03T01:30:00-05:00", "2024-11-03T01:30:00"), clock.zone)
    assert table.column("OpenDate").to_pylist() == [datetime(2024, 11, 3, 6, 30, tzinfo=UTC),
                                                    datetime(2024, 11, 3, 5, 30, tzinfo=UTC)]


@pytest.mark.parametrize("zone", ZONES)
def test_responses_and_the_start_date_read_wall_times_alike(zone: str) -> None:
    """Every wall time of both change days, read as a response value (the Arrow cast and the
    US-format Python path) and as a single value (the start date), gives the same instant."""
    clock = ServiceClock(zone)
    walls = [w for day in CHANGES[zone] for w in minutes_of(day)]
    single = [clock.instant(w) for w in walls]
    assert clock.instants(pa.array(walls, pa.timestamp("us"))).to_pylist() == single
    iso = read(get_stream("message_opens"), opens(*(w.isoformat() for w in walls)), zone)
    us = read(get_stream("message_opens"), opens(*(f"{w:%m/%d/%Y %I:%M:%S %p}" for w in walls)), zone)
    assert iso.column("OpenDate").to_pylist() == us.column("OpenDate").to_pylist() == single
    assert all(clock.instant(clock.wall(moment)) <= moment for moment in single)  # a StartDate never starts late


@pytest.mark.parametrize("zone", ZONES)
def test_request_ranges_read_back_cover_the_instants_they_stand_for(zone: str) -> None:
    """Requests go the other way (instant -> wall); the service reads them back by the same rule,
    so StartDate must read back no later than the start and EndDate no earlier than the end."""
    clock = ServiceClock(zone)
    for day in CHANGES[zone]:
        midnight = clock.instant(datetime.fromisoformat(day))
        for minutes in range(0, 24 * 60, 5):
            moment = midnight + timedelta(minutes=minutes, microseconds=250)
            first, last = clock.request_range(moment, moment)
            assert first.tzinfo is None and last.tzinfo is None and first.microsecond == last.microsecond == 0
            assert clock.instant(first) < moment < clock.instant(last), (zone, moment, first, last)
    end = datetime(2024, 11, 3, 6, 30, tzinfo=UTC)  # the second 1:30 in New York
    assert ServiceClock("America/New_York").request_range(end, end)[1] == datetime(2024, 11, 3, 2, 30, 1)


# -- now is the service's clock ---------------------------------------------------------------------


def machine_now() -> datetime:
    return datetime.now(UTC)


def virtual(sim: Simulator) -> datetime:
    return sim.now.replace(tzinfo=UTC)


def test_the_simulator_dates_its_answers_by_its_virtual_clock() -> None:
    with Simulator(scale="tiny") as sim:
        sim.advance(-123.4)
        answer = requests.get(sim.wsdl_url, timeout=30)
    assert parsedate_to_datetime(answer.headers["Date"]) == virtual(sim).replace(microsecond=0)


@pytest.mark.parametrize("days", [-45, 45])
def test_the_extractor_s_now_is_the_service_s_clock_not_this_machine_s(
    days: int, caplog: pytest.LogCaptureFixture
) -> None:
    with Simulator(scale="tiny") as sim, ListrakClient(filtered_settings(sim)) as client:
        sim.set_now((machine_now() + timedelta(days=days)).replace(tzinfo=None))
        extractor = Extractor(client, client.settings)
        with caplog.at_level(logging.DEBUG, logger="listrak_sync.soap.client"):
            before = machine_now()
            guessed = [extractor.now(), extractor.now()]  # no answer yet: this machine's clock stands in
            assert before <= guessed[0] <= guessed[1] <= machine_now()
        assert sum("No Date header" in r.getMessage() for r in caplog.records) == 1  # said once
        asked = time.monotonic()
        extractor.lists()
        now = extractor.now()
        elapsed = timedelta(seconds=time.monotonic() - asked)
        service = virtual(sim)
    assert service.replace(microsecond=0) <= now <= service + elapsed
    assert abs(now - machine_now() - timedelta(days=days)) < timedelta(days=1)


@pytest.mark.parametrize("date", [None, "yesterday", "Tue, 02 Mar 2021 01:02:03 GMT"])
def test_without_a_readable_date_header_this_machine_s_clock_stands_in_said_once(
    date: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    lists = get_stream("lists")
    body = response(lists, "")

    def answer(handler: BaseHTTPRequestHandler, stopping: object) -> None:
        handler.send_response_only(200)  # http.server's send_response would add its own Date
        for name, value in {"Content-Type": "text/xml", "Content-Length": str(len(body)), "Date": date}.items():
            if value is not None:
                handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    server = HostileServer(answer)
    settings = Settings.from_mapping({"username": "u", "password": "p", "start_date": EPOCH, "endpoint": server.url})
    try:
        with ListrakClient(settings) as client, caplog.at_level(logging.DEBUG, logger="listrak_sync.soap.client"):
            client.fetch(lists)
            before = machine_now()
            times = [client.service_now(), client.service_now()]
            after = machine_now()
    finally:
        server.close()
    stood_in = sum("No Date header" in r.getMessage() for r in caplog.records)
    if date and date[0].isupper():  # a real HTTP date: the service's clock from then on
        assert datetime(2021, 3, 2, 1, 2, 3, tzinfo=UTC) <= times[0] <= times[1] < before and stood_in == 0
    else:
        assert before <= times[0] <= times[1] <= after and stood_in == 1


def tap_sync(tmp_path: Path, sim: Simulator, name: str, *args: str) -> list[dict[str, Any]]:
    """One tap run with no clock given: its ``now`` is whatever the service says."""
    result = run_tap("--config", write_json(tmp_path / "config.json", config_for(sim, start_date="2024-01-01")),
                     *args)
    assert result.returncode == 0, result.stderr
    messages = parse_messages(result.stdout)
    write_json(tmp_path / f"{name}.json", states_of(messages)[-1])
    return messages


def test_an_incremental_tap_run_after_the_service_clock_moved_a_day_emits_the_new_opens(tmp_path: Path) -> None:
    opens_ = "message_opens"
    with Simulator(scale="tiny", page_size=7) as sim:
        sim.set_now(datetime(2026, 5, 27, 8))  # just after a send: the next day brings its opens
        asked = time.monotonic()
        first = tap_sync(tmp_path, sim, "first")
        elapsed = timedelta(seconds=time.monotonic() - asked)
        bookmark = parse_rfc3339(states_of(first)[-1]["bookmarks"][opens_]["OpenDate"]).replace(tzinfo=UTC)
        assert virtual(sim).replace(microsecond=0) <= bookmark <= virtual(sim) + elapsed, "the service's time"
        before = sim.now
        sim.advance(1)
        truth = sim.account.ground_truth(opens_, EPOCH)
        new = [row for row in truth if row["OpenDate"] > before]
        second = records_of(tap_sync(tmp_path, sim, "second", "--state", str(tmp_path / "first.json")))
    assert len(new) > 10, "the day must bring new opens, or this test proves nothing"
    assert_records_cover(opens_, second.get(opens_, []), new, truth)  # every new open, nothing made up
    assert_records_cover(opens_, records_of(first)[opens_] + second[opens_], truth)


def test_a_run_without_a_clock_asks_up_to_the_service_s_time(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Every request of two runs (full, then incremental a day later) ends at the service's time,
    never this machine's, and the tables hold the ground truth of the service's time."""
    db, work = str(tmp_path / "run.duckdb"), str(tmp_path / "work")
    with Simulator(scale="tiny", page_size=7) as sim:
        sim.set_now(datetime(2026, 5, 27, 8))
        settings = filtered_settings(sim, start_date=EPOCH)
        for advance in (0, 1):
            sim.advance(advance)
            caplog.clear()
            with caplog.at_level(logging.DEBUG, logger="listrak_sync.soap.client"):
                asked = time.monotonic()
                summary = replicate(settings, duckdb_path=db, pipelines_dir=work)
                elapsed = timedelta(seconds=time.monotonic() - asked)
            service = virtual(sim)
            # Activity requests end at the run's now; message windows before it (interval_days).
            dated = [r.getMessage() for r in caplog.records if "EndDate=" in r.getMessage()]
            activity = [_end_date(line) for line in dated if "MsgID=" in line]
            windows = [_end_date(line) for line in dated if "ListID=" in line]
            assert activity and windows
            assert all(service.replace(microsecond=0) < end <= service + elapsed + 2 * EDGE for end in activity)
            assert max(windows) == max(activity) and all(end <= max(activity) for end in windows)
        assert summary.mode == "incremental", summary.mode
        for table in STREAM_NAMES:
            assert_matches_truth(table, read_duckdb(db, "listrak", table), sim.account.ground_truth(table, EPOCH))


def _end_date(logged_request: str) -> datetime:
    found = re.search(r"EndDate=(\S+ [\d:]+)", logged_request)
    assert found, logged_request
    return datetime.fromisoformat(found[1]).replace(tzinfo=UTC)
