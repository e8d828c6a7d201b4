"""Benchmark: a run killed at 80% of its time, and the run that resumes it; and what keeping
the checkpoint costs a run that is never killed.

The simulator runs in its own process (its CPU is not the client's); each replication is a
process of its own, so its wall time and peak memory (max RSS, from ``wait4``) are its own;
requests are the simulator's count.

1. **Resume** (the issue's case: ``medium`` at 50 ms, page size 2,500). A full run is timed;
   a second run into a fresh file is SIGKILLed at 80% of that time; a third run resumes it.
   Printed: requests and wall time of the resumed run against the full run.
2. **Cost of the checkpoint** on a run that is never killed: the same full run with and
   without it (``replicate(resume=False)``), alternating, ``--repeats`` times each; median
   wall time and peak memory, and their ratios.

    python benchmarks/resume.py                       # both parts: medium at 50 ms; cost on small at 0 ms
    python benchmarks/resume.py --scale small --latency-ms 30 --cost-scale small --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from listrak_sync.simulator import DEFAULT_PASSWORD, DEFAULT_USERNAME

START_DATE = "01/01/2024"
# One replication, in a process of its own, with or without the checkpoint (argv: endpoint, file, 1|0).
REPLICATE = f"""
import json, sys
from listrak_sync.process import tune_for_bulk_work
tune_for_bulk_work()  # as the command line does
from listrak_sync.pipeline.runner import replicate
from listrak_sync.settings import Settings
settings = Settings.from_mapping({{"username": {DEFAULT_USERNAME!r}, "password": {DEFAULT_PASSWORD!r},
                                   "start_date": {START_DATE!r}, "endpoint": sys.argv[1]}})
