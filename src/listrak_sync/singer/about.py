"""What ``tap-listrak --about`` prints: name, version, capabilities and settings.

The JSON form has the keys the Meltano SDK's ``--about --format=json`` has (``name``,
``description``, ``version``, ``capabilities``, ``settings`` as a JSON schema), so Meltano
and MeltanoHub can read it; the Markdown form is for people. The settings are the ``tap`` keys
of :data:`listrak_sync.settings_table.SETTINGS`, with their types, defaults and descriptions
from there: the keys ``singer-io/tap-listrak`` reads (``username``, ``password``,
``start_date``, ``interval_days``), our optional tuning keys, and the tap's own options
(:data:`TAP_OPTIONS`, such as ``typed_event_dates``).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from listrak_sync import __version__
from listrak_sync.settings import Settings
from listrak_sync.settings_table import Setting, Surface, settings_of

NAME = "tap-listrak"
DESCRIPTION = (
    "Singer tap for Listrak email marketing (SOAP API v31): lists, messages, per-message "
    "sends, opens, reads, clicks, unsubscribes and bounces, and subscribed contacts. "
    "A drop-in replacement for singer-io/tap-listrak, with concurrent extraction."
)
CAPABILITIES = ("catalog", "properties", "discover", "state", "about", "test")
_TAP_KEYS = settings_of(Surface.TAP)
REQUIRED = tuple(setting.field_name for setting in _TAP_KEYS if setting.required)


def _schema(setting: Setting) -> dict[str, Any]:
    schema = setting.type.json_schema
    schema["description"] = setting.description
    if setting.default is not None:
        schema["default"] = setting.default
    if setting.secret:
        schema.update(secret=True, writeOnly=True)
    if setting.limits is not None:
        schema.update(minimum=setting.limits[0], maximum=setting.limits[1])
    return schema


# Settings of the tap alone (not of :class:`Settings`): how records are shaped.
TAP_OPTIONS: dict[str, dict[str, Any]] = {
    setting.field_name: _schema(setting) for setting in _TAP_KEYS if Surface.LIBRARY not in setting.surfaces
}


def tap_settings() -> list[dataclasses.Field[Any]]:
    """The :class:`Settings` fields a tap config may hold, in their declaration order."""
    names = {setting.field_name for setting in _TAP_KEYS}
    return [f for f in dataclasses.fields(Settings) if f.name in names]


def settings_schema() -> dict[str, Any]:
    """The tap's config as a JSON schema (``settings`` in ``--about --format json``)."""
    properties = {setting.field_name: _schema(setting) for setting in _TAP_KEYS}
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
