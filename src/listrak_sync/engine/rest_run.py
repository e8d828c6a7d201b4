"""One REST run, the same for every adapter: plan, walk, close the plan.

The dlt source (:mod:`listrak_sync.pipeline.rest_source`) and the Singer tap's 2.x mode
(:mod:`listrak_sync.singer.rest_mode`) both read the REST API through this: the plan comes from
their state (dlt: source state ``rest_plan``; Singer: STATE ``rest_plan``), the
:class:`~listrak_sync.engine.rest_plan.RestPlanner` decides every read, the
:class:`~listrak_sync.rest_extract.RestExtractor` walks the tree, and each page's newest
cursor values are folded into the contacts' bookmarks before the adapter gets it. What an
adapter adds is only how it hands pages on (dlt resources, Singer RECORD lines) and keeps the
closed plan.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from listrak_sync.engine.rest_plan import RestPlanner, pass_cursor
from listrak_sync.errors import ObjectSkippedError
from listrak_sync.progress import RunProgress
from listrak_sync.rest_extract import RestExtractor, needed_streams, service_now
from listrak_sync.settings import Settings
from listrak_sync.streams import Stream

log = logging.getLogger(__name__)


class RestSync:
    """The REST reads of one run.

    Args:
        client: the REST client.
        settings: start date, lookback, recheck days, zone, concurrency and list IDs.
        full_refresh: read everything and replace every table.
        full_refresh_reason: why, if not the user's request.
        progress: the run's counters.
        skipped: where the objects the service refused are noted (default: the extractor's own list).
    """

    def __init__(self, client: Any, settings: Settings, *, full_refresh: bool = False,
                 full_refresh_reason: str | None = None, progress: RunProgress | None = None,
                 skipped: list[ObjectSkippedError] | None = None) -> None:
        from listrak_sync.rest.parse import to_table

        self.client = client
        self.settings = settings
        self.full_refresh = full_refresh
        self.full_refresh_reason = full_refresh_reason
        self.extractor = RestExtractor(client, to_table, concurrency=settings.concurrency,
                                       list_ids=settings.list_ids, progress=progress, skipped=skipped)
        self.planner: RestPlanner | None = None
        self._streams: list[Stream] = []
        self._lists: list[dict[str, Any]] = []

    def begin(self, selected: Collection[str], plan: dict[str, Any]) -> RestPlanner:
        """Make the run's plan: read the lists, decide which are rechecked.

        Args:
            selected: the stream names the adapter wants (their ancestors are read too).
            plan: the REST plan from the adapter's state (mutated; ``{}`` for a first run).

        Returns:
            The planner, whose :meth:`~RestPlanner.write` tells how each table is written.
        """
        self._streams = needed_streams(selected)
        # The lists first: the service's clock comes from its answers (a simulator's may differ).
        self._lists = self.extractor.lists()
        now = service_now(self.client, lambda: datetime.now(timezone.utc))
        settings = self.settings
        self.planner = RestPlanner(
            plan, start=settings.start_date, now=now, lookback_hours=settings.lookback_hours,
            full_recheck_days=settings.full_recheck_days, full_refresh=self.full_refresh,
            full_refresh_reason=self.full_refresh_reason, zone=settings.source_timezone,
            shard=bool(settings.list_ids))
        self.planner.begin(int(item["listId"]) for item in self._lists)
        log.info("REST run mode: %s", self.planner.mode_reason)
        return self.planner

    def pages(self, *, parents: bool = False) -> Iterator[tuple[Stream, pa.Table]]:
        """Every page the plan reads, as :meth:`RestExtractor.read` yields them (after :meth:`begin`)."""
        assert self.planner is not None, "begin() first"
        for stream, page in self.extractor.read(self._streams, self.planner, lists=self._lists, parents=parents):
            self._bookmark(stream, page)
            yield stream, page

    def finish(self) -> dict[str, Any]:
        """Close the plan once every page was handed on; the adapter keeps what this returns."""
        assert self.planner is not None, "begin() first"
        return self.planner.finish(self.extractor.failed_lists())

    def _bookmark(self, stream: Stream, page: pa.Table) -> None:
        if not stream.passes or self.planner is None:
            return
        for pass_value in stream.passes[1]:
            cursor = pass_cursor(stream, pass_value)
            if cursor is None or cursor not in page.column_names:
                continue
            rows = page.filter(pc.equal(page.column(stream.passes[0]), pass_value)) \
                if stream.passes[0] in page.column_names else page
            for list_id in pc.unique(rows.column("listId")).to_pylist():
                mine = rows.filter(pc.equal(rows.column("listId"), list_id))
                newest = pc.max(mine.column(cursor)).as_py()
                self.planner.saw(stream, int(list_id), pass_value, newest)


__all__ = ["RestSync"]
