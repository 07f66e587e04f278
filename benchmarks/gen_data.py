#!/usr/bin/env python3
"""Deterministic benchmark data for bncli.

Writes one table as CSV and as Parquet:

* 16 float64 columns whose means span 1e-3 .. 1e6 (log-spaced), normal or
  log-normal, rounded to a realistic number of decimals; three of them have
  1% missing values;
* 2 int64 columns (an id and a small count);
* 1 text column (a city name).

Rows are generated in fixed chunks of 2**20 rows, each chunk from its own
random stream ``default_rng([seed, chunk_index])``, so memory stays flat,
the output is identical for a given seed and row count, and a smaller table
is a prefix of a larger one. Each chunk is one Parquet row group (at most
1Mi rows); float columns are not dictionary-encoded.

Usage::

    python benchmarks/gen_data.py --rows 2000000            # -> benchmarks/data/
    python benchmarks/gen_data.py --rows 200000 --out-dir /tmp/d --formats csv
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

DEFAULT_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_SEED = 20240607
CHUNK_ROWS = 1 << 20  # also the Parquet row-group size
MISSING_FRACTION = 0.01


class FloatCol(NamedTuple):
    name: str
    mean: float
    dist: str       # "normal" (spread = coefficient of variation) or "lognormal" (spread = sigma)
    spread: float
    decimals: int   # rounding, like a real export; >= 1 so CSV readers infer float
    missing: bool


_EXPONENTS = np.linspace(-3.0, 6.0, 16)  # means 1e-3 .. 1e6
_FLOATS = [
    # name              dist        spread decimals missing
    ("dose_g",         "lognormal", 0.40, 6, False),
    ("conc_mol_l",     "normal",    0.25, 6, False),
    ("click_rate",     "lognormal", 0.80, 5, False),
    ("defect_frac",    "normal",    0.30, 4, False),
    ("ratio",          "normal",    0.50, 4, False),
    ("score",          "normal",    1.00, 3, False),
    ("rating",         "normal",    0.20, 2, False),
    ("temperature_c",  "normal",    0.60, 1, False),
    ("humidity_pct",   "normal",    0.25, 1, True),
    ("latency_ms",     "lognormal", 0.90, 2, True),
    ("pressure_hpa",   "normal",    0.01, 1, False),
    ("altitude_m",     "normal",    0.70, 1, False),
    ("income_usd",     "lognormal", 0.60, 2, False),
    ("distance_m",     "lognormal", 1.10, 1, False),
    ("price_usd",      "lognormal", 0.50, 2, True),
    ("revenue_usd",    "lognormal", 1.30, 2, False),
]
FLOAT_COLUMNS = [
    FloatCol(name, float(10.0 ** e), dist, spread, dec, miss)
    for e, (name, dist, spread, dec, miss) in zip(_EXPONENTS, _FLOATS, strict=False)
]
INT_COLUMNS = ["user_id", "quantity"]
TEXT_COLUMN = "city"
CITIES = [
    "Amsterdam", "Athens", "Auckland", "Bangkok", "Berlin", "Bogota", "Cairo",
    "Chicago", "Dublin", "Helsinki", "Istanbul", "Jakarta", "Lagos", "Lima",
    "Lisbon", "London", "Madrid", "Melbourne", "Mexico City", "Montreal",
    "Mumbai", "Nairobi", "Osaka", "Oslo", "Paris", "Prague", "Rio de Janeiro",
    "Seoul", "Stockholm", "Toronto", "Vienna", "Zurich",
]


def schema() -> pa.Schema:
    """Column order: id, floats interleaved with the count and text column."""
    fields = [pa.field("user_id", pa.int64())]
    fields += [pa.field(c.name, pa.float64()) for c in FLOAT_COLUMNS[:8]]
    fields += [pa.field(TEXT_COLUMN, pa.string()), pa.field("quantity", pa.int64())]
    fields += [pa.field(c.name, pa.float64()) for c in FLOAT_COLUMNS[8:]]
    return pa.schema(fields)


def _float_values(rng: np.random.Generator, col: FloatCol, n: int) -> pa.Array:
    if col.dist == "lognormal":
        mu = np.log(col.mean) - col.spread ** 2 / 2.0  # so that E[x] == mean
        x = rng.lognormal(mu, col.spread, n)
    else:
        x = rng.normal(col.mean, col.spread * col.mean, n)
    x = np.round(x, col.decimals)
    mask = rng.random(n) < MISSING_FRACTION if col.missing else None
    return pa.array(x, type=pa.float64(), mask=mask)


def make_chunk(seed: int, index: int, n: int) -> pa.Table:
    """Rows [index*CHUNK_ROWS, index*CHUNK_ROWS + n) of the table."""
    rng = np.random.default_rng([seed, index])
    cols = {c.name: _float_values(rng, c, n) for c in FLOAT_COLUMNS}
    cols["user_id"] = pa.array(rng.integers(1, 5_000_000, n), type=pa.int64())
    cols["quantity"] = pa.array(rng.poisson(3.0, n) + 1, type=pa.int64())
    city_idx = pa.array(rng.integers(0, len(CITIES), n).astype(np.int32))
    cols[TEXT_COLUMN] = pc.take(pa.array(CITIES, type=pa.string()), city_idx)
    sch = schema()
    return pa.table([cols[f.name] for f in sch], schema=sch)


def chunks(rows: int, seed: int):
    """Yield the table chunk by chunk."""
    for index, start in enumerate(range(0, rows, CHUNK_ROWS)):
        yield make_chunk(seed, index, min(CHUNK_ROWS, rows - start))


def data_paths(out_dir: Path, rows: int, seed: int = DEFAULT_SEED) -> dict[str, Path]:
    """File names used by the generator and the benchmark runner."""
    stem = f"bench_{rows}" if seed == DEFAULT_SEED else f"bench_{rows}_s{seed}"
    return {"csv": out_dir / f"{stem}.csv", "parquet": out_dir / f"{stem}.parquet"}


def _write_csv(path: Path, rows: int, seed: int) -> None:
    with pacsv.CSVWriter(str(path), schema()) as writer:
        for table in chunks(rows, seed):
            writer.write_table(table)


def _write_parquet(path: Path, rows: int, seed: int) -> None:
    non_float = [f.name for f in schema() if not pa.types.is_floating(f.type)]
    with pq.ParquetWriter(str(path), schema(), use_dictionary=non_float,
                          compression="snappy") as writer:
        for table in chunks(rows, seed):
            writer.write_table(table, row_group_size=CHUNK_ROWS)


WRITERS = {"csv": _write_csv, "parquet": _write_parquet}


def generate(rows: int, out_dir: Path = DEFAULT_DIR, seed: int = DEFAULT_SEED,
             formats=("csv", "parquet"), force: bool = False) -> dict[str, Path]:
    """Write the requested formats (skipping existing files unless force)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = data_paths(out_dir, rows, seed)
    for fmt in formats:
        path = paths[fmt]
        if path.exists() and not force:
            continue
        tmp = path.with_name(path.name + ".tmp")  # atomic: no half-written inputs
        WRITERS[fmt](tmp, rows, seed)
        os.replace(tmp, path)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB)", file=sys.stderr)
    return {fmt: paths[fmt] for fmt in formats}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=200_000, help="number of rows (default 200000)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    p.add_argument("--out-dir", type=Path, default=DEFAULT_DIR, help=f"default {DEFAULT_DIR}")
    p.add_argument("--formats", default="csv,parquet", help="comma list of csv,parquet")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    args = p.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    bad = set(formats) - set(WRITERS)
    if bad:
        p.error(f"unknown format(s): {', '.join(sorted(bad))}")
    for path in generate(args.rows, args.out_dir, args.seed, formats, args.force).values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
