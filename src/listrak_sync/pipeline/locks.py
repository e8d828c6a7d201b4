"""Who may write a dataset right now: one whole-dataset run, or list shards on distinct lists.

A run that owns the whole dataset (no list filter) replaces whole tables, so it excludes every
other run into that dataset. A list shard replaces only its lists' rows, so shards on distinct
lists may run side by side (where the destination takes concurrent writers; on DuckDB they
take turns at the file), while two runs on one list exclude each other. A conflict fails at
once with one line instead of waiting behind a run that may take hours.

A lock is keyed on what the destination itself takes for the same dataset: its name case-folded
(SQL folds unquoted names), and, for DuckDB, the file itself, symlinks and ``..`` resolved, with
the lock files in a hidden folder beside it (``.listrak_sync.duckdb.locks``), so that every
process that can open the file sees them, whatever its ``TMPDIR``; for other destinations,
``host:port/database`` or the bucket, in a folder of this user's cache (``~/.cache``), so they
hold on this machine.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from listrak_sync.errors import ConfigError
from listrak_sync.pipeline.destinations import Target


@contextmanager
def run_lock(target: Target, dataset: str, lists: Sequence[int] | None = None) -> Iterator[None]:
    """Hold the locks a run into ``dataset`` at ``target`` needs, for the run's duration.

    Args:
        target: where the run lands.
        dataset: the dataset it writes.
        lists: the run's list shard; None for a run that owns the whole dataset.

    Raises:
        ConfigError: another run holds what this one needs; the message names it.
    """
    base = lock_base(target, dataset)
    where = f"dataset {dataset!r} at {target.location}"
    with ExitStack() as held:
        whole = base.parent / f"{base.name}.lock"
        if lists is None:
            held.enter_context(_exclusive(whole, f"Another listrak-sync run is writing {where}"))
            for shard in sorted(base.parent.glob(base.name + ".list-*.lock")):
                shard_list = shard.name.rsplit("list-", 1)[1].split(".")[0]
                with _exclusive(shard, f"A list shard run (list {shard_list}) is writing {where}"):
                    pass
        else:
            for list_id in sorted(set(lists)):
                held.enter_context(_exclusive(base.parent / f"{base.name}.list-{list_id}.lock",
                                              f"Another listrak-sync run is writing list {list_id} of {where}"))
            # Only a look: shards on other lists take the same look at the same moment, so it
            # waits out their instant; a run of every list holds this lock for its whole length.
            with _exclusive(whole, f"A run of every list is writing {where}", wait=_LOOK_SECONDS):
                pass
        yield


_LOOK_SECONDS = 5.0


@contextmanager
def _exclusive(path: Path, busy: str, wait: float = 0.0) -> Iterator[None]:
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=wait, poll_interval=0.05)
    except Timeout:
        raise ConfigError(f"{busy} right now. Wait for it to finish, or use another --dataset.") from None
    try:
        yield
    finally:
        lock.release()


def lock_base(target: Target, dataset: str) -> Path:
    """The path (without suffix) of the locks of ``dataset`` at ``target`` (see the module docstring)."""
    name = dataset.casefold()
    if target.name == "duckdb":
        database = Path(target.location)
        folder = database.parent / f".{database.name}.locks"
        folder.mkdir(exist_ok=True)
        return folder / name
    key = hashlib.sha256(f"{target.name}\0{target.location}\0{name}".encode()).hexdigest()[:24]
    return _cache_dir() / key


def _cache_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = Path(cache) / "listrak-sync" / "locks"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:  # no writable home (a container): this machine's temporary folder instead
        path = Path(tempfile.gettempdir()) / "listrak-sync-locks"
        path.mkdir(parents=True, exist_ok=True)
    return path


__all__ = ["lock_base", "run_lock"]
