"""REST benchmark: a first run and a no-change re-run with both credential pairs, measured from outside.

The simulator serves SOAP and REST in its own process, with simulated latency; each run is its
own ``listrak-sync run`` process (wall time, CPU and peak memory from ``wait4``). Requests are
the simulator's counts per API. The re-run's REST requests are reported as a share of the first
run's (issue 19: under 2%).

    python benchmarks/rest.py                      # medium, both profiles, 0 ms and 20 ms latency
    python benchmarks/rest.py --scale small --latency-ms 0 --profile pessimistic
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from run import control  # noqa: E402  (a sibling script, not a package)

from listrak_sync.simulator import DEFAULT_PASSWORD, DEFAULT_USERNAME, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET  # noqa: E402


def start_simulator(scale: str, latency_ms: float, profile: str) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "listrak_sync", "simulator", "--port", "0", "--scale", scale, "--latency-ms",
         str(latency_ms), "--profile", profile, "--client-id", DEMO_CLIENT_ID, "--client-secret", DEMO_CLIENT_SECRET],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        match = re.search(r"(http://\S+)/v31/IntegrationService\.asmx", proc.stdout.readline())
        if match:
            return proc, match.group(0), match.group(1)
    proc.kill()
    raise RuntimeError("the simulator did not print its endpoint")


def replicate(endpoint: str, base: str, db: str, work: str) -> dict[str, Any]:
    env = {**os.environ, "LISTRAK_USERNAME": DEFAULT_USERNAME, "LISTRAK_PASSWORD": DEFAULT_PASSWORD,
           "LISTRAK_CLIENT_ID": DEMO_CLIENT_ID, "LISTRAK_CLIENT_SECRET": DEMO_CLIENT_SECRET,
           "LISTRAK_REST_ENDPOINT": base + "/email/v1", "LISTRAK_TOKEN_ENDPOINT": base + "/OAuth2/Token",
           "DLT_DATA_DIR": work, "RUNTIME__LOG_LEVEL": "WARNING"}
    control(endpoint, "/_simulator/stats/reset", {})
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "listrak_sync", "run", "--endpoint", endpoint, "--start-date",
                             "01/01/2024", "--duckdb", db], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    assert proc.stderr is not None
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(proc.stderr.read())
    served = control(endpoint, "/_simulator/stats")
    return {"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime, "peak_mib": usage.ru_maxrss / 1024,
            "soap": served["requests_total"], "rest": served["rest_requests_total"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="medium")
    parser.add_argument("--latency-ms", type=float, action="append", help="repeatable (default: 0 and 20)")
    parser.add_argument("--profile", action="append", choices=("friendly", "pessimistic"),
                        help="repeatable (default: both)")
    args = parser.parse_args()
    print(f"{'scenario':<18} {'run':<8} {'REST req':>9} {'SOAP req':>9} {'wall s':>7} {'CPU s':>6} "
          f"{'peak MiB':>8} {'REST share':>10}")
    scenarios = [(p, ms) for p in args.profile or ["friendly", "pessimistic"] for ms in args.latency_ms or [0.0, 20.0]]
    for profile, latency in scenarios:
        proc, endpoint, base = start_simulator(args.scale, latency, profile)
        try:
            with tempfile.TemporaryDirectory() as work:
                db = str(Path(work) / "bench.duckdb")
                first = replicate(endpoint, base, db, work + "/dlt")
                again = replicate(endpoint, base, db, work + "/dlt")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        name = f"{args.scale}-{profile[:4]}-{latency:g}ms"
        for label, result in (("first", first), ("re-run", again)):
            share = f"{100 * result['rest'] / first['rest']:.1f}%"
            print(f"{name:<18} {label:<8} {result['rest']:>9,} {result['soap']:>9,} {result['seconds']:>7.1f} "
                  f"{result['cpu']:>6.1f} {result['peak_mib']:>8.0f} {share:>10}")


if __name__ == "__main__":
    main()
