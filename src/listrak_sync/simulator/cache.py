"""Row containers of the simulator's account: a read-only slice view and a size-bounded LRU cache."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator, Sequence
from typing import Generic, TypeVar, overload

__all__ = ["RowsView", "SizedLRU"]

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


class RowsView(Sequence[dict]):
    """A read-only window ``rows[start:stop]`` of a cached row list, without copying it."""

    __slots__ = ("_rows", "_start", "_stop")

    def __init__(self, rows: list[dict], start: int = 0, stop: int | None = None) -> None:
        self._rows, self._start = rows, start
        self._stop = len(rows) if stop is None else max(start, stop)

    def __len__(self) -> int:
        return self._stop - self._start

    @overload
    def __getitem__(self, index: int) -> dict: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict]: ...
    def __getitem__(self, index: int | slice) -> dict | list[dict]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            return self._rows[self._start + start:self._start + stop:step]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._rows[self._start + index]

    def __iter__(self) -> Iterator[dict]:
        for i in range(self._start, self._stop):
            yield self._rows[i]

    def __repr__(self) -> str:
        return f"RowsView({len(self)} rows)"


class SizedLRU(Generic[_K, _V]):
    """Least-recently-used cache bounded by the total ``size`` of its entries."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self._entries: OrderedDict[_K, tuple[_V, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: _K) -> _V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: _K, value: _V, size: int) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.used -= old[1]
            self._entries[key] = (value, size)
            self.used += size
            # The newest entry stays even when it alone is over budget.
            while self.used > self.budget and len(self._entries) > 1:
                _, (_, evicted) = self._entries.popitem(last=False)
                self.used -= evicted
