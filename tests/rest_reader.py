"""An independent REST reader for the simulator tests: plain ``requests``, driven by the stream table.

It follows REST.md as a careful client would (token, bearer, cursors until a null one, every
filter of the stream, profile-field passes of at most 30 ids) and knows nothing of the
simulator's code, so a table it reads can be compared with ``Account.rest_ground_truth``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import requests

from listrak_sync.streams import ColumnType, Stream, get_stream

CLIENT_ID, CLIENT_SECRET = "test-client", "test-secret"


def parse_date(text: Any) -> Any:
    """A REST date (``YYYY-MM-DDTHH:MM:SS[.f]``, no offset) as a naive datetime."""
    return datetime.fromisoformat(text) if isinstance(text, str) else text


class Reader:
    """Reads the simulator's REST API with a token of its own."""

    def __init__(self, base: str, token_url: str, count: int = 7) -> None:
        self.base, self.token_url, self.count = base, token_url, count
        self.session = requests.Session()
        self.requests = 0
        self.refresh()

    def refresh(self) -> None:
        answer = self.session.post(self.token_url, data={"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                                         "client_secret": CLIENT_SECRET}, timeout=10)
        assert answer.status_code == 200, answer.text
        self.session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def call(self, route: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        self.requests += 1
        answer = self.session.get(self.base + route, params=params, timeout=30)
        if answer.status_code == 401:
            self.refresh()
            answer = self.session.get(self.base + route, params=params, timeout=30)
        assert answer.status_code == 200, (route, params, answer.status_code, answer.text)
        body = answer.json()
        assert body["status"] == 200
        return body

    def pages(self, route: str, params: dict[str, str]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = "Start"
        while True:
            body = self.call(route, {**params, "cursor": cursor, "count": str(self.count)})
            assert list(body) == ["status", "nextPageCursor", "data"]
            items += body["data"]
            cursor = body["nextPageCursor"]
            if cursor is None:
                return items

    def rows(self, stream: Stream, start: str | None = None) -> list[dict[str, Any]]:
        """Every row of ``stream`` (with its parents' ids stamped), typed and cut to its columns."""
        if stream.name == "contacts":
            return self._contacts(stream, start)
        parents = [{}] if stream.parent is None else self.rows(get_stream(stream.parent), start)
        out = []
        for parent in parents:
            ids = {c.name: parent[c.name] for c in stream.path_keys}
            route = stream.route.format(**ids)
            params = dict(stream.query)
            if stream.date_param and start:
                params[stream.date_param] = start
            if stream.rest_paged:
                items = self.pages(route, params)
            else:
                data = self.call(route, params)["data"]
                items = data if isinstance(data, list) else [data]
            for item in items:
                if stream.detail_route:
                    item = self.call(stream.detail_route.format(**ids, **item))["data"]
                out.append(self._typed(stream, {**ids, **{k: parent[k] for k in stream.from_parent}, **item}))
        return out

    def _contacts(self, stream: Stream, start: str | None) -> list[dict[str, Any]]:
        out = []
        for lst in self.call("/List")["data"]:
            list_id = lst["listId"]
            groups = self.call(f"/List/{list_id}/SegmentationFieldGroup")["data"]
            fields = [f["segmentationFieldId"] for g in groups for f in
                      self.call(f"/List/{list_id}/SegmentationFieldGroup/{g['segmentationFieldGroupId']}"
                                "/SegmentationField")["data"]]
            for state in ("Subscribed", "Unsubscribed"):
                merged: dict[str, dict[str, Any]] = {}
                for k in range(0, len(fields), 30):
                    params = {"subscriptionState": state, "segmentationFieldIds": ",".join(map(str, fields[k:k + 30])),
                              "useOriginalSubscribeDate": "false"}
                    if start:
                        params["startDate"] = start
                    for item in self.pages(f"/List/{list_id}/Contact", params):
                        row = merged.setdefault(item["emailAddress"], {**item, "segmentationFieldValues": None})
                        values = (row["segmentationFieldValues"] or []) + (item["segmentationFieldValues"] or [])
                        row["segmentationFieldValues"] = values or item["segmentationFieldValues"]
                for row in merged.values():
                    if row["segmentationFieldValues"]:
                        row["segmentationFieldValues"].sort(key=lambda v: v["segmentationFieldId"])
                    out.append(self._typed(stream, {"listId": list_id, **row}))
        return out

    @staticmethod
    def _typed(stream: Stream, row: dict[str, Any]) -> dict[str, Any]:
        typed = {}
        for column in stream.table_columns:
            value = row[column.name]  # every model key is present
            typed[column.name] = parse_date(value) if column.type is ColumnType.TIMESTAMP else value
        return typed


def sort_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows in a canonical order (by their repr), for comparing collections."""
    return sorted(rows, key=repr)
