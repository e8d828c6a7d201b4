"""Moved: the incremental plan and its contract live in :mod:`listrak_sync.engine`.

Kept so that ``from listrak_sync.incremental import RunMode`` goes on working.
"""

from __future__ import annotations

from listrak_sync.engine import RunMode

__all__ = ["RunMode"]
