"""The private working folder of a run, and what killed runs left behind.

dlt extracts and normalizes into files before it loads, so a run's working folder holds rows,
contacts' e-mail addresses among them. A run removes its folder on every exit it survives; a
SIGKILL or a power cut leaves it, so each run first removes the folders of runs that are gone:
folders of this user, named with the process ID of a run that no longer exists.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "listrak-sync-run-"
_OURS = re.compile(re.escape(PREFIX) + r"(\d+)-")


@contextmanager
def working_dir(given: str | None = None) -> Iterator[str]:
    """A private working folder for one run (``given``, kept, if the caller chose one), removed
    afterwards; folders of runs that died are removed first (see the module docstring)."""
    if given:
        yield given
        return
    remove_orphans()
    path = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_orphans(parent: str | None = None) -> list[str]:
    """Remove the working folders of runs that no longer exist; return their paths."""
    removed: list[str] = []
    root = Path(parent or tempfile.gettempdir())
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _OURS.match(entry.name)
        if not match or not _owned(entry) or _alive(int(match.group(1))):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(str(entry))
    if removed:
        log.info("Removed %d working folder(s) that killed runs left: %s", len(removed), ", ".join(removed))
    return removed


def _owned(path: Path) -> bool:
    try:
        return path.is_dir() and not path.is_symlink() and path.stat().st_uid == os.getuid()
    except OSError:
        return False


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours to judge
        return True
    return True


__all__ = ["PREFIX", "remove_orphans", "working_dir"]
