#!/usr/bin/env python3
"""I/O floor for the bncli benchmarks: stream a table through pyarrow, no math.

    python benchmarks/floor.py {csv,parquet} INPUT [OUTPUT]

With OUTPUT, every batch read is written back out (CSV: ``open_csv`` +
``CSVWriter``; Parquet: one row group at a time + ``ParquetWriter`` without
dictionary encoding for float columns). Without OUTPUT the table is only
read (the read share of the floor). bncli does at least this much work, so
its wall time divided by this one is its overhead factor.
"""
from __future__ import annotations

import argparse
import sys

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq


def csv_floor(src: str, dst: str | None) -> int:
    rows = 0
    reader = pacsv.open_csv(src)
    writer = pacsv.CSVWriter(dst, reader.schema) if dst else None
    for batch in reader:
        rows += batch.num_rows
        if writer:
            writer.write_batch(batch)
    if writer:
        writer.close()
    return rows


def parquet_floor(src: str, dst: str | None) -> int:
    rows = 0
    pf = pq.ParquetFile(src)
    schema = pf.schema_arrow
    dictionary = [f.name for f in schema if not pa.types.is_floating(f.type)]
    writer = pq.ParquetWriter(dst, schema, use_dictionary=dictionary) if dst else None
    for i in range(pf.num_row_groups):
        table = pf.read_row_group(i)
        rows += table.num_rows
        if writer:
            writer.write_table(table)
    if writer:
        writer.close()
    return rows


FLOORS = {"csv": csv_floor, "parquet": parquet_floor}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("format", choices=sorted(FLOORS))
    p.add_argument("input")
    p.add_argument("output", nargs="?", help="omit to only read")
    args = p.parse_args(argv)
    FLOORS[args.format](args.input, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
