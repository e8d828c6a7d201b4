"""Benchmark: one run of every list against 2 and 4 list shards in parallel, into PostgreSQL.

The simulator runs in its own process with simulated latency; each run is its own
``listrak-sync run`` process. Shards take the lists round-robin. Prints wall time per layout
and the client CPU seconds (user+sys of all run processes), so what limits it shows.

    python benchmarks/shards.py --scale medium --latency-ms 50
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid

import psycopg2
from run import Scenario, control, start_simulator  # benchmarks/run.py

from listrak_sync.simulator import DEFAULT_PASSWORD, DEFAULT_USERNAME
from listrak_sync.simulator.data import EPOCH, Account

PG = "postgresql://postgres:trust@127.0.0.1:5432/test"


def layout(endpoint: str, shards: list[list[int]] | None, dataset: str) -> tuple[float, float]:
    env = {**os.environ, "LISTRAK_USERNAME": DEFAULT_USERNAME, "LISTRAK_PASSWORD": DEFAULT_PASSWORD,
           "LISTRAK_ENDPOINT": endpoint, "DESTINATION__POSTGRES__CREDENTIALS": PG}
    base = [sys.executable, "-m", "listrak_sync", "run", "--start-date", EPOCH.strftime("%m/%d/%Y"),
            "--destination", "postgres", "--dataset", dataset]
    commands = [base] if shards is None else [[*base, "--lists", ",".join(map(str, s))] for s in shards]
    started = time.monotonic()
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for c in commands]
    cpu = 0.0
    for proc in procs:
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(proc.stderr.read() if proc.stderr else "failed")
        cpu += usage.ru_utime + usage.ru_stime
    return time.monotonic() - started, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="medium")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    list_ids = Account(scale=args.scale).list_ids()
    proc, endpoint = start_simulator(Scenario("shards", args.scale, 2500, EPOCH.strftime("%m/%d/%Y"), args.latency_ms))
    results = []
    try:
        for count in (None, 2, 4):
            shards = None if count is None else [list_ids[i::count] for i in range(count)]
            dataset = f"bench_shards_{uuid.uuid4().hex[:6]}"
            control(endpoint, "/_simulator/stats/reset", {})
            try:
                wall, cpu = layout(endpoint, shards, dataset)
            finally:
                with psycopg2.connect(PG) as con, con.cursor() as cur:
                    cur.execute(f"SELECT nspname FROM pg_namespace WHERE nspname LIKE '{dataset}%'")
                    for (schema,) in cur.fetchall():
                        cur.execute(f'DROP SCHEMA "{schema}" CASCADE')
            requests = control(endpoint, "/_simulator/stats")["requests_total"]
            results.append((f"{count or 1} run(s)" + ("" if count else ", every list"), wall, cpu, requests))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"list shards into PostgreSQL, scale={args.scale}, simulated latency {args.latency_ms:g} ms, "
          f"{len(list_ids)} lists, {os.cpu_count()} cores")
    print(f"{'layout':<24} {'wall s':>8} {'vs one run':>10} {'client CPU s':>13} {'requests':>9}")
    for label, wall, cpu, requests in results:
        print(f"{label:<24} {wall:>8.1f} {results[0][1] / wall:>9.2f}x {cpu:>13.1f} {requests:>9,}")


if __name__ == "__main__":
    main()
