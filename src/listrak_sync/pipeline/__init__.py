"""The dlt pipeline: the source, one run (:func:`~listrak_sync.pipeline.runner.replicate`),
atomic destinations, the one-writer lock, and how progress is shown."""
