"""One tap sync: drive the :class:`~listrak_sync.extract.Extractor` and emit Singer messages.

The order follows the streams' parents: ``lists``, then ``messages`` of every list (windowed
from ``start_date``), then the six per-message activity streams, fetched concurrently by the
extractor under its one bounded limit, then ``subscribed_contacts`` list by list. A parent is
fetched whenever a selected stream needs it and emitted only when it is selected itself.

Everything is written from the calling thread: the extractor's workers only fetch, and its
iterator hands each finished (stream, message) table back here, so lines never interleave.
Bookmarks and checkpoints are :mod:`listrak_sync.singer.state`'s; this module only reports to it
which parents are done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import pyarrow as pa

from listrak_sync.extract import ACTIVITY_STREAMS, Extractor, column_ints
from listrak_sync.singer.catalog import Selection, key_properties, selected_schema
from listrak_sync.singer.output import SingerWriter, iter_records
from listrak_sync.singer.state import TapState
from listrak_sync.streams import STREAMS, Stream, get_stream

log = logging.getLogger(__name__)

LISTS, MESSAGES, SUBSCRIBED_CONTACTS = get_stream("lists"), get_stream("messages"), get_stream("subscribed_contacts")
SENDS = get_stream("message_sends")
# Activity is fetched in calls of about this many (stream, message) pairs per worker; each
# call's end is a checkpoint. Larger calls idle fewer workers at their tail, smaller ones
# checkpoint more often (the extractor's tables do not say which message an empty one was for).
PAIRS_PER_WORKER = 16

MessageKey = tuple[datetime, int]  # (SendDate, MsgID): the order messages are worked through


@dataclass
class _Progress:
    """Which of one stream's messages are done, and the prefix of its order that is complete."""

    order: list[MessageKey]
    done: set[int] = field(default_factory=set)
    complete: int = 0  # order[:complete] are all done

    def advance(self) -> bool:
        """Move past done messages; True if the complete prefix grew."""
        before = self.complete
        while self.complete < len(self.order) and self.order[self.complete][1] in self.done:
            self.complete += 1
        return self.complete > before

    @property
    def last(self) -> MessageKey | None:
        return self.order[self.complete - 1] if self.complete else None


@dataclass(frozen=True)
class _Batch:
    """One ``message_activity`` call: these streams for these messages from one start."""

    streams: tuple[Stream, ...]
    messages: tuple[MessageKey, ...]
    start: datetime | None


