"""Run progress: the counters' math on a fake clock, both displays, and an extractor run reporting into it."""

from __future__ import annotations

import io
import logging
import re
import sys
import threading
import time

import pytest
from helpers import wait_until
from test_extract import extract_all, filtered_settings, virtual_now

from listrak_sync.extract import ACTIVITY_STREAMS, Extractor
from listrak_sync.pipeline.display import describe, display, format_duration
from listrak_sync.progress import RunProgress
from listrak_sync.simulator import Simulator
from listrak_sync.soap.client import ListrakClient
from listrak_sync.streams import STREAMS, get_stream

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
STATS = {"requests": {"ReportRangeMessageContactOpen": 41, "GetContactListCollection": 1},
         "requests_total": 42, "retries": 3}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _progress_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "listrak-progress"]


def test_counters_rate_and_eta_on_a_fake_clock() -> None:
    clock = FakeClock()
    progress = RunProgress(lambda: STATS, clock=clock)
    first = progress.snapshot()
    assert (first.phase, first.units_done, first.units_total, first.rows, first.eta) == ("connecting", 0, 0, 0, None)
    assert first.fraction is None

    clock.now += 5
    progress.phase("extract")
    progress.add_rows("lists", 2)
    progress.add_rows("messages", 8)
    progress.add_units(100)  # units are timed from here, not from the start of the run
    clock.now += 10
    for _ in range(4):
        progress.unit_done("message_opens", 50)
    assert progress.snapshot().eta is None, "too few units for an ETA"
    progress.unit_done("message_clicks", 10)
    progress.unit_done("message_clicks", 0)

    snap = progress.snapshot()
    assert (snap.units_done, snap.units_total) == (6, 100)
    assert snap.fraction == pytest.approx(0.06)
    assert dict(snap.table_rows) == {"lists": 2, "messages": 8, "message_opens": 200, "message_clicks": 10}
    assert snap.rows == 220
    assert (snap.requests, snap.retries) == (42, 3)
    assert snap.elapsed == pytest.approx(15) and snap.phase_elapsed == pytest.approx(10)
    assert snap.rate == pytest.approx(220 / 15)
    assert snap.eta == pytest.approx(94 * 10 / 6)  # 6 units in 10 s, 94 to go

    # Normalize and load move no units: the rows/s of extraction stays what it was.
    clock.now += 20
    progress.phase("normalize")
    clock.now += 40
    late = progress.snapshot()
    assert late.rate == pytest.approx(220 / 35)
    assert late.phase == "normalize" and late.phase_elapsed == pytest.approx(40) and late.elapsed == pytest.approx(75)

    with pytest.raises(ValueError, match="unknown phase"):
        progress.phase("transform")


def test_snapshot_takes_the_client_counters_handed_to_it() -> None:
    progress = RunProgress()
    assert progress.snapshot().requests == 0
    assert progress.snapshot({"requests_total": 7, "retries": 1}).requests == 7


def test_phase_watchers_hear_each_change_once() -> None:
    progress = RunProgress()
    heard: list[str] = []
    unwatch = progress.watch(heard.append)
    for phase in ("extract", "extract", "normalize", "load"):
        progress.phase(phase)
    unwatch()
    progress.phase("done")
    assert heard == ["extract", "normalize", "load"]


def test_describe_and_durations() -> None:
    clock = FakeClock()
    progress = RunProgress(clock=clock)
    progress.phase("extract")
    progress.add_units(5678)
    clock.now += 100
    for _ in range(1234):
        progress.unit_done("message_opens", 250)
    line = describe(progress.snapshot({"requests_total": 1402, "retries": 3}))
    assert line.startswith("1,234/5,678 units (21.7%), 308,500 rows (3,085 rows/s), 1,402 requests, 3 retries, ETA 6m")
    assert [format_duration(s) for s in (0, 45, 372, 7500)] == ["0s", "45s", "6m12s", "2h05m"]


def test_off_a_terminal_a_heartbeat_line_every_interval_and_one_per_phase(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="listrak_sync.progress")
    progress = RunProgress()
    progress.phase("extract")
    progress.add_units(10)
    progress.unit_done("message_opens", 1234)

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "listrak_sync.progress"]

    def beats() -> list[str]:
        return [line for line in lines() if line.startswith("progress: extract 1/10 units (10.0%), 1,234 rows")]

    started = time.monotonic()
    with display(progress, lambda: STATS, interactive=False, heartbeat_seconds=0.05):
        wait_until(lambda: len(beats()) >= 3)
        progress.phase("load")
        extract_seconds = time.monotonic() - started  # every extract line came within these
        wait_until(lambda: any(line.startswith("progress: load 1/10 units") and "load running for" in line
                               for line in lines()))
    assert not _progress_threads()
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "listrak_sync.progress")
    assert len(beats()) <= extract_seconds / 0.05 + 1, lines()  # never more than one per interval
    assert "42 requests, 3 retries" in beats()[0]
    assert sum(line.startswith("progress: phase load started; 1/10 units") for line in lines()) == 1


def test_the_heartbeat_shows_while_the_root_logger_is_at_warning(caplog: pytest.LogCaptureFixture) -> None:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)  # the CLI's default without -v
    try:
        with display(RunProgress(), dict, interactive=False, heartbeat_seconds=0.05):
            time.sleep(0.2)
    finally:
        root.setLevel(level)
    assert any(r.getMessage().startswith("progress: connecting 0/0 units") for r in caplog.records)
    assert logging.getLogger("listrak_sync.progress").level == logging.NOTSET


