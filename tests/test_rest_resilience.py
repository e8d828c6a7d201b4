"""A `listrak-sync run` with both credential pairs against the pessimistic REST profile survives,
in one run, tokens that expire mid-run, a 429 storm (30% of REST requests for a minute) and a
120 s outage of the whole service, with the default retry settings, and ends equal to the ground
truth (issue 19). It takes about three and a half minutes: the faults alone last three.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from destination import assert_matches_truth, read_duckdb
from helpers import RUN, start_cli
from test_rest_run import CLIENT_ID, CLIENT_SECRET, assert_rest_equals_truth, rest_env

from listrak_sync.simulator import Simulator
from listrak_sync.simulator.data import EPOCH
from listrak_sync.streams import STREAM_NAMES

TOKEN_LIFETIME = 20  # seconds: about ten tokens in one run, each dying early (pessimistic profile)
STORM_SECONDS, STORM_RATE = 60, 0.3
OUTAGE_SECONDS = 120
# A small account's ~1,200 REST requests take ~40 s at 8 in flight with this delay each: the storm
# starts once the run is under way, and work is left when the outage ends.
REST_LATENCY_MS = 150
STORM_AFTER_REQUESTS = 40


def wait_for(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


class Storms(threading.Thread):
    """Starts the 429 storm once the run's REST requests are under way, then the outage."""

    def __init__(self, sim: Simulator) -> None:
        super().__init__(daemon=True)
        self.sim = sim
        self.marks: dict[str, tuple[float, dict[str, Any]]] = {}
        self.error: BaseException | None = None

    def mark(self, name: str) -> None:
        self.marks[name] = (time.monotonic(), self.sim.stats())

    def run(self) -> None:
        try:
            wait_for(lambda: self.sim.stats()["rest_requests_total"] >= STORM_AFTER_REQUESTS, 60)
            self.sim.configure_faults(rest_429_rate=STORM_RATE)
            self.mark("storm")
            time.sleep(STORM_SECONDS)
            self.sim.configure_faults(rest_429_rate=0.0, outage_seconds=OUTAGE_SECONDS)
            self.mark("outage")
            time.sleep(OUTAGE_SECONDS)
            self.mark("after")
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def statuses(stats: dict[str, Any]) -> dict[str, int]:
    return {code: int(n) for code, n in stats["rest_statuses"].items()}


def test_a_run_survives_expiring_tokens_a_429_storm_and_an_outage(tmp_path: Path) -> None:
    with Simulator(scale="small", profile="pessimistic", client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as sim:
        sim.configure_faults(token_lifetime=TOKEN_LIFETIME, rest_latency_ms=REST_LATENCY_MS)
        db = str(tmp_path / "out.duckdb")
        storms = Storms(sim)
        started = time.monotonic()
        run = start_cli(*RUN, "--duckdb", db, env=rest_env(tmp_path, sim))
        storms.start()
        stdout, stderr = run.communicate(timeout=330)
        seconds = time.monotonic() - started
        storms.join(timeout=5)
        assert storms.error is None, storms.error
        assert run.returncode == 0, stderr[-3000:]
        end = sim.stats()
        marks = {name: (round(at - started), stats["rest_requests_total"])
                 for name, (at, stats) in storms.marks.items()}
        print(f"run: {seconds:.0f} s; (seconds, REST requests) at {marks}; REST statuses {statuses(end)}; "
              f"tokens {end['tokens_issued']}; summary:\n{stdout}")

        # The faults came while the run was in flight, and it still had work after each.
        during_storm = {k: statuses(storms.marks["outage"][1]).get(k, 0) - statuses(storms.marks["storm"][1]).get(k, 0)
                        for k in ("200", "429")}
        assert during_storm["429"] > 0 and during_storm["200"] > 0, during_storm
        outage = statuses(storms.marks["after"][1]).get("503", 0) - statuses(storms.marks["outage"][1]).get("503", 0)
        assert outage > 0
        assert end["rest_requests_total"] > storms.marks["after"][1]["rest_requests_total"]  # work left after it
        assert seconds > STORM_SECONDS + OUTAGE_SECONDS
        assert end["tokens_issued"] >= 3

        assert_rest_equals_truth(db, sim)
        for table in STREAM_NAMES:
            assert_matches_truth(table, read_duckdb(db, "listrak", table), sim.account.ground_truth(table, EPOCH))
        assert CLIENT_SECRET not in stdout + stderr
