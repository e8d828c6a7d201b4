"""Query parameters of the REST routes: dates (REST.md §3.6), count and cursor (§3.5), booleans.

Every refusal is a :class:`RestError` that the service turns into Listrak's ``Error`` envelope.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime

from listrak_sync.simulator.envelope import parse_datetime

DEFAULT_COUNT = 1000
MAX_COUNT = 5000
_US_DATE = re.compile(r"\s*(\d{1,2})/(\d{1,2})/(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])?)?\s*$")


class RestError(Exception):
    """A refused request: HTTP ``status``, Listrak ``code`` and ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def invalid(name: str) -> RestError:
    """400 ERROR_INVALID_PARAMETER naming the parameter, in the spec's wording."""
    return RestError(400, "ERROR_INVALID_PARAMETER", f"An invalid value was supplied for {name}.")


def parse_date(name: str, text: str, to_local: Callable[[datetime], datetime] | None) -> datetime:
    """A date parameter in any form REST.md §3.6 lists, as a service wall time.

    ``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM:SS[.f...]``, with ``Z`` or an offset (converted to the
    service's zone by ``to_local``), and ``MM/DD/YYYY[ h:mm[:ss] [AM|PM]]``.

    Raises:
        RestError: anything else.
    """
    match = _US_DATE.match(text)
    try:
        if match:
            month, day, year, hour, minute, second, half = match.groups()
            h = int(hour or 0)
            if half:
                h = h % 12 + (12 if half.lower() == "pm" else 0)
            return datetime(int(year), int(month), int(day), h, int(minute or 0), int(second or 0))
        return parse_datetime(text, to_local)
    except ValueError:
        raise invalid(name) from None


def parse_bool(name: str, text: str | None, default: bool) -> bool:
    """``true``/``false`` in any case (400 otherwise)."""
    if text is None:
        return default
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise invalid(name)
    return lowered == "true"


def parse_count(text: str | None, clamp: bool) -> int:
    """The page size: 1000 by default, at most 5000 (more: 400, or 5000 when ``clamp``)."""
    if text is None or text == "":
        return DEFAULT_COUNT
    try:
        count = int(text.strip())
    except ValueError:
        raise invalid("count") from None
    if count < 1:
        raise invalid("count")
    if count > MAX_COUNT:
        if not clamp:
            raise invalid("count")
        return MAX_COUNT
    return count


def fingerprint(path: str, query: Mapping[str, str]) -> str:
    """What a cursor is bound to: the route and every filter but ``cursor`` and ``count``."""
    kept = sorted((k.lower(), v) for k, v in query.items() if k.lower() not in ("cursor", "count"))
    return hashlib.blake2b(repr((path.lower(), kept)).encode(), digest_size=6).hexdigest()


def make_cursor(bound_to: str, offset: int) -> str:
    """An opaque, URL-safe cursor for the page starting at ``offset``."""
    raw = json.dumps({"q": bound_to, "o": offset}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_cursor(text: str | None, bound_to: str) -> int:
    """The offset a cursor points at (0 for ``Start`` or none).

    Raises:
        RestError: a garbled cursor, or one made for other filters (400).
    """
    if text is None or text == "" or text.lower() == "start":
        return 0
    try:
        raw = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        offset = int(raw["o"])
        if raw["q"] != bound_to or offset < 0:
            raise ValueError("another query's cursor")
    except (ValueError, KeyError, TypeError):
        raise invalid("cursor") from None
    return offset
