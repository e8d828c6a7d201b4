"""``python -m listrak_sync.singer``: the ``tap-listrak`` command line."""

from listrak_sync.singer.main import main

main()
