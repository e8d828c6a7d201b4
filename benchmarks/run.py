"""Benchmarks: full replication of a simulated account, measured from outside, against minimums.

The simulator runs in its own process (so its CPU is not charged to the client), with simulated
network latency; each replication runs as its own ``listrak-sync run`` process, so its wall
time, CPU time (user + sys, from ``wait4``) and peak memory (max RSS) are its own.

Each figure is printed next to the minimum it is judged against (issue #11):

- ``R_min``, the fewest requests any client could make, computed here from the simulator's
  account (:meth:`Account.ground_truth`/:meth:`Account.events`), never from the client's own
  counters: 1 list call, 1 message call per list, and per paged object (each (activity stream,
  message) and each list's subscribed contacts) ``max(1, ceil(rows / page size))``.
- ``T_min = R_min x latency / concurrency``, the wall time of R_min requests kept in flight.
- requests are the simulator's count (``/_simulator/stats``), checked against the client's.
- a no-change re-run (same clock, same database) as a share of the first run's requests.

Compare rows of one run with each other (the machine is shared and noisy), not across runs.

    python benchmarks/run.py                 # small x3 (latency 0), medium at 0 and 50 ms
    python benchmarks/run.py --quick         # the three small scenarios only (about a minute)
    python benchmarks/run.py --only medium-50ms --large
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from listrak_sync.simulator import DEFAULT_PASSWORD, DEFAULT_USERNAME, Account
from listrak_sync.streams import STREAMS, RequestKind


@dataclass(frozen=True)
class Scenario:
    name: str
    scale: str
    page_size: int
    start_date: str  # MM/DD/YYYY, as the CLI takes it
    latency_ms: float
    rerun: bool = False
    concurrency: int = 8


SCENARIOS = (
    Scenario("small-p2500", "small", 2500, "01/01/2024", 0.0),
    Scenario("small-p100", "small", 100, "01/01/2024", 0.0),
    Scenario("small-from-2000", "small", 2500, "01/01/2000", 0.0, rerun=True),
    Scenario("medium-0ms", "medium", 2500, "01/01/2024", 0.0, rerun=True),
    Scenario("medium-50ms", "medium", 2500, "01/01/2024", 50.0),
)
LARGE = Scenario("large-0ms", "large", 2500, "01/01/2024", 0.0)
QUICK = ("small-p2500", "small-p100", "small-from-2000")


def minimum_requests(scale: str, page_size: int, start_date: str) -> int:
    """R_min of a full run from ``start_date`` on the friendly simulator at ``scale``."""
    account = Account(seed=1, scale=scale)
    start = datetime.strptime(start_date, "%m/%d/%Y")
    lists = account.ground_truth("lists", start)
    messages = account.ground_truth("messages", start)
    requests = 1 + len(lists)
    for stream in STREAMS:
        if stream.request in (RequestKind.MESSAGE_RANGE_PAGED, RequestKind.MESSAGE_PAGED):
            for message in messages:
                rows = len(account.events(stream.name, message["MsgID"]))
                requests += max(1, math.ceil(rows / page_size))
    per_list: dict[int, int] = {int(row["ListID"]): 0 for row in lists}
    for row in account.ground_truth("subscribed_contacts", start):
        per_list[int(row["ListID"])] += 1
    requests += sum(max(1, math.ceil(rows / page_size)) for rows in per_list.values())
    return requests


def start_simulator(scenario: Scenario) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "listrak_sync", "simulator", "--port", "0", "--scale", scenario.scale,
         "--latency-ms", str(scenario.latency_ms), "--page-size", str(scenario.page_size)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        match = re.search(r"(http://\S+/v31/IntegrationService\.asmx)", line)
        if match:
            return proc, match.group(1)
    proc.kill()
    raise RuntimeError("the simulator did not print its endpoint")


def control(endpoint: str, path: str, body: dict[str, object] | None = None) -> dict[str, Any]:
    base = endpoint.split("/v31/")[0]
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method="POST" if data is not None else "GET",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback only)
        return json.loads(response.read() or b"{}")


def replicate(endpoint: str, scenario: Scenario, db: str, work: str) -> dict[str, Any]:
    env = {**os.environ, "LISTRAK_USERNAME": DEFAULT_USERNAME, "LISTRAK_PASSWORD": DEFAULT_PASSWORD,
           "DLT_DATA_DIR": work}
    control(endpoint, "/_simulator/stats/reset", {})
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "listrak_sync", "run", "--endpoint", endpoint, "--start-date",
             scenario.start_date, "--duckdb", db, "--concurrency", str(scenario.concurrency), "--json"],
            env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL, text=True,
        )
        # wait4 gives this child's own CPU time and peak memory (getrusage would mix all children).
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(stderr)
    summary = json.loads(stdout)
    served = control(endpoint, "/_simulator/stats")
    rows = sum(summary["rows"].values())
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "seconds": seconds,
        "cpu": cpu,
        "rows": rows,
        "requests": served["requests_total"],
        "client_requests": summary["total_requests"],
        "retries": summary["retries"],
        "by_operation": served["requests"],
        "peak_mib": usage.ru_maxrss / 1024,
    }


def run_scenario(scenario: Scenario) -> dict[str, Any]:
    # In a process of its own: Linux counts the RSS of the parent at fork into the child's
    # ru_maxrss, and the account behind R_min is 330 MB on medium; this process stays small.
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        r_min = pool.submit(minimum_requests, scenario.scale, scenario.page_size, scenario.start_date).result()
    proc, endpoint = start_simulator(scenario)
    try:
        with tempfile.TemporaryDirectory() as work:
            db, state = str(Path(work) / "bench.duckdb"), str(Path(work) / "dlt")
            first = replicate(endpoint, scenario, db, state)
            rerun = replicate(endpoint, scenario, db, state) if scenario.rerun else None
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"scenario": scenario, "r_min": r_min, "first": first, "rerun": rerun}


def report(results: list[dict[str, Any]]) -> None:
    print(f"{'scenario':<16} {'rows':>10} {'requests':>9} {'R_min':>7} {'req/Rmin':>8} {'wall s':>7} "
          f"{'T_min s':>7} {'wall/Tmin':>9} {'CPU s':>6} {'rows/CPUs':>9} {'peak MiB':>8} {'re-run':>12}")
    for result in results:
        scenario, first, rerun, r_min = result["scenario"], result["first"], result["rerun"], result["r_min"]
        t_min = r_min * scenario.latency_ms / 1000 / scenario.concurrency
        wall_ratio = f"{first['seconds'] / t_min:.2f}" if t_min else "-"
        t_min_text = f"{t_min:.1f}" if t_min else "-"
        rerun_text = (f"{rerun['requests']} {100 * rerun['requests'] / first['requests']:.1f}%"
                      if rerun else "-")
        print(f"{scenario.name:<16} {first['rows']:>10,} {first['requests']:>9,} {r_min:>7,} "
              f"{first['requests'] / r_min:>8.3f} {first['seconds']:>7.1f} {t_min_text:>7} {wall_ratio:>9} "
              f"{first['cpu']:>6.1f} {first['rows'] / first['cpu']:>9,.0f} {first['peak_mib']:>8.0f} "
              f"{rerun_text:>12}")
        if first["requests"] != first["client_requests"] or first["retries"]:
            print(f"  note: the client counted {first['client_requests']} requests, {first['retries']} retried")
    print("requests per operation, first run (simulator's count):")
    operations = sorted({op for r in results for op in r["first"]["by_operation"]})
    print(f"  {'operation':<36}" + "".join(f" {r['scenario'].name:>16}" for r in results))
    for operation in operations:
        print(f"  {operation:<36}" + "".join(f" {r['first']['by_operation'].get(operation, 0):>16,}"
                                             for r in results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="only the small scenarios: " + ", ".join(QUICK))
    parser.add_argument("--only", help="comma-separated scenario names: "
                        + ", ".join(s.name for s in (*SCENARIOS, LARGE)))
    parser.add_argument("--large", action="store_true", help="add a full run on large (peak memory)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()

    chosen = [*SCENARIOS, LARGE] if args.large else list(SCENARIOS)
    if args.quick:
        chosen = [s for s in chosen if s.name in QUICK or s is LARGE]
    if args.only:
        names = set(args.only.split(","))
        chosen = [s for s in (*SCENARIOS, LARGE) if s.name in names]
    results = []
    for scenario in chosen:
        print(f"running {scenario.name} ...", file=sys.stderr, flush=True)
        results.append(run_scenario(scenario))
    report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(
            [{**r, "scenario": r["scenario"].__dict__} for r in results], indent=1, default=str))


if __name__ == "__main__":
    main()
