"""The Singer tap ``tap-listrak``, a drop-in for singer-io/tap-listrak 1.3.1, over the same core.

Modules, each with one job:

- :mod:`.main`     the command line (``tap-listrak``), config, ``--test``, one sync
- :mod:`.about`    ``--about``: capabilities and the settings the config may hold
- :mod:`.catalog`  the catalog built from the stream table, and selection read back from one
- :mod:`.state`    bookmarks, checkpoints and refused objects: what STATE holds and means
- :mod:`.sync`     one sync: drives the extractor and hands records and STATE to the writer
- :mod:`.rest_mode` the 2.x mode (PyPI tap-listrak 2.x's config and streams), through the one REST run
- :mod:`.output`   SCHEMA, RECORD and STATE lines on stdout

Run it as ``tap-listrak`` or ``python -m listrak_sync.singer``.
"""