def test_the_heartbeat_stops_when_the_body_fails(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="listrak_sync.progress")
    progress = RunProgress()
    with pytest.raises(KeyboardInterrupt), display(progress, dict, interactive=False, heartbeat_seconds=0.05):
        raise KeyboardInterrupt
    assert not _progress_threads()
    progress.phase("extract")
    assert not [r for r in caplog.records if r.name == "listrak_sync.progress"], "no watcher left behind"


def test_at_a_terminal_a_live_line_with_units_rows_and_phase() -> None:
    out = io.StringIO()
    progress = RunProgress()
    handler = logging.StreamHandler(out)
    logging.getLogger().addHandler(handler)
    try:
        with display(progress, lambda: STATS, interactive=True, stream=out):
            _run_some(progress, out)
            assert handler.stream is not out, "log lines go through the live display, above its line"
            logging.getLogger("listrak_sync.extract").warning("Skipped list 7: refused")
    finally:
        logging.getLogger().removeHandler(handler)
    assert handler.stream is out
    text = ANSI.sub("", out.getvalue())
    assert "3/12 units 25%" in text
    assert "4,500 rows" in text and "42 requests" in text and "3 retries" in text
    assert "extract" in text and "ETA ?" in text
    assert re.search(r"load .*\d+s in load", text), "the load step shows as such, with its running time"
    assert "Skipped list 7: refused\n" in text, "the log line is still printed, whole"


def _run_some(progress: RunProgress, out: io.StringIO) -> None:
    """Three units done, then the load step, each once the display (its own thread) has drawn it."""

    def drawn(pattern: str) -> bool:
        return re.search(pattern, ANSI.sub("", out.getvalue())) is not None

    progress.phase("extract")
    progress.add_units(12)
    for _ in range(3):
        progress.unit_done("message_sends", 1500)
    wait_until(lambda: drawn("3/12 units"))
    progress.phase("load")
    wait_until(lambda: drawn(r"load .*\d+s in load"))


def test_the_live_line_puts_log_lines_above_itself_and_gives_stderr_back_on_interrupt() -> None:
    stream = sys.stderr
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with pytest.raises(KeyboardInterrupt), display(RunProgress(), dict, interactive=True):
            assert sys.stderr is not stream, "stderr writes go above the live line"
            assert handler.stream is not stream
            raise KeyboardInterrupt
        assert sys.stderr is stream and handler.stream is stream
    finally:
        root.removeHandler(handler)


def test_extractor_reports_every_unit_and_every_row() -> None:
    with Simulator(scale="tiny", page_size=7) as sim, ListrakClient(filtered_settings(sim, concurrency=4)) as client:
        progress = RunProgress(client.stats.as_dict)
        extractor = Extractor(client, client.settings, now=virtual_now(sim), progress=progress)
        tables = extract_all(extractor)
    snap = progress.snapshot()
    lists, messages = tables["lists"].num_rows, tables["messages"].num_rows
    assert lists and messages
    assert snap.units_total == len(ACTIVITY_STREAMS) * messages + lists
    assert snap.units_done == snap.units_total
    assert dict(snap.table_rows) == {s.name: tables[s.name].num_rows for s in STREAMS if tables[s.name].num_rows}
    assert snap.rows == sum(t.num_rows for t in tables.values())
    assert snap.requests == client.stats.as_dict()["requests_total"] > 0


def test_activity_closed_early_leaves_its_units_undone() -> None:
    with Simulator(scale="tiny", page_size=7) as sim, ListrakClient(filtered_settings(sim, concurrency=2)) as client:
        extractor = Extractor(client, client.settings, now=virtual_now(sim))
        msg_ids = extractor.messages(sim.account.list_ids()[0]).column("MsgID").to_pylist()
        activity = extractor.message_activity([get_stream("message_sends")], msg_ids)
        _, first_page = next(activity)
        activity.close()
    snap = extractor.progress.snapshot()
    assert snap.units_total == len(msg_ids) > 1
    assert snap.units_done < snap.units_total
    # The page handed over is counted, though its message may have more pages to come.
    assert snap.table_rows["message_sends"] >= first_page.num_rows > 0


def test_units_from_a_checkpoint_are_counted_and_shown_and_do_not_speed_up_the_eta() -> None:
    clock = FakeClock()
    progress = RunProgress(clock=clock)
    progress.phase("extract")
    progress.add_units(1020)
    for _ in range(812):
        progress.unit_resumed("message_sends", 10)  # served at once, in no time
    clock.now += 10
    for _ in range(10):
        progress.unit_done("message_opens", 5)
    snap = progress.snapshot()
    assert (snap.units_done, snap.units_resumed, snap.units_total, snap.rows) == (822, 812, 1020, 8170)
    assert snap.eta == pytest.approx(198 * 10 / 10), "the ETA is timed by the units fetched, not those served"
    assert "resumed: 812 of 1,020 units from the checkpoint" in describe(snap)

    out = io.StringIO()
    with display(progress, lambda: STATS, interactive=True, stream=out):
        wait_until(lambda: "resumed: 812 of 1,020 units from the checkpoint" in ANSI.sub("", out.getvalue()))
