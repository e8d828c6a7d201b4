"""One tap sync: the engine's work units, fetched by the extractor, emitted as Singer messages.

The order follows the streams' parents: ``lists``, then the ``messages`` of every list (asked
as far back as the engine says), then the work units of the six per-message activity streams
(:class:`~listrak_sync.engine.sync.SyncEngine`, the same plan as ``listrak-sync run``), fetched
concurrently under the extractor's one bounded limit, then ``subscribed_contacts`` (every list,
in full). A parent is fetched whenever a selected stream needs it and emitted only when it is
selected itself.

Everything is written from the calling thread: the extractor's workers only fetch, and its
iterator hands each page back here, so lines never interleave. A unit is recorded in the plan
once all its pages are written; STATE (the plan, packed by :mod:`listrak_sync.engine.state`)
goes out every :data:`UNITS_PER_CHECKPOINT` finished units per worker and at the end of each stream, so
a run killed at any moment continues from its last STATE with nothing missing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

import pyarrow as pa

from listrak_sync.engine.plan import PLAN_COLUMNS
from listrak_sync.engine.state import SingerState
from listrak_sync.engine.sync import Policy, SyncEngine, WorkUnit, newest_events
from listrak_sync.extract import ACTIVITY_STREAMS, Extractor, arrow_schema, column_ints
from listrak_sync.singer.catalog import Selection, key_properties, selected_schema
from listrak_sync.singer.output import SingerWriter, iter_records
from listrak_sync.streams import STREAMS, Stream, get_stream

log = logging.getLogger(__name__)

LISTS, MESSAGES, SUBSCRIBED_CONTACTS = get_stream("lists"), get_stream("messages"), get_stream("subscribed_contacts")
# Finished work units between two STATE messages while activity runs, per worker: a killed
# run redoes at most about this many units per worker; a STATE is a few KB.
UNITS_PER_CHECKPOINT = 4


class TapSync:
    """Runs one sync.

    Args:
        extractor: reads the account (its settings hold the start date and concurrency).
        selection: the selected streams and properties.
        state: the STATE the run continues from.
        writer: where Singer messages go.
        start: the start date, an aware instant.
        typed_event_dates: SCHEMA types the event dates as ``date-time`` (the extractor's client
            must then parse them too; by default they are text, see ``catalog.text_dates``).
    """

    def __init__(
        self,
        extractor: Extractor,
        selection: Selection,
        state: SingerState,
        writer: SingerWriter,
        *,
        start: datetime,
        typed_event_dates: bool = False,
    ) -> None:
        self.extractor = extractor
        self.selection = selection
        self.state = state
        self.writer = writer
        self.typed_event_dates = typed_event_dates
        activity = [s for s in ACTIVITY_STREAMS if s.name in selection]
        self.engine = SyncEngine(state.plan, policy=Policy.from_settings(extractor.settings), streams=activity,
                                 start=start, appends=True, resume_since=state.resume_since)

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
            # The run's `now` (the extractor's clock, fixed at its first reading) comes after the
            # first answer: by default it is the service's time, from that answer's Date header.
            self.extractor.client.learn_page_sizes(self.engine.page_sizes(self.extractor.now()))
            self._emit(LISTS, lists)
            list_ids = sorted(column_ints(lists, "ListID"))
            if MESSAGES.name in self.selection or self.engine.streams:
                messages = self._messages(list_ids)
                self._activity(messages)
            if SUBSCRIBED_CONTACTS.name in self.selection:
                for page in self.extractor.subscribed_contacts_of(list_ids):
                    self._emit(SUBSCRIBED_CONTACTS, page)
                self.state.complete(SUBSCRIBED_CONTACTS.name, self.extractor.now())
        for error in self.extractor.skipped:
            log.warning("Skipped: %s", error)
        self._checkpoint()

    # -- emission ---------------------------------------------------------------------------------

    def _properties(self, stream: Stream) -> tuple[str, ...]:
        return tuple(self.selection.properties[stream.name])

    def _emit(self, stream: Stream, table: pa.Table) -> None:
        if stream.name in self.selection:
            self.writer.records(stream.name, iter_records(table, stream, self._properties(stream)))

    def _checkpoint(self) -> None:
        self.engine.remember_page_sizes(self.extractor.client.page_size_bounds(), self.extractor.now())
        self.writer.state(self.state.value(self.engine.plan))

    # -- messages and their activity ----------------------------------------------------------------

    def _messages(self, list_ids: Sequence[int]) -> pa.Table:
        read_at = self.extractor.now()
        reaches = self.engine.message_reaches(list_ids, read_at)
        tables = self.extractor.messages_of(list_ids, reaches)
        for list_id, table in zip(list_ids, tables, strict=True):
            self._emit(MESSAGES, table)
            if not self.extractor.refused_list(list_id):
                self.engine.record_messages(list_id, table, reaches[list_id], read_at)
        messages = pa.concat_tables(tables) if tables else arrow_schema(MESSAGES).empty_table()
        log.info("%d messages in %d lists.", messages.num_rows, len(list_ids))
        return messages.select(list(PLAN_COLUMNS))

    def _activity(self, messages: pa.Table) -> None:
        streams = self.engine.streams
        if not streams:
            return
        units = self.engine.plan_activity(messages, self.extractor.now(), refused_lists=self.extractor.refused_lists())
        log.info("%d work units for %d streams.", len(units), len(streams))
        by_key = {(u.stream.name, u.parent): u for u in units}
        latest: dict[str, dict[int, datetime]] = {s.name: {} for s in streams}
        finished: list[WorkUnit] = []
        zone = self.extractor.settings.source_timezone
        every = UNITS_PER_CHECKPOINT * self.extractor.settings.concurrency
        triples = [(u.stream, u.parent, u.start) for u in units]
        for stream, msg_id, table in self.extractor.activity_units(triples):
            if table is not None:
                self._emit(stream, table)
                newest_events(stream, table, latest[stream.name], zone)
                continue
            finished.append(by_key[(stream.name, msg_id)])
            if len(finished) >= every:
                self._record(finished, latest)
                finished = []
                self._checkpoint()
        self._record(finished, latest)
        refused_lists, refused_messages = self.extractor.skipped_lists(), self.extractor.skipped_messages()
        sent = messages.column("SendDate").to_pylist()
        for stream in streams:
            self.engine.finish(stream, refused_messages, refused_lists)
            # tap-listrak's message_sends bookmark: the newest send whose recipients went out.
            done_at = (max(sent) if sent else None) if stream.name == "message_sends" else self.extractor.now()
            if done_at is not None:
                self.state.complete(stream.name, done_at)
        self._checkpoint()

    def _record(self, units: Sequence[WorkUnit], latest: dict[str, dict[int, datetime]]) -> None:
        refused = self.extractor.skipped_messages()
        for stream in self.engine.streams:
            done = [u.parent for u in units if u.stream is stream and u.parent not in refused]
            if done:
                self.engine.record(stream, done, latest[stream.name], self.extractor.short_counts(stream))



__all__ = ["UNITS_PER_CHECKPOINT", "TapSync"]
