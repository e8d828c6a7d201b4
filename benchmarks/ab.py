"""Before and after in one run: the same full replication by two commits, taking turns.

This machine is shared and its speed drifts between sessions (the same commit has measured 30 s
and 50 s of CPU on ``medium`` on different days), so a figure is only worth comparing with one
measured beside it. This checks out ``--old`` into a temporary worktree, starts one simulator,
and runs ``listrak-sync run`` from each checkout in turn, each in its own process with a fresh
database; it prints wall time, client CPU (user + sys, from ``wait4``), peak RSS, rows and
requests per run, then the medians and their ratios.

    .venv/bin/python benchmarks/ab.py --old cade618                    # medium, 0 ms, 2 rounds
    .venv/bin/python benchmarks/ab.py --old cade618 --latency-ms 50 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import Scenario, start_simulator  # benchmarks/run.py

from listrak_sync.simulator import DEFAULT_PASSWORD, DEFAULT_USERNAME

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ("wall", "cpu", "peak_mib")


def replicate(source: Path, endpoint: str) -> dict[str, float]:
    """One full run of the checkout at ``source`` (its ``src`` first on the path)."""
    with tempfile.TemporaryDirectory() as work:
        env = {**os.environ, "PYTHONPATH": str(source / "src"), "LISTRAK_USERNAME": DEFAULT_USERNAME,
               "LISTRAK_PASSWORD": DEFAULT_PASSWORD, "DLT_DATA_DIR": work}
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "listrak_sync", "run", "--endpoint", endpoint, "--start-date", "01/01/2024",
             "--duckdb", str(Path(work) / "ab.duckdb"), "--json"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
        )
        assert proc.stdout is not None
        out = proc.stdout.read()
        # This process is small, so the child's ru_maxrss is its own (Linux counts the parent's
        # RSS at fork into it).
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"the run from {source} failed")
        summary = json.loads(out)
        return {"wall": time.monotonic() - started, "cpu": usage.ru_utime + usage.ru_stime,
                "peak_mib": usage.ru_maxrss / 1024, "rows": sum(summary["rows"].values()),
                "requests": summary["total_requests"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", required=True, help="the commit to compare this checkout with")
    parser.add_argument("--scale", default="medium")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as parent:
        old = Path(parent) / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(old), args.old], check=True)
        simulator, endpoint = start_simulator(Scenario("ab", args.scale, 2500, "01/01/2024", args.latency_ms))
        results: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
        try:
            for _ in range(args.rounds):
                for label, source in (("old", old), ("new", ROOT)):
                    result = replicate(source, endpoint)
                    results[label].append(result)
                    print(f"{label}: wall {result['wall']:.1f} s, CPU {result['cpu']:.1f} s, peak "
                          f"{result['peak_mib']:.0f} MiB, {result['rows']:,.0f} rows, {result['requests']:,.0f} "
                          "requests", flush=True)
        finally:
            simulator.terminate()
            simulator.wait(timeout=30)
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=False)
    medians = {label: {f: statistics.median(r[f] for r in runs) for f in FIGURES} for label, runs in results.items()}
    for label, figures in medians.items():
        print(f"{label} (median): wall {figures['wall']:.1f} s, CPU {figures['cpu']:.1f} s, "
              f"peak {figures['peak_mib']:.0f} MiB")
    print("old / new: " + ", ".join(f"{f} {medians['old'][f] / medians['new'][f]:.2f}x" for f in FIGURES))


if __name__ == "__main__":
    main()
