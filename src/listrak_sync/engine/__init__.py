"""The sync engine: what a run must fetch, and the incremental contract it keeps (see :mod:`.plan`)."""

from listrak_sync.engine.plan import *  # noqa: F403
from listrak_sync.engine.plan import __all__ as _plan_all

__all__ = list(_plan_all)
