"""The REST resources of the dlt source: one per stored REST table, all from the stream table.

A hidden producer (``rest_walk``, never loaded) runs the one REST run
(:class:`~listrak_sync.engine.rest_run.RestSync`, shared with the Singer tap), which makes the REST plan
(:class:`~listrak_sync.engine.rest_plan.RestPlanner`, kept in the source state under
``rest_plan``), walks the REST tree (:class:`~listrak_sync.rest_extract.RestExtractor`) and
hands its pages on as ``(table name, rows)``, each table's pages joined in batches. Each
table's resource is a transformer of it that keeps its own rows: it starts with the write
hints the plan chose (replace, or merge per message, per date, or on the key), and ends with a
delete marker per message read where its table is merged per message, then with the rows the
destination holds of what the service refused this run, wherever the table's write would
delete them (refused is not gone, as on SOAP: :mod:`listrak_sync.pipeline.held`). Selection
works the dlt way: ``with_resources("contacts")`` still runs the producer, which then reads
only what the selected tables need.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from typing import Any

import dlt
import pyarrow as pa
from dlt.extract.resource import DltResource

from listrak_sync.engine.plan import DELETED_COLUMN
from listrak_sync.engine.rest_plan import STORED_REST, RestPlanner, TableWrite, gating_message
from listrak_sync.engine.rest_run import RestSync
from listrak_sync.errors import ObjectSkippedError
from listrak_sync.pipeline.destinations import can_merge
from listrak_sync.pipeline.held import rows_matching
from listrak_sync.pipeline.rows import per_table_batches
from listrak_sync.progress import RunProgress
from listrak_sync.rest_extract import DONE, rest_ancestors
from listrak_sync.settings import Settings
from listrak_sync.streams import Stream

log = logging.getLogger(__name__)
PRODUCER = "rest_walk"
START = "__start__"


class RestRun:
    """What the REST resources of one run share: the one REST run (:class:`RestSync`)."""

    def __init__(self, client: Any, settings: Settings, *, full_refresh: bool = False,
                 full_refresh_reason: str | None = None, progress: RunProgress | None = None,
                 skipped: list[ObjectSkippedError] | None = None) -> None:
        self.client = client
        self.settings = settings
        self.sync = RestSync(client, settings, full_refresh=full_refresh, full_refresh_reason=full_refresh_reason,
                             progress=progress, skipped=skipped)
        self.extractor = self.sync.extractor

    @property
    def planner(self) -> RestPlanner | None:
        return self.sync.planner

    def produce(self) -> Iterator[tuple[str, Any]]:
        """The producer's items: the plan, every page, then the end."""
        state = dlt.current.source_state()
        plan = copy.deepcopy(dict(state.get("rest_plan") or {}))
        self.sync.begin(set(dlt.current.source().selected_resources), plan)
        yield START, None
        yield from per_table_batches((stream.name, page) for stream, page in self.sync.pages())
        yield DONE, None
        state["rest_plan"] = self.sync.finish()

    def markers(self, stream: Stream, kept: pa.Table | None = None) -> pa.Table | None:
        """One delete marker per message whose children were read, for a table merged per message;
        none for a message that ``kept`` rows stand for (they clear its old rows themselves, and a
        marker would share their primary key where the table has one row per message)."""
        from listrak_sync.pipeline.rows import markers

        gate = gating_message(stream)
        if gate is None:
            return None
        first = stream
        while first.parent != gate.name:  # the gate's child that was read per message
            from listrak_sync.streams import get_stream

            first = get_stream(first.parent or "")
        keys = list(gate.key)
        seen = {tuple(u.ids[k] for k in keys) for u in self.extractor.units.get(first.name, [])}
        if kept is not None:
            seen -= set(zip(*(kept.column(k).to_pylist() for k in keys), strict=True))
        ids = sorted(seen)
        return markers(stream, keys[0], [i[0] for i in ids], **{k: [i[n] for i in ids] for n, k in
                                                                 enumerate(keys) if n})


    def kept(self, stream: Stream, write: TableWrite) -> pa.Table | None:
        """The rows the destination holds of the objects the service refused this run, under
        ``stream``, where this run's ``write`` of its table would delete them (refused is not gone:
        they are loaded again)."""
        matches = []
        for unit in self.extractor.refused:
            if unit.stream.name != stream.name and unit.stream.name not in {s.name for s in rest_ancestors(stream)}:
                continue
            if write.disposition != "replace" and not (write.merge_key and set(write.merge_key) <= set(unit.ids)):
                continue  # merged on a key that no other object's rows carry: its rows stay as they are
            match: dict[str, int | str] = dict(unit.ids)
            if unit.pass_value is not None and unit.stream.name == stream.name and stream.passes:
                match[stream.passes[0]] = unit.pass_value
            matches.append(match)
        if not matches:
            return None
        pipeline = dlt.current.pipeline()
        if pipeline.destination is None or not can_merge(pipeline.destination):
            return None
        table = rows_matching(pipeline, stream, matches)
        if table is not None:
            log.info("Kept %d %s rows of what the REST API refused: %s", table.num_rows, stream.name,
                     "; ".join(", ".join(f"{k} {v}" for k, v in m.items()) for m in matches))
        return table


def rest_resources(run: RestRun, columns: Callable[[Stream], dict[str, Any]]) -> list[DltResource]:
    """The producer and one transformer per stored REST table."""
    def produce() -> Iterator[tuple[str, Any]]:  # dlt takes functions, not bound methods
        yield from run.produce()

    producer = dlt.resource(produce, name=PRODUCER, selected=False)
    return [producer, *(_table(stream, run, producer, columns) for stream in STORED_REST)]


def _table(stream: Stream, run: RestRun, producer: DltResource,
           columns: Callable[[Stream], dict[str, Any]]) -> DltResource:
    from listrak_sync.pipeline.rows import empty_table, with_marker

    cols = columns(stream)
    merged_per_message = gating_message(stream) is not None
    if merged_per_message:
        cols[DELETED_COLUMN] = {"name": DELETED_COLUMN, "data_type": "bool", "nullable": True, "hard_delete": True,
                                "description": "Delete marker of incremental merges; never true."}

    def rows(item: tuple[str, Any]) -> Iterator[Any]:
        name, page = item
        assert run.planner is not None
        write = run.planner.write(stream)
        marked = write.markers
        if name == START:
            empty = empty_table(stream)
            if merged_per_message:
                empty = with_marker(empty, False)
            if write.disposition == "replace":
                hints = dlt.mark.make_hints(write_disposition="replace")
            else:
                hints = dlt.mark.make_hints(
                    write_disposition={"disposition": "merge", "strategy": "delete-insert"},
                    merge_key=list(write.merge_key) if write.merge_key else None)
            log.debug("%s: %s (%s)", stream.name, write.disposition, write.reason)
            yield dlt.mark.with_hints(empty, hints)
        elif name == stream.name:
            yield with_marker(page, False) if merged_per_message else page
        elif name == DONE:
            kept = run.kept(stream, write)
            table = run.markers(stream, kept) if marked else None
            if table is not None and table.num_rows:
                yield table
            if kept is not None:
                yield with_marker(kept, False) if merged_per_message else kept

    hints: dict[str, Any] = {
        "name": stream.name, "table_name": stream.name, "write_disposition": "replace",
        # Event tables have no primary key: two clicks are two rows (docs/rest.md).
        "primary_key": [] if stream.event else list(stream.key), "columns": cols,
    }
    return dlt.transformer(rows, data_from=producer, **hints)


__all__ = ["PRODUCER", "RestRun", "rest_resources"]
