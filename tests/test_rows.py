"""The batching of pages before dlt sees them (dlt checks every item it is given against the schema)."""

from __future__ import annotations

import pyarrow as pa

from listrak_sync.pipeline.rows import BATCH_ROWS, per_table_batches


def test_per_table_batches_keep_every_row_in_order_and_join_small_pages() -> None:
    size = BATCH_ROWS // 4 + 1
    pages = []
    for n in range(9):  # two tables' pages interleaved, 9 of them
        name = "contacts" if n % 3 else "campaigns"
        pages.append((name, pa.table({"id": list(range(n * size, (n + 1) * size))})))

    batches = list(per_table_batches(iter(pages)))

    for name in ("contacts", "campaigns"):
        sent = [v for t, page in pages if t == name for v in page.column("id").to_pylist()]
        got = [v for t, batch in batches if t == name for v in batch.column("id").to_pylist()]
        assert got == sent
    contacts = [batch.num_rows for t, batch in batches if t == "contacts"]
    assert contacts == [4 * size, 2 * size]  # full once it reaches BATCH_ROWS; the rest at the end
    assert [batch.num_rows for t, batch in batches if t == "campaigns"] == [3 * size]
    assert len(batches) == 3
