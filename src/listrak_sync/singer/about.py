"""What ``tap-listrak --about`` prints: name, version, capabilities and settings.

The JSON form has the keys the Meltano SDK's ``--about --format=json`` has (``name``,
``description``, ``version``, ``capabilities``, ``settings`` as a JSON schema), so Meltano
and MeltanoHub can read it; the Markdown form is for people. Settings are the keys
``singer-io/tap-listrak`` reads (``username``, ``password``, ``start_date``, ``interval_days``)
plus our optional tuning keys, with the defaults of :class:`~listrak_sync.settings.Settings`, and
the tap's own :data:`TAP_OPTIONS` (``typed_event_dates``).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from listrak_sync import __version__
from listrak_sync.settings import START_DATE_FORMS, Settings

NAME = "tap-listrak"
DESCRIPTION = (
    "Singer tap for Listrak email marketing (SOAP API v31): lists, messages, per-message "
    "sends, opens, reads, clicks, unsubscribes and bounces, and subscribed contacts. "
    "A drop-in replacement for singer-io/tap-listrak, with concurrent extraction."
)
CAPABILITIES = ("catalog", "properties", "discover", "state", "about", "test")
REQUIRED = ("username", "password", "start_date")

# The tap's config keys: an allow-list, so that settings of the dlt job only (``tables``, which
# the catalog replaces; ``full_recheck_days``, ``trust_counters`` and ``send_settle_hours``,
# which tune the dlt plan the tap does not keep) never show up here: a config that holds them
# gets the unknown-keys warning, as tap-listrak 1.3.1's configs with extra keys do.
_DESCRIPTIONS: dict[str, str] = {
    "username": "The Listrak API user (Manage > Accounts > User Manager, with API Access).",
    "password": "The API user's password. Sent only in the SOAP header; never logged.",
    "start_date": f"Earliest data to replicate: {START_DATE_FORMS}.",
    "endpoint": "The SOAP endpoint: production, a proxy, or the bundled simulator's URL.",
    "concurrency": "Most requests in flight at once (1-64); halved automatically while the service is overloaded.",
    "connect_timeout": "Seconds to wait for a connection.",
    "read_timeout": "Seconds to wait for a response.",
    "max_retries": "Retries of a transient failure (timeouts, 5xx, overload); access errors are never retried.",
    "backoff_base": "First retry delay in seconds (exponential, with jitter).",
    "backoff_max": "Longest retry delay in seconds.",
    "interval_days": "Length in days of the date windows that messages are requested in (as tap-listrak).",
    "include_test_messages": "Include test sends in messages (tap-listrak always did).",
    "list_ids": "Replicate only these list IDs (default: every list the user can see).",
    "source_timezone": "Time zone of the service's undesignated times; UTC stamps them unchanged, as tap-listrak did.",
    "trust_short_pages": "Stop paging at a page shorter than the proven page size, saving one request per object.",
    "request_deadline": "Seconds one whole request may take, body included (at least read_timeout).",
    "max_response_bytes": "Largest response accepted, in bytes after decompression; a larger one fails the request.",
    "retry_budget_seconds": "Seconds one request may keep retrying transient failures, sleeps included.",
    "lookback_hours": (
        "Hours before the bookmark that each run's date ranges start, so that events the service shows "
        "late are still emitted; events in that overlap may be emitted again."
    ),
}

# Settings of the tap alone (not of :class:`Settings`): how records are shaped.
TAP_OPTIONS: dict[str, dict[str, Any]] = {
    "typed_event_dates": {
        "type": "boolean",
        "default": False,
        "description": (
            "Emit ClickDate, OpenDate, ReadDate and BounceDate (strings in Listrak's WSDL) as RFC 3339 "
            "UTC date-times, like the other dates. Default: as the service sent them, as tap-listrak did."
        ),
    },
}

_JSON_TYPES: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "Secret": {"type": "string"},
    "datetime": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "tuple[int, ...] | None": {"type": "array", "items": {"type": "integer"}},
}


def tap_settings() -> list[dataclasses.Field[Any]]:
    """The :class:`Settings` fields a tap config may hold, in their declaration order."""
    return [f for f in dataclasses.fields(Settings) if f.name in _DESCRIPTIONS]


def settings_schema() -> dict[str, Any]:
    """The tap's config as a JSON schema (``settings`` in ``--about --format json``)."""
    properties: dict[str, Any] = {}
    for setting in tap_settings():
        schema: dict[str, Any] = dict(_JSON_TYPES[str(setting.type)])
        schema["description"] = _DESCRIPTIONS[setting.name]
        if setting.default is not dataclasses.MISSING and setting.default is not None:
            schema["default"] = setting.default
        if setting.name == "password":
            schema.update(secret=True, writeOnly=True)
        properties[setting.name] = schema
    properties.update({name: dict(schema) for name, schema in TAP_OPTIONS.items()})
    return {"type": "object", "properties": properties, "required": list(REQUIRED)}


def about() -> dict[str, Any]:
    """The ``--about --format json`` document."""
    return {
        "name": NAME,
        "description": DESCRIPTION,
        "version": __version__,
        "sdk_version": None,
        "supported_python_versions": ["3.10", "3.11", "3.12", "3.13"],
        "capabilities": list(CAPABILITIES),
        "settings": settings_schema(),
    }


def about_markdown() -> str:
    """The ``--about --format markdown`` text."""
    info = about()
    lines = [f"# `{info['name']}`", "", info["description"], "", f"Version: {info['version']}", ""]
    lines += ["## Capabilities", ""] + [f"* `{c}`" for c in info["capabilities"]] + [""]
    lines += ["## Settings", "", "| Setting | Required | Type | Default | Description |", "|---|---|---|---|---|"]
    schema = info["settings"]
    for name, prop in schema["properties"].items():
        required = "yes" if name in schema["required"] else "no"
        default = f"`{json.dumps(prop['default'])}`" if "default" in prop else ""
        lines.append(f"| `{name}` | {required} | {prop['type']} | {default} | {prop['description']} |")
    lines += ["", "A full list of supported settings and capabilities is available by running: `tap-listrak --about`"]
    return "\n".join(lines) + "\n"


__all__ = [
    "CAPABILITIES",
    "NAME",
    "REQUIRED",
    "TAP_OPTIONS",
    "about",
    "about_markdown",
    "settings_schema",
    "tap_settings",
]
