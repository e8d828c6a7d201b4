"""The one retry policy of both clients: full-jitter backoff within max_retries and a time budget.

::

    Retrier.run(operation, attempt)   attempt() until it returns; a TransientError waits
                                      backoff(attempt) and tries again, until max_retries or
                                      retry_budget_seconds runs out; any other error is raised
                                      at once. A wait of a second or more is a WARNING saying
                                      what it waits for; shorter ones (common under load) INFO.
    Retrier.backoff(attempt, error)   uniform in [0, min(backoff_max, backoff_base * 2**(n-1))],
                                      at least the server's Retry-After (capped at backoff_max)

Every error is scrubbed (the client's secrets redacted) and counted before it goes on.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import TypeVar

from listrak_sync.errors import ListrakSyncError, ServiceUnavailableError, TransientError
from listrak_sync.settings import Settings
from listrak_sync.wire.connection import public_type
from listrak_sync.wire.stats import ClientStats

T = TypeVar("T")
# A wait this long is said on stderr (a WARNING), so that no command sits silent; shorter ones,
# common under load, are logged at INFO only.
ANNOUNCED_WAIT_SECONDS = 1.0


class Retrier:
    """Runs one request's attempts under the settings' retry policy.

    Args:
        settings: ``max_retries``, ``retry_budget_seconds``, ``backoff_base``, ``backoff_max``.
        stats: counts faults (by error class) and retries.
        sleep: how to wait between attempts.
        rng: the source of jitter.
        clock: seconds on a monotonic clock, for the budget.
        scrub: redacts the client's secrets from an error's message, in place.
        log: the client's logger, which says what each wait is for.
    """

    def __init__(self, settings: Settings, stats: ClientStats, *, sleep: Callable[[float], None],
                 rng: random.Random, clock: Callable[[], float], scrub: Callable[[BaseException], None],
                 log: logging.Logger) -> None:
        self._settings = settings
        self._stats = stats
        self._sleep = sleep
        self._rng = rng
        self._clock = clock
        self._scrub = scrub
        self._log = log

    def run(self, operation: str, attempt: Callable[[], T], *,
            allowed: Callable[[TransientError, int], int] | None = None) -> T:
        """``attempt()``'s result, retrying transient errors with backoff.

        Args:
            operation: what is asked, for messages.
            attempt: one try; raises a :class:`TransientError` for what may pass.
            allowed: how many attempts this error allows in all, given the configured number
                (default: the configured number, ``max_retries + 1``).

        Raises:
            TransientError: the last one, as its public class, once the attempts or the budget
                ran out, saying how many were made.
            ListrakSyncError: any other, at once.
        """
        attempts, budget = self._settings.max_retries + 1, self._settings.retry_budget_seconds
        started = self._clock()
        count = 0
        while True:
            count += 1
            try:
                return attempt()
            except TransientError as exc:
                self._scrub(exc)
                self._stats.count_fault(public_type(exc).__name__)
                delay = self.backoff(count, exc)
                spent = self._clock() - started
                limit = allowed(exc, attempts) if allowed is not None else attempts
                if count >= limit or spent + delay > budget:
                    raise public_type(exc)(
                        f"{exc} Gave up after {count} attempts in {spent:.0f} s (max_retries "
                        f"{attempts - 1}, retry_budget_seconds {budget:g})."
                    ) from exc
                self._stats.count_retry()
                if delay >= ANNOUNCED_WAIT_SECONDS:
                    self._log.warning("Waiting %.0f s before retry %d of %s: %s", delay, count, operation, exc)
                else:
                    self._log.info("%s failed (%s); retry %d in %.2fs", operation, exc, count, delay)
                self._sleep(delay)
            except ListrakSyncError as exc:
                self._scrub(exc)
                self._stats.count_fault(public_type(exc).__name__)
                raise

    def backoff(self, attempt: int, error: BaseException) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**(attempt-1))], at least Retry-After."""
        settings = self._settings
        ceiling = min(settings.backoff_max, settings.backoff_base * 2 ** min(attempt - 1, 32))
        delay = self._rng.uniform(0.0, ceiling)
        retry_after = getattr(error, "retry_after", None)
        if retry_after:
            delay = max(delay, min(retry_after, settings.backoff_max))
        return delay


class Overloaded(ServiceUnavailableError):
    """HTTP 429/503 from either API; remembers the server's Retry-After for the backoff."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header in seconds, or None where it is missing or not a number."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


__all__ = ["ANNOUNCED_WAIT_SECONDS", "Overloaded", "Retrier", "retry_after_seconds"]