class TapSync:
    """Runs one sync.

    Args:
        extractor: reads the account (its settings hold the start date and concurrency).
        selection: the selected streams and properties.
        state: bookmarks to continue from; advanced as records go out.
        writer: where Singer messages go.
        typed_event_dates: SCHEMA types the event dates as ``date-time`` (the extractor's client
            must then parse them too; by default they are text, see ``catalog.text_dates``).
    """

    def __init__(
        self,
        extractor: Extractor,
        selection: Selection,
        state: TapState,
        writer: SingerWriter,
        *,
        typed_event_dates: bool = False,
    ) -> None:
        self.extractor = extractor
        self.selection = selection
        self.state = state
        self.writer = writer
        self.typed_event_dates = typed_event_dates
        self.list_of: dict[int, int] = {}  # MsgID -> ListID of this run's messages

    def run(self) -> None:
        """Emit SCHEMA for every selected stream, then the records and STATE checkpoints.

        Raises:
            ListrakSyncError: the run failed (STATE written so far stays valid).
        """
        for stream in STREAMS:
            if stream.name in self.selection:
                schema = selected_schema(stream, self._properties(stream), typed_event_dates=self.typed_event_dates)
                self.writer.schema(stream.name, schema, key_properties(stream))
        if not self.selection.streams:
            log.warning("No stream is selected in the catalog: nothing to sync.")
        else:
            lists = self.extractor.lists()
            self._emit(LISTS, lists)
            list_ids = sorted(column_ints(lists, "ListID"))
            activity = [s for s in ACTIVITY_STREAMS if s.name in self.selection]
            if MESSAGES.name in self.selection or activity:
                messages = self._messages(list_ids, activity)
                self._activity(activity, messages)
            if SUBSCRIBED_CONTACTS.name in self.selection:
                self._subscribed_contacts(list_ids)
        for error in self.extractor.skipped:
            log.warning("Skipped: %s", error)
        self.writer.state(self.state.value)

    # -- emission ---------------------------------------------------------------------------------

    def _properties(self, stream: Stream) -> tuple[str, ...]:
        return tuple(self.selection.properties[stream.name])

    def _emit(self, stream: Stream, table: pa.Table) -> None:
        if stream.name in self.selection:
            self.writer.records(stream.name, iter_records(table, stream, self._properties(stream)))

    # -- messages and their activity ----------------------------------------------------------------

    def _messages(self, list_ids: Sequence[int], activity: Sequence[Stream]) -> list[MessageKey]:
        keys: list[MessageKey] = []
        for list_id, table in zip(list_ids, self.extractor.messages_of(list_ids), strict=True):
            self._emit(MESSAGES, table)
            msg_ids = column_ints(table, "MsgID")
            keys += zip(table.column("SendDate").to_pylist(), msg_ids, strict=True)
            self.list_of.update(dict.fromkeys(msg_ids, list_id))
        refused = sorted({e.object_id for e in self.extractor.skipped if e.kind == "list" and e.object_id is not None})
        for stream in activity:  # their messages are unknown: the whole list waits for access
            for list_id in refused:
                self.state.refuse_list(stream.name, list_id)
        log.info("%d messages in %d lists.", len(keys), len(list_ids))
        return sorted(keys)

    def _activity(self, streams: Sequence[Stream], messages: Sequence[MessageKey]) -> None:
        if not streams:
            return
        batches = self._plan(streams, messages)
        # Sorted: a checkpoint claims every message up to its key, whatever order batches ran in.
        progress = {
            s.name: _Progress(sorted(k for b in batches if s in b.streams for k in b.messages)) for s in streams
        }
        size = max(1, self.extractor.settings.concurrency * PAIRS_PER_WORKER // len(streams))
        for batch in batches:
            for first in range(0, len(batch.messages), size):
                keys = batch.messages[first : first + size]
                msg_ids = [msg_id for _, msg_id in keys]
                for stream, table in self.extractor.message_activity(batch.streams, msg_ids, batch.start):
                    self._emit(stream, table)
                # The call is over: every pair came back, or was refused and recorded as skipped.
                refused = self.extractor.refused_messages()
                for key in keys:
                    if key[1] in refused:  # it keeps its own start until access returns
                        for stream in batch.streams:
                            self.state.refuse_message(stream.name, key, self.list_of[key[1]])
                for stream in batch.streams:
                    progress[stream.name].done.update(msg_ids)
                self._checkpoint_activity(progress)
        for stream in streams:
            self.state.complete(stream.name)
        self.writer.state(self.state.value)

    def _checkpoint_activity(self, progress: dict[str, _Progress]) -> None:
        moved = False
        for name, tracker in progress.items():
            if not tracker.advance() or tracker.last is None:
                continue
            moved = True
            if name == SENDS.name:
                self.state.advance_sends(tracker.last[0])
            else:
                self.state.checkpoint(name, tracker.last)
        if moved:
            self.writer.state(self.state.value)

    def _plan(self, streams: Sequence[Stream], messages: Sequence[MessageKey]) -> list[_Batch]:
        """Group (stream, message) pairs into as few extractor calls as their start dates allow.

        Every message is asked on every run, from its range start (``since - lookback``, see
        :mod:`listrak_sync.singer.state`): a counter that stood still is no proof that nothing
        new is visible (issue #9: events that become visible late, repeat opens under unique
        counters), and a per-message memory would make STATE grow with the account.
        """
        by_part: dict[tuple[datetime | None, tuple[MessageKey, ...]], list[Stream]] = {}
        for stream in streams:
            if stream is SENDS:
                continue
            start_of = partial(self._range_start, stream.name)
            for start, part in _runs(messages, start_of):
                by_part.setdefault((start, part), []).append(stream)
        batches = [_Batch(tuple(s), part, start) for (start, part), s in by_part.items()]
        if SENDS in streams:
            part = tuple(k for k in messages if self.state.wants_sends(k, self.list_of[k[1]]))
            # Sends ignore dates: they ride along with any batch over the same messages.
            for i, batch in enumerate(batches):
                if batch.messages == part:
                    batches[i] = _Batch((*batch.streams, SENDS), part, batch.start)
                    break
            else:
                batches.append(_Batch((SENDS,), part, None))
        return sorted((b for b in batches if b.messages), key=lambda b: b.messages[0])

    def _range_start(self, stream: str, key: MessageKey) -> datetime:
        return self.state.range_start(stream, key, self.list_of[key[1]])

    # -- subscribed contacts ------------------------------------------------------------------------

    def _subscribed_contacts(self, list_ids: Sequence[int]) -> None:
        for list_id in list_ids:
            start = self.state.range_start(SUBSCRIBED_CONTACTS.name, (list_id,))
            for table in self.extractor.subscribed_contacts(list_id, start):
                self._emit(SUBSCRIBED_CONTACTS, table)
            self.state.checkpoint(SUBSCRIBED_CONTACTS.name, (list_id,))
            self.writer.state(self.state.value)
        self.state.complete(SUBSCRIBED_CONTACTS.name)


def _runs(
    messages: Sequence[MessageKey], start_of: Callable[[MessageKey], datetime | None]
) -> list[tuple[datetime | None, tuple[MessageKey, ...]]]:
    """Split ordered messages into consecutive runs that share a start date."""
    runs: list[tuple[datetime | None, list[MessageKey]]] = []
    for key in messages:
        start = start_of(key)
        if runs and runs[-1][0] == start:
            runs[-1][1].append(key)
        else:
            runs.append((start, [key]))
    return [(start, tuple(keys)) for start, keys in runs]


__all__ = ["PAIRS_PER_WORKER", "TapSync"]
