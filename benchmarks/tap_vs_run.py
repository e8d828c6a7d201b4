"""The Singer tap and ``listrak-sync run`` against one simulated account: requests per operation.

Both adapters plan through the one engine, so for the same account and start date they should
make the same requests, on a first run and on a re-run with nothing changed. Prints, per
adapter and run, the simulator's request count per operation, and for the tap the records it
emitted and the largest STATE it wrote.

    python benchmarks/tap_vs_run.py --scale small
    python benchmarks/tap_vs_run.py --scale medium
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import Scenario, control, start_simulator  # noqa: E402

from listrak_sync.simulator import DEFAULT_PASSWORD, DEFAULT_USERNAME  # noqa: E402

START = "01/01/2024"


def _requests(endpoint: str) -> dict[str, int]:
    return dict(control(endpoint, "/_simulator/stats")["requests"])


def run_cli(endpoint: str, work: Path) -> dict[str, int]:
    """One ``listrak-sync run`` into ``work``/bench.duckdb; the requests it made."""
    env = {**os.environ, "LISTRAK_USERNAME": DEFAULT_USERNAME, "LISTRAK_PASSWORD": DEFAULT_PASSWORD}
    control(endpoint, "/_simulator/stats/reset", {})
    subprocess.run([sys.executable, "-m", "listrak_sync", "run", "--start-date", START, "--endpoint", endpoint,
                    "--duckdb", str(work / "bench.duckdb")], env=env, check=True, capture_output=True, cwd=work)
    return _requests(endpoint)


def run_tap(endpoint: str, work: Path, state: dict[str, Any] | None) -> tuple[dict[str, int], int, int, dict]:
    """One ``tap-listrak`` sync; its requests, records, largest STATE (bytes) and last STATE."""
    config = work / "tap.json"
    config.write_text(json.dumps({"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD,
                                  "start_date": START, "endpoint": endpoint}))
    args = [sys.executable, "-m", "listrak_sync.singer", "--config", str(config)]
    if state is not None:
        (work / "state.json").write_text(json.dumps(state))
        args += ["--state", str(work / "state.json")]
    control(endpoint, "/_simulator/stats/reset", {})
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    records, largest, last = 0, 0, {}
    for line in out.splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD":
            records += 1
        elif message["type"] == "STATE":
            largest = max(largest, len(json.dumps(message["value"], separators=(",", ":"))))
            last = message["value"]
    return _requests(endpoint), records, largest, last


def _compare(name: str, tap: dict[str, int], cli: dict[str, int]) -> None:
    print(f"  {name}: tap {sum(tap.values())} requests, run {sum(cli.values())}")
    for operation in sorted(set(tap) | set(cli)):
        a, b = tap.get(operation, 0), cli.get(operation, 0)
        off = abs(a - b) / max(b, 1)
        print(f"    {operation:42s} tap {a:6d}  run {b:6d}  {off:6.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="small")
    parser.add_argument("--page-size", type=int, default=2500)
    options = parser.parse_args()
    proc, endpoint = start_simulator(Scenario(options.scale, options.scale, options.page_size, START, 0.0))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            first_cli, again_cli = run_cli(endpoint, work), run_cli(endpoint, work)
            first_tap, records, largest, state = run_tap(endpoint, work, None)
            again_tap, again_records, again_largest, _ = run_tap(endpoint, work, state)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"{options.scale}, page size {options.page_size}, start {START}")
    _compare("first run", first_tap, first_cli)
    _compare("no-change re-run", again_tap, again_cli)
    share = sum(again_tap.values()) / max(sum(first_tap.values()), 1)
    print(f"  tap re-run: {share:.1%} of its first run's requests; records {again_records} of {records} "
          f"({again_records / max(records, 1):.1%}); largest STATE {max(largest, again_largest):,} bytes")


if __name__ == "__main__":
    main()
