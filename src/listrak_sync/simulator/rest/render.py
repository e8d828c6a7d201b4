"""JSON as the REST service writes it: envelopes (REST.md §3.1) and values (§3.2).

Dates are ``YYYY-MM-DDTHH:MM:SS[.fff]`` with no offset, on the service's wall clock; keys stay
in model order; floats keep a decimal point. The pessimistic profile adds unknown fields to
every item (§10.15).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from listrak_sync.simulator.render import format_datetime

UNAUTHORIZED = {"status": 401, "error": "ERROR_UNAUTHORIZED", "message": "Authorization was denied for this request."}


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_datetime(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(payload: Any) -> bytes:
    """The body bytes of ``payload`` (UTF-8, no ASCII escaping, as Json.NET writes)."""
    return json.dumps(payload, default=_default, ensure_ascii=False, separators=(",", ":")).encode()


def error(status: int, code: str, message: str) -> dict[str, Any]:
    """The ``Error`` envelope."""
    return {"status": status, "error": code, "message": message}


def not_found(names: list[str]) -> dict[str, Any]:
    """404 for ids that do not resolve, naming every id of the route (REST.md §3.4)."""
    if len(names) == 1:
        joined = names[0]
    elif len(names) == 2:
        joined = f"{names[0]} and {names[1]}"
    else:
        joined = ", ".join(names[:-1]) + ", and " + names[-1]
    return error(404, "ERROR_UNABLE_TO_LOCATE_RESOURCE",
                 f"Unable to locate a resource associated with the {joined} supplied.")


def with_extras(item: dict[str, Any]) -> dict[str, Any]:
    """``item`` with fields a client has never heard of (it must ignore them)."""
    return {**item, "lastModifiedDate": datetime(2026, 1, 2, 3, 4, 5), "simulatorTags": ["unknown-field"]}
