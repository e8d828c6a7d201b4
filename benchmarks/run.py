"""Benchmarks: full replication of a simulated account, measured from outside.

The simulator runs in its own process (so its CPU is not charged to the client), with
simulated network latency; each replication runs as its own ``listrak-sync run`` process so
its wall time and peak memory (max RSS) are its own. Prints one table of numbers; compare
rows of one run with each other (the machine is shared and noisy), not across runs.

    python benchmarks/run.py                      # medium, 50 ms latency, concurrency 8 vs 1
    python benchmarks/run.py --scale small --latency-ms 20 --skip-serial
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from listrak_sync.simulator import DEFAULT_PASSWORD, DEFAULT_USERNAME
from listrak_sync.simulator.data import EPOCH


def start_simulator(scale: str, latency_ms: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "listrak_sync", "simulator", "--port", "0", "--scale", scale,
         "--latency-ms", str(latency_ms)],
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


def control(endpoint: str, path: str, body: dict[str, object] | None = None) -> dict[str, object]:
    base = endpoint.split("/v31/")[0]
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method="POST" if data is not None else "GET",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback only)
        return json.loads(response.read() or b"{}")


def replicate(endpoint: str, db: str, work: str, concurrency: int, label: str) -> dict[str, object]:
    env = {**os.environ, "LISTRAK_USERNAME": DEFAULT_USERNAME, "LISTRAK_PASSWORD": DEFAULT_PASSWORD,
           "DLT_DATA_DIR": work}
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "listrak_sync", "run", "--endpoint", endpoint, "--start-date",
             EPOCH.strftime("%m/%d/%Y"), "--duckdb", db, "--concurrency", str(concurrency), "--json"],
            env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL, text=True,
        )
        # wait4 gives this child's own peak memory (getrusage would mix all children).
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(stderr)
    peak_kib = usage.ru_maxrss
    summary = json.loads(stdout)
    rows = sum(summary["rows"].values())
    return {
        "run": label,
        "concurrency": concurrency,
        "seconds": round(seconds, 2),
        "rows": rows,
        "rows_per_s": round(rows / seconds),
        "requests": summary["total_requests"],
        "retries": summary["retries"],
        "by_operation": summary["requests"],
        "peak_rss_mib": round(peak_kib / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="medium")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--skip-serial", action="store_true", help="skip the concurrency-1 baseline")
    args = parser.parse_args()

    proc, endpoint = start_simulator(args.scale, args.latency_ms)
    results = []
    try:
        with tempfile.TemporaryDirectory() as work:
            db, state = str(Path(work) / "bench.duckdb"), str(Path(work) / "dlt")
            plan: list[tuple[str, int, str, str, float]] = [
                ("first (full)", args.concurrency, db, state, 0.0),
                ("re-run, nothing new", args.concurrency, db, state, 0.0),
                ("re-run, +1 day", args.concurrency, db, state, 1.0),
            ]
            if not args.skip_serial:
                plan.append(("serial full (like the hosted tap)", 1, db + ".serial", state + ".serial", 0.0))
            for label, concurrency, path, dlt_dir, advance in plan:
                if advance:
                    control(endpoint, "/_simulator/clock", {"advance_days": advance})
                control(endpoint, "/_simulator/stats/reset", {})
                results.append(replicate(endpoint, path, dlt_dir, concurrency, label))
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    print(f"replication, scale={args.scale}, simulated latency {args.latency_ms:g} ms")
    print(f"{'run':<34} {'conc':>4} {'wall s':>8} {'rows':>10} {'rows/s':>9} {'requests':>9} {'retries':>7} "
          f"{'peak MiB':>9}")
    for r in results:
        print(f"{r['run']:<34} {r['concurrency']:>4} {r['seconds']:>8} {r['rows']:>10,} {r['rows_per_s']:>9,} "
              f"{r['requests']:>9,} {r['retries']:>7} {r['peak_rss_mib']:>9}")
    first = results[0]
    for r in results[1:3]:
        print(f"{r['run']}: {100 * r['requests'] / first['requests']:.1f}% of the first run's requests, "  # type: ignore[operator]
              f"{100 * r['seconds'] / first['seconds']:.1f}% of its time")  # type: ignore[operator]
    print("requests per operation (first run):")
    for operation, count in sorted(results[0]["by_operation"].items()):  # type: ignore[union-attr]
        print(f"  {operation:<36} {count:>8,}")
    if len(results) > 3:
        print(f"full run, concurrency {args.concurrency} vs serial: "
              f"{results[3]['seconds'] / results[0]['seconds']:.1f}x faster")  # type: ignore[operator]


if __name__ == "__main__":
    main()
