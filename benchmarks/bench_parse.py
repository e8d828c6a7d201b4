"""How fast a SOAP page becomes an Arrow table (the extraction hot path).

Builds one 5,000-item response page per paged stream from the stream table and times
``parse_xml`` + ``read_items`` (hardened lxml parse, columns by local name, Arrow casts).
Two shapes: every element present (the fast path), and about 10% of the items missing one
optional element (the general path); and, as the yardstick, lxml's bare parse of the same
page. Prints medians of several runs, by wall clock and by CPU time (on a busy machine the
CPU-time figure is the steadier one).

    .venv/bin/python benchmarks/bench_parse.py [--rows 5000] [--runs 15]
    .venv/bin/python benchmarks/bench_parse.py --gc    # the collector's cost (listrak_sync.process)
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from xml.sax.saxutils import escape

from listrak_sync.soap.parse import body_payload, parse_xml, read_items, response_wrapper
from listrak_sync.streams import NAMESPACE, STREAMS, Column, ColumnType, Stream, get_stream

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"


def _value(column: Column, row: int) -> str:
    if column.type is ColumnType.INT:
        return str(1000 + row)
    if column.type is ColumnType.FLOAT:
        return f"{row % 100}.25"
    if column.type is ColumnType.BOOL:
        return "true" if row % 2 else "false"
    if column.type is ColumnType.TIMESTAMP:
        return f"2024-05-{row % 28 + 1:02d}T12:{row % 60:02d}:56.{row % 1000:03d}"
    if column.name == "EmailAddress":
        return f"user{row}@example.com"
    if column.name == "LinkUrl":
        return escape(f"https://shop.example.com/products/{row}?utm_source=listrak&utm_medium=email")
    return escape(f"{column.name} value {row} & more")


def page(stream: Stream, rows: int, missing_every: int = 0) -> bytes:
    """A response page of ``rows`` items; with ``missing_every``, every n-th item lacks one optional element."""
    optional = [c for c in stream.columns if c.nullable and c.type is not ColumnType.TEXT_LIST]
    items = []
    for row in range(rows):
        skip = optional[row % len(optional)].name if missing_every and optional and row % missing_every == 0 else None
        fields = "".join(
            f"<{c.name}>{_value(c, row)}</{c.name}>" for c in stream.columns if c.name != skip and len(c.path) == 1
        )
        items.append(f"<{stream.item_element}>{fields}</{stream.item_element}>")
    return (
        f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{SOAP}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">'
        f'<soap:Body><{stream.operation}Response xmlns="{NAMESPACE}"><{stream.result_element}>'
        + "".join(items)
        + f"</{stream.result_element}></{stream.operation}Response></soap:Body></soap:Envelope>"
    ).encode()


def _once(stream: Stream, body: bytes, rows: int, parse_only: bool) -> tuple[float, float]:
    started, started_cpu = time.perf_counter(), time.thread_time()
    root = parse_xml(body)
    if not parse_only:
        table = read_items(response_wrapper(body_payload(root), stream.operation), stream)
        assert table.num_rows == rows
        del table
    del root  # freeing the tree is part of the cost
    return time.perf_counter() - started, time.thread_time() - started_cpu


def rows_per_second(stream: Stream, bodies: dict[str, bytes], rows: int, runs: int) -> dict[str, tuple[float, float]]:
    """Median rows/s (wall clock, thread CPU time) per case; the cases take turns, so that a
    machine getting busier or quieter during the run skews them alike."""
    cases = {"bare": (bodies["complete"], True), "complete": (bodies["complete"], False),
             "missing": (bodies["missing"], False)}
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for run in range(runs + 1):
        for name, (body, parse_only) in cases.items():
            timing = _once(stream, body, rows, parse_only)
            if run:
                timings[name].append(timing)
    return {
        name: (rows / statistics.median(t[0] for t in values), rows / statistics.median(t[1] for t in values))
        for name, values in timings.items()
    }


def gc_cost(rows: int, runs: int) -> None:
    """CPU per row of one opens page with a live heap like a run's, by collector setting."""
    from listrak_sync.process import _GC_THRESHOLD

    stream = get_stream("message_opens")
    body = page(stream, rows)
    heap = [{i: str(i)} for i in range(1_000_000)]  # stands in for what a run keeps alive

    def cpu_per_row() -> float:
        return sum(_once(stream, body, rows, False)[1] for _ in range(runs)) / runs / rows * 1e6

    cpu_per_row()  # warm up
    default: list[float] = []
    tuned: list[float] = []
    for _ in range(3):  # taking turns, so that a machine getting busier skews both alike
        gc.unfreeze()
        gc.set_threshold(700, 10, 10)
        default.append(cpu_per_row())
        gc.collect()
        gc.freeze()
        gc.set_threshold(*_GC_THRESHOLD)
        tuned.append(cpu_per_row())
    gc.unfreeze()
    a, b = statistics.median(default), statistics.median(tuned)
    print(f"message_opens, {rows} rows, {len(heap):,} live objects: {a:.2f} us/row with the default "
          f"collector, {b:.2f} with listrak_sync.process's ({a / b:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--gc", action="store_true", help="only the collector's cost")
    args = parser.parse_args()
    if args.gc:
        gc_cost(2500, args.runs)
        return
    print(f"{'stream':<22}{'KiB/page':>9}  {'lxml parse only (wall, cpu)':>26}  "
          f"{'complete rows/s (wall, cpu)':>26}  {'10% missing (wall, cpu)':>26}")
    for stream in STREAMS:
        if not stream.paged:
            continue
        complete = page(stream, args.rows)
        bodies = {"complete": complete, "missing": page(stream, args.rows, missing_every=10)}
        result = rows_per_second(stream, bodies, args.rows, args.runs)
        print(f"{stream.name:<22}{len(complete) / 1024:>9.0f}"
              + "".join(f"  {result[name][0]:>13,.0f} {result[name][1]:>12,.0f}" for name in result))


if __name__ == "__main__":
    main()
