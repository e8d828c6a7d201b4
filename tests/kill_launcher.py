"""Run ``listrak-sync`` with the kill tests' observer on every SQL statement of the load.

    python tests/kill_launcher.py [--count FILE] [--kill-at N] run --duckdb x.duckdb ...

The loader tells :data:`listrak_sync.pipeline.destinations.on_statement` each statement before
and after it runs (an "after" falls inside the table's transaction, before its commit). Here
the points are numbered from 1 in the order they are reached; ``--count`` appends each to FILE
as ``number<TAB>before|after<TAB>first line of the SQL``, and ``--kill-at N`` makes the process
SIGKILL itself at point N (no cleanup, like a power cut). The rest of the arguments go to the CLI.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import sys
import threading

from listrak_sync.cli import main as cli_main
from listrak_sync.pipeline import destinations


def install(count_file: str | None, kill_at: int | None) -> None:
    """Replace the loader's no-op statement observer with one that counts and kills."""
    numbers = itertools.count(1)
    lock = threading.Lock()

    def observe(statement: str, when: str) -> None:
        with lock:
            number = next(numbers)
            if count_file:
                first = statement.strip().splitlines()[0][:200] if statement.strip() else ""
                with open(count_file, "a", encoding="utf-8") as out:
                    out.write(f"{number}\t{when}\t{first}\n")
            if number == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    destinations.on_statement = observe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, add_help=False)
    parser.add_argument("--count", dest="count_file")
    parser.add_argument("--kill-at", type=int)
    ours, rest = parser.parse_known_args()
    install(ours.count_file, ours.kill_at)
    sys.argv = ["listrak-sync", *rest]
    cli_main()


if __name__ == "__main__":
    main()
