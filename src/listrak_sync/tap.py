"""The tap's command line under its old module name: ``python -m listrak_sync.tap`` still works.

The tap lives in :mod:`listrak_sync.singer`; this module only forwards to its entry point.
"""

from listrak_sync.singer.main import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    main()
