"""Settings of the whole Python process, for the command-line entry points only.

A library user's process is theirs to tune; ``listrak-sync`` and ``tap-listrak`` own theirs.
"""

from __future__ import annotations

import gc

# A run allocates millions of short-lived objects (lxml element proxies, strings per value)
# while a large heap of modules (dlt, pyarrow) stays alive: with the default threshold of 700
# the collector walks that heap over and over. Measured on a 2,500-row opens page with a big
# live heap: 1.4-1.8x the CPU per row with the defaults (``benchmarks/bench_parse.py --gc``).
_GC_THRESHOLD = (50_000, 20, 20)


def tune_for_bulk_work() -> None:
    """Move what is loaded so far out of the collector's way and collect young objects less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLD)


__all__ = ["tune_for_bulk_work"]
