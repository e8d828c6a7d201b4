"""The tap's 2.x mode: PyPI's tap-listrak 2.x streams over the REST API, through the one REST run.

A config with ``client_id`` and ``client_secret`` and no ``username``/``password`` selects it
(:func:`is_rest_config`); with both pairs the tap stays in its SOAP mode (docs/singer.md,
"Switching from tap-listrak 2.x"). Everything here is read from the stream table:

- the offered streams (:data:`OFFERED`): every REST stream with a ``legacy_name`` under that
  name (``rest_lists`` as ``lists``, ``rest_messages`` as ``messages``), then the other stored
  REST tables under their table names, not selected by default (2.x had none of them);
- their key properties: ``legacy_key`` where the stream table gives one (2.x's key), else the
  stream's own key (where 2.x's would collapse rows: links and clickers);
- records: the stream's table columns, camelCase as the API names them, dates RFC 3339 UTC.

The reads are :class:`~listrak_sync.engine.rest_run.RestSync`'s, the same plan and walk as
``listrak-sync run``; STATE carries the REST plan under ``rest_plan`` beside whatever else the
state held, and goes out once the walk is done.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

from listrak_sync.engine.rest_run import RestSync
from listrak_sync.errors import ConfigError
from listrak_sync.settings_table import SETTINGS_BY_NAME
from listrak_sync.singer.catalog import Selection, json_schema, record_properties, selected_schema, stream_metadata
from listrak_sync.singer.output import SingerWriter, iter_records
from listrak_sync.streams import REST_STREAMS, Stream, get_stream

log = logging.getLogger(__name__)

PLAN_KEY = "rest_plan"
REPLICATION_METHOD = "INCREMENTAL"


def singer_name(stream: Stream) -> str:
    """The stream id the 2.x mode emits ``stream`` under."""
    return stream.legacy_name or stream.name


def legacy_keys(stream: Stream) -> list[str]:
    """The key properties of ``stream`` in the 2.x mode."""
    return list(stream.key if stream.legacy_key is None else stream.legacy_key)


_LEGACY = tuple(s for s in REST_STREAMS if s.legacy_name)
_EXTRA = tuple(s for s in REST_STREAMS if s.stored and not s.legacy_name)
OFFERED: dict[str, Stream] = {singer_name(s): s for s in _LEGACY + _EXTRA}
BY_DEFAULT = frozenset(singer_name(s) for s in _LEGACY)


def is_rest_config(config: Any) -> bool:
    """Whether a tap config selects the 2.x mode: the REST pair set, the SOAP pair not."""
    if not isinstance(config, Mapping):
        return False
    given = {key for key in ("username", "password", "client_id", "client_secret") if config.get(key)}
    return {"client_id", "client_secret"} <= given and not {"username", "password"} & given


def both_pairs(config: Any) -> bool:
    """Whether a tap config holds both credential pairs (the tap then runs its SOAP mode)."""
    return isinstance(config, Mapping) and all(config.get(k) for k in ("username", "password", "client_id",
                                                                        "client_secret"))


def rest_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A 2.x config as settings keys: ``num_activity_days`` becomes ``lookback_hours`` (unless given).

    Raises:
        ConfigError: ``num_activity_days`` is not a whole number within its range.
    """
    out = dict(config)
    days = out.pop("num_activity_days", None)
    if days is None or days == "":
        return out
    setting = SETTINGS_BY_NAME["num_activity_days"]
    low, high = setting.limits or (0, 0)
    text = str(days).strip()
    if isinstance(days, bool) or not text.isdigit() or not low <= int(text) <= high:
        raise ConfigError(f"num_activity_days must be a whole number of days within {setting.range_text}, "
                          f"got {days!r}.")
    if out.get("lookback_hours") is None:
        out["lookback_hours"] = 24 * int(text)
    else:
        log.warning("num_activity_days is ignored: lookback_hours is given.")
    return out


def discover() -> dict[str, Any]:
    """The 2.x mode's catalog: :data:`OFFERED`, nothing fetched."""
    entries = []
    for name, stream in OFFERED.items():
        metadata = stream_metadata(stream)
        root = metadata[0]["metadata"]
        root.update({"inclusion": "available", "selected-by-default": name in BY_DEFAULT,
                     "table-key-properties": legacy_keys(stream), "forced-replication-method": REPLICATION_METHOD})
        if stream.parent:
            root["parent-tap-stream-id"] = singer_name(get_stream(stream.parent))
        entries.append({"tap_stream_id": name, "stream": name, "key_properties": legacy_keys(stream),
                        "schema": json_schema(stream), "metadata": metadata})
    return {"streams": entries}


def everything() -> Selection:
    """What a run without a catalog syncs: the 2.x streams, every property."""
    return Selection({name: record_properties(s) for name, s in OFFERED.items() if name in BY_DEFAULT})


class RestTapSync:
    """One sync in the 2.x mode.

    Args:
        client: the REST client.
        settings: validated settings with the REST pair.
        selection: the selected streams (2.x names) and properties.
        state: the STATE document the run continues from (``{}`` for a first run).
        writer: where Singer messages go.

    Raises:
        ConfigError: the state's ``rest_plan`` is not an object.
    """

    def __init__(self, client: Any, settings: Any, selection: Selection, state: Mapping[str, Any],
                 writer: SingerWriter) -> None:
        plan = state.get(PLAN_KEY) or {}
        if not isinstance(plan, Mapping):
            raise ConfigError(f"The state's {PLAN_KEY!r} is not an object: pass a state this tap wrote, or none.")
        self.state = dict(state)
        self.plan = copy.deepcopy(dict(plan))
        self.selection = selection
        self.writer = writer
        self.sync = RestSync(client, settings)

    def run(self) -> dict[str, Any]:
        """Emit SCHEMA for every selected stream, then its records, then one STATE.

        Returns:
            The final state.
        """
        for name, stream in OFFERED.items():
            if name in self.selection:
                self.writer.schema(name, selected_schema(stream, self.selection.properties[name]),
                                   legacy_keys(stream))
        if not self.selection.streams:
            log.warning("No stream is selected in the catalog: nothing to sync.")
        else:
            self.sync.begin({OFFERED[name].name for name in self.selection.streams}, self.plan)
            for stream, page in self.sync.pages(parents=True):
                name = singer_name(stream)
                if name in self.selection:
                    self.writer.records(name, iter_records(page, stream, self.selection.properties[name]))
            self.plan = self.sync.finish()
            for error in self.sync.extractor.skipped:
                log.warning("Skipped: %s", error)
        self.state[PLAN_KEY] = self.plan
        self.writer.state(self.state)
        return self.state


__all__ = ["OFFERED", "PLAN_KEY", "RestTapSync", "both_pairs", "discover", "everything", "is_rest_config",
           "legacy_keys", "rest_config", "singer_name"]
