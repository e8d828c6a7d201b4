"""What `listrak-sync verify` reports and costs, next to the run it checks.

Per simulator profile: a full `run`, a `run` with nothing changed (its lists and messages reads
are what verify may cost at most), then `verify`: wall time and requests of each, and what
verify found (agree / behind / off, and each counter's reading).

    .venv/bin/python benchmarks/verify.py                       # medium, both profiles, 0 ms
    .venv/bin/python benchmarks/verify.py --latency-ms 50 --scale small
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
from pathlib import Path
from typing import Any

import duckdb

from listrak_sync.simulator import DEFAULT_PASSWORD, DEFAULT_USERNAME

START = "01/01/2024"


def start_simulator(scale: str, latency_ms: float, profile: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "listrak_sync", "simulator", "--port", "0", "--scale", scale,
                             "--latency-ms", str(latency_ms), "--profile", profile],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        match = re.search(r"(http://\S+/v31/IntegrationService\.asmx)", line)
        if match:
            return proc, match.group(1)
    raise RuntimeError("the simulator did not print its endpoint")


def command(endpoint: str, work: str, *args: str, zone: str) -> tuple[float, int, dict[str, Any]]:
    env = {**os.environ, "LISTRAK_USERNAME": DEFAULT_USERNAME, "LISTRAK_PASSWORD": DEFAULT_PASSWORD,
           "LISTRAK_ENDPOINT": endpoint, "LISTRAK_SOURCE_TIMEZONE": zone, "DLT_DATA_DIR": work}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "listrak_sync", *args, "--start-date", START, "--json",
                           "--duckdb", str(Path(work) / "bench.duckdb")],
                          env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=work)
    wall = time.monotonic() - started
    if proc.returncode not in (0, 4):
        raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return wall, proc.returncode, json.loads(proc.stdout)


def damage(db: Path, behind: set[tuple[str, int]]) -> tuple[int, int]:
    """Delete 10 opens (of contacts who opened once) of one message, copy 3 clicks of another as new contacts."""
    with duckdb.connect(str(db)) as con:
        opened = con.execute(
            "SELECT msg_id FROM (SELECT msg_id, email_address FROM listrak.message_opens GROUP BY ALL "
            "HAVING count(*) = 1) GROUP BY msg_id HAVING count(*) >= 10 ORDER BY msg_id").fetchall()
        opened_id = next(m for (m,) in opened if ("message_opens", m) not in behind)
        clicked = con.execute("SELECT DISTINCT msg_id FROM listrak.message_clicks ORDER BY msg_id").fetchall()
        clicked_id = next(m for (m,) in clicked if m != opened_id and ("message_clicks", m) not in behind)
        con.execute("DELETE FROM listrak.message_opens WHERE msg_id = $1 AND email_address IN (SELECT email_address "
                    "FROM listrak.message_opens WHERE msg_id = $1 GROUP BY ALL HAVING count(*) = 1 "
                    "ORDER BY 1 LIMIT 10)", [opened_id])
        con.execute("INSERT INTO listrak.message_clicks SELECT * REPLACE ('extra-' || email_address AS email_address) "
                    "FROM listrak.message_clicks WHERE msg_id = $1 LIMIT 3", [clicked_id])
    return opened_id, clicked_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="medium")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--profiles", default="friendly,pessimistic")
    args = parser.parse_args()
    for profile in args.profiles.split(","):
        proc, endpoint = start_simulator(args.scale, args.latency_ms, profile)
        zone = "America/New_York" if profile == "pessimistic" else "UTC"
        try:
            with tempfile.TemporaryDirectory() as work:
                full_wall, _, full = command(endpoint, work, "run", zone=zone)
                again_wall, _, again = command(endpoint, work, "run", zone=zone)
                verify_wall, code, found = command(endpoint, work, "verify", zone=zone)
                damaged = damage(Path(work) / "bench.duckdb", {(b["table"], b["msg_id"]) for b in found["behind"]})
                _, damaged_code, damaged_found = command(endpoint, work, "verify", zone=zone)
                repair_wall, repair_code, repaired = command(endpoint, work, "verify", "--repair", zone=zone)
                _, after_code, _ = command(endpoint, work, "verify", zone=zone)
        finally:
            proc.terminate()
            proc.wait()
        reads = {op: n for op, n in again["requests"].items()
                 if op in ("GetContactListCollection", "ReportListMessageActivity")}
        print(f"{args.scale} {profile} latency {args.latency_ms:g} ms")
        print(f"  full run:       {full_wall:7.1f} s  {full['total_requests']:>6,} requests")
        print(f"  unchanged run:  {again_wall:7.1f} s  {again['total_requests']:>6,} requests "
              f"(lists and messages: {sum(reads.values())})")
        print(f"  verify:         {verify_wall:7.1f} s  {found['total_requests']:>6,} requests, exit {code}; "
              f"{found['messages_checked']:,} messages, {found['checks']:,} checks: {found['counts']}")
        for counter, reading in found["readings"].items():
            print(f"    {counter:<13} fits {reading['fits']:<8} (settled {reading['settled']:,}: events "
                  f"{reading['events_fit']:,}, unique {reading['unique_fit']:,})")
        for entry in found["behind"][:3]:
            print(f"    behind: {entry['table']} {entry['msg_id']} {entry['difference']:+} ({entry['reason']})")
        off = sorted({(e["table"], e["msg_id"], e["difference"]) for e in damaged_found["off"]})
        print(f"  damaged {damaged}: verify exit {damaged_code}, off {off}")
        print(f"  verify --repair: {repair_wall:7.1f} s  {repaired['total_requests']:>6,} requests "
              f"{dict(sorted(repaired['requests'].items()))}, exit {repair_code}; verify after it: exit {after_code}")


if __name__ == "__main__":
    main()
