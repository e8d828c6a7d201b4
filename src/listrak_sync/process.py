"""Settings of the whole Python process, for the command-line entry points only.

A library user's process is theirs to tune; ``listrak-sync`` and ``tap-listrak`` own theirs.
Measured on a full ``medium`` run (``benchmarks/run.py``): peak RSS 360-388 MiB before,
about 250 after, with the loader's settings in :mod:`listrak_sync.pipeline.runner`.
"""

from __future__ import annotations

import ctypes
import gc
from typing import Any

import pyarrow as pa

# A run allocates millions of short-lived objects (lxml element proxies, strings per value)
# while a large heap of modules (dlt, pyarrow) stays alive: with the default threshold of 700
# the collector walks that heap over and over. 1.4-1.8x the CPU per row with the defaults
# (``benchmarks/bench_parse.py --gc``).
_GC_THRESHOLD = (50_000, 20, 20)
# glibc's mallopt(M_ARENA_MAX): one arena per thread by default keeps freed memory of each of
# the run's worker threads apart (about 10 MiB of the peak).
_M_ARENA_MAX = -8
_ARENAS = 2


def tune_for_bulk_work() -> None:
    """Tune the collector and the allocators for one long bulk run in this process."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLD)
    # Arrow's default pool (mimalloc) keeps what it freed: 40 MiB held for 25 in use.
    pa.set_memory_pool(pa.system_memory_pool())
    _limit_malloc_arenas()


def release_free_memory() -> None:
    """Hand memory the process has freed back to the system (glibc only; elsewhere nothing).

    Safe in any process, and cheap (milliseconds). Between the phases of a run, the extract's
    freed pages would otherwise stay in the heap under the load's peak: about 20 MiB on a
    medium run, 37 on large.
    """
    trim = _glibc("malloc_trim")
    if trim is not None:
        trim(0)


def _limit_malloc_arenas() -> None:
    mallopt = _glibc("mallopt")
    if mallopt is not None:
        mallopt(_M_ARENA_MAX, _ARENAS)


def _glibc(name: str) -> Any:
    """glibc's function ``name``, or None where there is none (macOS, musl)."""
    # The process's own symbols include libc's; ctypes.util.find_library would run ldconfig
    # in a subprocess at every start.
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


__all__ = ["release_free_memory", "tune_for_bulk_work"]
