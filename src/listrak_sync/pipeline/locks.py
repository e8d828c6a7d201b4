"""Who may write a dataset right now: one whole-dataset run, or list shards on distinct lists.

A run that owns the whole dataset (no list filter) replaces whole tables, so it excludes every
other run into that dataset. A list shard replaces only its lists' rows, so shards on distinct
lists may run side by side (where the destination takes concurrent writers; on DuckDB they
take turns at the file), while two runs on one list exclude each other. Locks are files under
the system's temporary directory, so they hold on this machine; a conflict fails at once with
one line instead of waiting behind a run that may take hours.
"""

from __future__ import annotations

import hashlib
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
    base = _lock_dir() / hashlib.sha256(f"{target.name}\0{target.location}\0{dataset}".encode()).hexdigest()[:24]
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
            with _exclusive(whole, f"A run of every list is writing {where}"):
                pass
        yield


@contextmanager
def _exclusive(path: Path, busy: str) -> Iterator[None]:
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigError(f"{busy} right now. Wait for it to finish, or use another --dataset.") from None
    try:
        yield
    finally:
        lock.release()


def _lock_dir() -> Path:
    path = Path(tempfile.gettempdir()) / "listrak-sync-locks"
    path.mkdir(parents=True, exist_ok=True)
    return path


__all__ = ["run_lock"]
