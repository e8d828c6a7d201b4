"""Integrations with orchestrators (Dagster): thin layers over :mod:`listrak_sync.pipeline`."""
