"""The adaptive in-flight limit: halves on overload (once per burst), recovers by one per success."""

from __future__ import annotations

import threading
import time

import pytest

from listrak_sync.wire.limiter import AdaptiveLimiter


def test_halves_once_per_burst_and_recovers_one_step_per_success() -> None:
    limiter = AdaptiveLimiter(8)
    slots = [limiter.slot() for _ in range(4)]
    entered = [cm.__enter__() for cm in slots]
    for slot in entered:
        slot.overloaded()
    for cm in slots:  # four requests in flight all saw the same overload: one halving
        cm.__exit__(None, None, None)
    assert limiter.limit == 4 and limiter.snapshot()["decreases"] == 1
    for expected in (2, 1, 1):
        with limiter.slot() as slot:
            slot.overloaded()
        assert limiter.limit == expected
    for expected in (2, 3, 4, 5, 6, 7, 8, 8):
        with limiter.slot() as slot:
            slot.succeeded()
        assert limiter.limit == expected
    with limiter.slot():
        pass  # an outcome that says nothing about load changes nothing
    assert limiter.limit == 8 and limiter.snapshot() == {"limit": 8, "lowest": 1, "decreases": 4}


def test_in_flight_never_exceeds_the_limit_under_threads() -> None:
    limiter = AdaptiveLimiter(3)
    peak = 0
    lock = threading.Lock()

    def worker(n: int) -> None:
        nonlocal peak
        with limiter.slot() as slot:
            with lock:
                peak = max(peak, limiter.in_flight)
            time.sleep(0.002)
            if n % 7 == 0:
                slot.overloaded()
            else:
                slot.succeeded()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(60)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert peak <= 3 and limiter.in_flight == 0 and 1 <= limiter.limit <= 3


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        AdaptiveLimiter(0)


def test_requests_in_flight_at_a_halving_do_not_undo_it() -> None:
    limiter = AdaptiveLimiter(8)
    slots = [limiter.slot() for _ in range(8)]
    entered = [cm.__enter__() for cm in slots]
    entered[0].overloaded()
    slots[0].__exit__(None, None, None)
    assert limiter.limit == 4
    for slot, cm in zip(entered[1:], slots[1:], strict=True):  # the 7 sent under the old limit
        slot.succeeded()
        cm.__exit__(None, None, None)
    assert limiter.limit == 4
    with limiter.slot() as slot:  # one sent under the new limit proves it
        slot.succeeded()
    assert limiter.limit == 5
