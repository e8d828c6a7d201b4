"""Faults on demand: latency, transient failures and a concurrency ceiling, reproducible from a seed.

Every SOAP request that gets past the concurrency ceiling draws, in arrival order, from a
``random.Random(fault_seed)``: first whether it fails (probability ``fail_rate``), then which
of ``fault_kinds`` it gets. Latency jitter draws from a second generator, so changing the
jitter never changes which requests fail. A single-threaded client therefore sees the same
faults on the same calls in every run with the same seed.

Fault kinds:

==============  ==========================================================================
``server_fault``  HTTP 500 with a ``soap:Server`` fault and no Listrak token
``unavailable``   HTTP 503 (what IIS answers when the application pool is overloaded)
``drop``          the connection is closed without any response
``truncated``     HTTP 200 whose XML body is cut off half way
``slow``          the right answer, after ``slow_seconds`` (longer than any sane timeout)
==============  ==========================================================================

Requests beyond ``max_concurrency`` in flight are answered 503 at once, before any draw.

An outage (``outage_seconds = N``, or ``POST /_simulator/faults {"outage_seconds": N}``) answers
every SOAP request with HTTP 503 for the next N seconds, without latency and without drawing
from the fault sequence; each such answer counts as an ``unavailable`` fault. Reading
``outage_seconds`` gives the seconds left; setting it to 0 ends the outage. Starting an outage
does not restart the fault sequence.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

FAULT_KINDS: tuple[str, ...] = ("server_fault", "unavailable", "drop", "truncated", "slow")


@dataclass(frozen=True)
class FaultPlan:
    """What happens to one request: how long to wait first, and which fault (if any)."""

    delay_seconds: float
    kind: str | None


def _non_negative(name: str) -> Any:
    def check(value: Any) -> float:
        number = float(value)
        if number < 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
        return number

    return check


def _rate(value: Any) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"fail_rate must be between 0 and 1, got {value!r}")
    return rate


def _kinds(value: Iterable[str] | str | None) -> tuple[str, ...]:
    if value is None:
        return FAULT_KINDS
    kinds = tuple(k.strip() for k in value.split(",")) if isinstance(value, str) else tuple(value)
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown or not kinds:
        got = ", ".join(kinds) or "none"
        raise ValueError(f"fault kinds must be among {', '.join(FAULT_KINDS)}; got {got}")
    return kinds


def _ceiling(value: Any) -> int | None:
    if value is None:
        return None
    ceiling = int(value)
    if ceiling < 1:
        raise ValueError(f"max_concurrency must be >= 1 or None, got {value!r}")
    return ceiling


_VALIDATORS: dict[str, Any] = {
    "latency_ms": _non_negative("latency_ms"),
    "jitter_ms": _non_negative("jitter_ms"),
    "fail_rate": _rate,
    "fault_kinds": _kinds,
    "fault_seed": int,
    "max_concurrency": _ceiling,
    "slow_seconds": _non_negative("slow_seconds"),
    "outage_seconds": _non_negative("outage_seconds"),
}
SETTINGS: tuple[str, ...] = tuple(_VALIDATORS)


class FaultInjector:
    """Live fault settings of a running simulator, and the seeded decisions they make.

    Settings can be changed while the server runs, by attribute (``faults.fail_rate = 0.1``,
    validated) or all at once with :meth:`configure`, which also restarts the random
    sequence from ``fault_seed``. Thread-safe.
    """

    latency_ms: float
    jitter_ms: float
    fail_rate: float
    fault_kinds: tuple[str, ...]
    fault_seed: int
    max_concurrency: int | None
    slow_seconds: float
    _lock: threading.Lock
    _in_flight: int
    _outage_until: float
    _fault_rng: random.Random
    _latency_rng: random.Random

    def __init__(
        self,
        *,
        latency_ms: float = 0.0,
        jitter_ms: float = 0.0,
        fail_rate: float = 0.0,
        fault_kinds: Iterable[str] | str | None = None,
        fault_seed: int = 0,
        max_concurrency: int | None = None,
        slow_seconds: float = 30.0,
    ) -> None:
        """Create the injector; every argument is a setting of the same name (see module doc).

        Raises:
            ValueError: a setting is out of range or names an unknown fault kind.
        """
        self._lock = threading.Lock()
        self._in_flight = 0
        self._outage_until = 0.0
        self.configure(
            latency_ms=latency_ms,
            jitter_ms=jitter_ms,
            fail_rate=fail_rate,
            fault_kinds=fault_kinds,
            fault_seed=fault_seed,
            max_concurrency=max_concurrency,
            slow_seconds=slow_seconds,
        )

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        if name not in _VALIDATORS:
            raise AttributeError(f"unknown fault setting {name!r}; settings are {', '.join(SETTINGS)}")
        if name == "outage_seconds":
            self._start_outage(_VALIDATORS[name](value))
            return
        object.__setattr__(self, name, _VALIDATORS[name](value))
        if name == "fault_seed":
            self._reseed()

    def configure(self, **changes: Any) -> None:
        """Change any settings at once and restart the random sequences from ``fault_seed``.

        ``outage_seconds`` starts (or, with 0, ends) an outage; given alone, it leaves the
        random sequences where they are.

        Raises:
            ValueError: a value is invalid (nothing is changed then).
            TypeError: an unknown setting name.
        """
        unknown = set(changes) - set(_VALIDATORS)
        if unknown:
            raise TypeError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        checked = {name: _VALIDATORS[name](value) for name, value in changes.items()}
        outage = checked.pop("outage_seconds", None)
        with self._lock:
            for name, value in checked.items():
                object.__setattr__(self, name, value)
        if outage is not None:
            self._start_outage(outage)
        if checked or outage is None:
            self._reseed()

    @property
    def outage_seconds(self) -> float:
        """Seconds left of the current outage (0 when there is none)."""
        return max(0.0, self._outage_until - time.monotonic())

    def _start_outage(self, seconds: float) -> None:
        with self._lock:
            self._outage_until = time.monotonic() + seconds if seconds else 0.0

    def _reseed(self) -> None:
        with self._lock:
            self._fault_rng = random.Random(self.fault_seed)
            self._latency_rng = random.Random(f"latency-{self.fault_seed}")

    def settings(self) -> dict[str, Any]:
        """The current settings as a JSON-ready dict."""
        values = {name: getattr(self, name) for name in SETTINGS}
        values["fault_kinds"] = list(self.fault_kinds)
        return values

    def plan(self) -> FaultPlan:
        """Draw the latency and the fault (if any) for the next request (503 during an outage)."""
        with self._lock:
            if time.monotonic() < self._outage_until:
                return FaultPlan(0.0, "unavailable")
            delay = self.latency_ms
            if self.jitter_ms:
                delay += self._latency_rng.uniform(0.0, self.jitter_ms)
            kind = None
            if self.fail_rate and self._fault_rng.random() < self.fail_rate:
                kind = self.fault_kinds[self._fault_rng.randrange(len(self.fault_kinds))]
        return FaultPlan(delay / 1000.0, kind)

    def try_enter(self) -> bool:
        """Count one more request in flight, unless the ceiling is reached (then False)."""
        with self._lock:
            if self.max_concurrency is not None and self._in_flight >= self.max_concurrency:
                return False
            self._in_flight += 1
            return True

    def leave(self) -> None:
        """Count one request fewer in flight."""
        with self._lock:
            self._in_flight -= 1

    @property
    def in_flight(self) -> int:
        """SOAP requests being served right now."""
        return self._in_flight
