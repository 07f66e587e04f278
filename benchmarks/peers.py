#!/usr/bin/env python3
"""Peer implementations: the z-scoring a user would write by hand.

    python benchmarks/peers.py NAME INPUT OUTPUT

Every peer reads INPUT, standardizes each numeric column with its global
mean and population standard deviation, passes other columns through and
writes OUTPUT (same format as INPUT). Each library is imported only inside
its own function, so the harness and the other peers never load it.
"""
from __future__ import annotations

import argparse
import sys

SKLEARN_CHUNK = 100_000


def pandas_csv(src: str, dst: str) -> None:
    import pandas as pd

    df = pd.read_csv(src)
    num = df.select_dtypes("number").columns
    df[num] = (df[num] - df[num].mean()) / df[num].std(ddof=0)
    df.to_csv(dst, index=False)


def pandas_parquet(src: str, dst: str) -> None:
    import pandas as pd

    df = pd.read_parquet(src)
    num = df.select_dtypes("number").columns
    df[num] = (df[num] - df[num].mean()) / df[num].std(ddof=0)
    df.to_parquet(dst, index=False)


def sklearn_csv(src: str, dst: str) -> None:
    """Two passes over pandas chunks: partial_fit, then transform + append."""
    import pandas as pd
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler()
    num = None
    for chunk in pd.read_csv(src, chunksize=SKLEARN_CHUNK):
        if num is None:
            num = chunk.select_dtypes("number").columns
        scaler.partial_fit(chunk[num])
    with open(dst, "w", newline="") as fh:
        for i, chunk in enumerate(pd.read_csv(src, chunksize=SKLEARN_CHUNK)):
            chunk[num] = scaler.transform(chunk[num])
            chunk.to_csv(fh, index=False, header=(i == 0))


def _polars_zscore(lf):
    import polars as pl

    schema = lf.collect_schema()
    num = [name for name, dtype in schema.items() if dtype.is_numeric()]
    return lf.with_columns(
        [(pl.col(c) - pl.col(c).mean()) / pl.col(c).std(ddof=0) for c in num])


def polars_csv(src: str, dst: str) -> None:
    import polars as pl

    _polars_zscore(pl.scan_csv(src)).sink_csv(dst)


def polars_parquet(src: str, dst: str) -> None:
    import polars as pl

    _polars_zscore(pl.scan_parquet(src)).sink_parquet(dst)


def _duckdb_copy(source_sql: str, dst: str, options: str) -> None:
    """One aggregate pass for mean/std, cross-joined to a second scan."""
    import duckdb

    con = duckdb.connect()
    described = con.execute(f"DESCRIBE SELECT * FROM {source_sql}").fetchall()
    numeric = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT",
               "DOUBLE", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}
    cols = [(name, ctype.split("(")[0] in numeric or ctype.startswith("DECIMAL"))
            for name, ctype, *_ in described]
    aggs = ", ".join(f'avg("{c}") AS "m_{c}", stddev_pop("{c}") AS "s_{c}"'
                     for c, is_num in cols if is_num)
    select = ", ".join(f'(t."{c}" - s."m_{c}") / s."s_{c}" AS "{c}"' if is_num
                       else f't."{c}"' for c, is_num in cols)
    con.execute(f"COPY (WITH s AS (SELECT {aggs} FROM {source_sql}) "
                f"SELECT {select} FROM {source_sql} t, s) TO '{dst}' ({options})")


def _sql_str(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


def duckdb_csv(src: str, dst: str) -> None:
    _duckdb_copy(f"read_csv({_sql_str(src)})", dst, "HEADER, DELIMITER ','")


def duckdb_parquet(src: str, dst: str) -> None:
    _duckdb_copy(f"read_parquet({_sql_str(src)})", dst, "FORMAT parquet")


# name -> (function, module the peer needs)
PEERS = {
    "pandas-csv": (pandas_csv, "pandas"),
    "sklearn-csv": (sklearn_csv, "sklearn"),
    "polars-csv": (polars_csv, "polars"),
    "duckdb-csv": (duckdb_csv, "duckdb"),
    "pandas-parquet": (pandas_parquet, "pandas"),
    "polars-parquet": (polars_parquet, "polars"),
    "duckdb-parquet": (duckdb_parquet, "duckdb"),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name", choices=list(PEERS))
    p.add_argument("input")
    p.add_argument("output")
    args = p.parse_args(argv)
    PEERS[args.name][0](args.input, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
