"""An adaptive ceiling on requests in flight, shared by every thread of one client.

Listrak documents no rate limit (docs/listrak-api.md §8.3), so the client starts at the configured
concurrency and lets the service tell it when that is too much: an overload signal (HTTP
503/429, a timeout) halves the ceiling, and each success raises it by one again, never above
the configured maximum and never below one. Several requests that were already in flight
when the service got overloaded all report it; they count as one signal, so a burst of 503s
halves the ceiling once rather than collapsing it to one; and only requests that started
after the last halving may raise it again, so the in-flight ones cannot undo it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Slot:
    """One request's permission to be in flight; report how it went before leaving."""

    __slots__ = ("epoch", "outcome")

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.outcome: str | None = None

    def succeeded(self) -> None:
        """The service answered without signalling overload."""
        self.outcome = "success"

    def overloaded(self) -> None:
        """The service signalled overload (503/429, or a timeout)."""
        self.outcome = "overload"


class AdaptiveLimiter:
    """A thread-safe, self-adjusting limit on concurrent requests.

    Args:
        maximum: the configured concurrency; the limit starts and tops out here.
    """

    def __init__(self, maximum: int) -> None:
        if maximum < 1:
            raise ValueError(f"maximum must be >= 1, got {maximum}")
        self.maximum = maximum
        self._limit = maximum
        self._in_flight = 0
        self._epoch = 0
        self._lowest = maximum
        self._decreases = 0
        self._condition = threading.Condition()

    @property
    def limit(self) -> int:
        """Requests allowed in flight right now."""
        return self._limit

    @property
    def in_flight(self) -> int:
        """Requests in flight right now."""
        return self._in_flight

    def snapshot(self) -> dict[str, int]:
        """Current limit, lowest limit reached, and how many times it was lowered."""
        with self._condition:
            return {"limit": self._limit, "lowest": self._lowest, "decreases": self._decreases}

    @contextmanager
    def slot(self) -> Iterator[Slot]:
        """Wait for room, then hold one place in flight for the ``with`` block.

        The block calls :meth:`Slot.succeeded` or :meth:`Slot.overloaded`; a block that ends
        without either (an error that says nothing about load) leaves the limit as it is.
        """
        with self._condition:
            while self._in_flight >= self._limit:
                self._condition.wait()
            self._in_flight += 1
            slot = Slot(self._epoch)
        try:
            yield slot
        finally:
            with self._condition:
                self._in_flight -= 1
                if slot.outcome == "overload" and slot.epoch == self._epoch:
                    self._limit = max(1, self._limit // 2)
                    self._epoch += 1
                    self._decreases += 1
                    self._lowest = min(self._lowest, self._limit)
                elif slot.outcome == "success" and slot.epoch == self._epoch and self._limit < self.maximum:
                    # Only a request sent under the current limit proves it: the successes of
                    # requests already in flight at a halving would undo it at once.
                    self._limit += 1
                self._condition.notify_all()


__all__ = ["AdaptiveLimiter", "Slot"]