summary = replicate(settings, duckdb_path=sys.argv[2], resume=sys.argv[3] == "1")
print(json.dumps(summary.as_dict()))
"""


def start_simulator(scale: str, page_size: int, latency_ms: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "listrak_sync", "simulator", "--port", "0", "--scale", scale,
         "--latency-ms", str(latency_ms), "--page-size", str(page_size)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        match = re.search(r"(http://\S+/v31/IntegrationService\.asmx)", proc.stdout.readline())
        if match:
            # Keep reading its output, so that the pipe never fills and stalls it.
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc, match.group(1)
    proc.kill()
    raise RuntimeError("the simulator did not print its endpoint")


def control(endpoint: str, path: str, reset: bool = False) -> dict[str, Any]:
    base = endpoint.split("/v31/")[0]
    request = urllib.request.Request(base + path, data=b"{}" if reset else None, method="POST" if reset else "GET",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback only)
        return dict(json.loads(response.read() or b"{}"))


def served(endpoint: str) -> int:
    return int(control(endpoint, "/_simulator/stats")["requests_total"])


def cli_run(endpoint: str, db: str, *, kill_after: float | None = None) -> dict[str, Any]:
    """``listrak-sync run`` into ``db``: wall time, peak memory, requests, summary (None if killed)."""
    env = {**os.environ, "LISTRAK_USERNAME": DEFAULT_USERNAME, "LISTRAK_PASSWORD": DEFAULT_PASSWORD}
    argv = [sys.executable, "-m", "listrak_sync", "run", "--endpoint", endpoint, "--start-date", START_DATE,
            "--duckdb", db, "--json"]
    return _measure(argv, env, endpoint, kill_after)


def lib_run(endpoint: str, db: str, resume: bool) -> dict[str, Any]:
    return _measure([sys.executable, "-c", REPLICATE, endpoint, db, "1" if resume else "0"], dict(os.environ),
                    endpoint, None)


def _measure(argv: list[str], env: dict[str, str], endpoint: str, kill_after: float | None) -> dict[str, Any]:
    control(endpoint, "/_simulator/stats/reset", reset=True)
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL, text=True)
        if kill_after is not None:
            timer = threading.Timer(kill_after, lambda: proc.send_signal(signal.SIGKILL))
            timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - started
        if kill_after is not None:
            timer.cancel()
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if code not in (0, -signal.SIGKILL):
        raise RuntimeError(stderr)
    return {"seconds": seconds, "rss_mib": usage.ru_maxrss / 1024, "requests": served(endpoint),
            "killed": code == -signal.SIGKILL, "summary": json.loads(stdout) if code == 0 else None}


def resume_part(scale: str, page_size: int, latency_ms: float, work: Path, share: float) -> None:
    sim, endpoint = start_simulator(scale, page_size, latency_ms)
    try:
        full = cli_run(endpoint, str(work / "full.duckdb"))
        killed = cli_run(endpoint, str(work / "resumed.duckdb"), kill_after=share * full["seconds"])
        resumed = cli_run(endpoint, str(work / "resumed.duckdb"))
    finally:
        sim.terminate()
        sim.wait()
    assert killed["killed"], f"the run ended before {share:.0%} of a full run's time: nothing to resume"
    summary = resumed["summary"]
    print(f"resume: {scale} at {latency_ms:g} ms, page size {page_size}")
    print(f"  full run       {full['requests']:>8,} requests  {full['seconds']:8.1f} s")
    print(f"  killed at {share:.0%}  {killed['requests']:>8,} requests  {killed['seconds']:8.1f} s")
    print(f"  resumed run    {resumed['requests']:>8,} requests  {resumed['seconds']:8.1f} s   "
          f"({resumed['requests'] / full['requests']:.1%} of the requests, "
          f"{resumed['seconds'] / full['seconds']:.1%} of the time; "
          f"{summary['resumed_units']:,} of {summary['units']:,} units from the checkpoint)")
    rows_full, rows_resumed = full["summary"]["rows"], summary["rows"]
    print(f"  rows: full {sum(rows_full.values()):,}, resumed {sum(rows_resumed.values()):,}"
          f" ({'equal per table' if rows_full == rows_resumed else 'DIFFERENT'})")


def cost_part(scale: str, page_size: int, latency_ms: float, repeats: int, work: Path) -> None:
    sim, endpoint = start_simulator(scale, page_size, latency_ms)
    runs: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    try:
        for i in range(repeats):
            for resume in (True, False):
                runs[resume].append(lib_run(endpoint, str(work / f"cost-{i}-{int(resume)}.duckdb"), resume))
    finally:
        sim.terminate()
        sim.wait()
    median = {r: (statistics.median(x["seconds"] for x in runs[r]), statistics.median(x["rss_mib"] for x in runs[r]))
              for r in runs}
    print(f"cost of the checkpoint: {scale} at {latency_ms:g} ms, page size {page_size}, median of {repeats}")
    for resume, label in ((False, "without"), (True, "with")):
        each = ", ".join(f"{x['seconds']:.1f}" for x in runs[resume])
        print(f"  {label:<8} wall {median[resume][0]:7.2f} s   peak RSS {median[resume][1]:6.0f} MiB  (runs: {each} s)")
    wall, rss = median[True][0] / median[False][0], median[True][1] / median[False][1]
    print(f"  ratio    wall {wall:7.3f}     peak RSS {rss:6.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="medium")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--page-size", type=int, default=2500)
    parser.add_argument("--cost-scale", default="small")
    parser.add_argument("--cost-latency-ms", type=float, default=0.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kill-share", type=float, default=0.8, help="kill at this share of a full run's time")
    parser.add_argument("--skip-resume", action="store_true")
    parser.add_argument("--skip-cost", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="listrak-bench-resume-") as work:
        if not args.skip_resume:
            resume_part(args.scale, args.page_size, args.latency_ms, Path(work), args.kill_share)
        if not args.skip_cost:
            cost_part(args.cost_scale, args.page_size, args.cost_latency_ms, args.repeats, Path(work))


if __name__ == "__main__":
    main()
