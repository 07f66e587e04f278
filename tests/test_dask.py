"""--engine dask against the local engine: same statistics and outputs up to rounding.

One LocalCluster (2 worker processes, loopback) serves the whole module.
"""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

from click.testing import CliRunner  # noqa: E402

from bncli import dask_engine, pipeline  # noqa: E402
from bncli.cli import cli  # noqa: E402
from bncli.errors import DataError, OutputError, UsageError  # noqa: E402
from bncli.pipeline import IOOptions  # noqa: E402
from bncli.report import Reporter  # noqa: E402
from bncli.stats import Params, load_stats  # noqa: E402

QUIET = Reporter(verbosity=-1)
REPO = Path(__file__).resolve().parents[1]
FEATURES = ["a", "b", "big", "sparse", "k"]
#: Rows per file: 201 in all, so batch sizes 2, 10, 100 leave a one-row tail;
#: an empty file and a one-row file sit between the others.
SIZES = (37, 1, 0, 50, 64, 49)
#: Row groups of 16 and partitions of ~20 rows: files are cut into several partitions.
PARTITION_ROWS = 20


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
    ) as c:
        yield c.scheduler_address


def _table(rng, n, first):
    """Features with missing values (one nearly all missing, none at all in the
    first file), one far from zero (1e9 + noise), an int32 one; text passes through."""
    return pa.table(
        {
            "a": rng.normal(size=n),
            "b": pa.array(rng.normal(3, 2, size=n), mask=rng.random(n) < 0.3),
            "big": 1e9 + rng.normal(0, 0.01, size=n),
            "sparse": pa.array(rng.normal(size=n), mask=rng.random(n) < (1.0 if first else 0.85)),
            "k": pa.array(rng.integers(0, 5, n), pa.int32()),
            "label": pa.array([f"r{j}" for j in range(n)], pa.string()),
        }
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("ds")
    rng = np.random.default_rng(6)
    paths = []
    for i, n in enumerate(SIZES):
        p = d / f"f{i}.parquet"
        pq.write_table(_table(rng, n, i == 0), p, row_group_size=16)
        paths.append(str(p))
    return str(d), paths


def _close(x, y, what, rtol=1e-12, atol=0.0):
    """Equal up to rounding (same missing values; relative 1e-12)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    assert np.array_equal(np.isnan(x), np.isnan(y)), what
    ok = ~np.isnan(x)
    np.testing.assert_allclose(y[ok], x[ok], rtol=rtol, atol=atol, err_msg=what)


def assert_stats_match(local, dask):
    a, b = local.state, dask.state
    for name in ("tracked", "count", "nan_count"):
        np.testing.assert_array_equal(getattr(b, name), getattr(a, name), err_msg=name)
    assert b.num_batches_tracked == a.num_batches_tracked
    for name in ("running_mean", "running_var", "init_weight", "mean", "m2", "min", "max"):
        _close(getattr(a, name), getattr(b, name), name)
    _close(local.var_sample, dask.var_sample, "var_sample")
    assert dask.columns == local.columns
    assert dask.provenance["inputs"] == local.provenance["inputs"]
    assert dask.provenance["rows"] == local.provenance["rows"]


def read_output(path) -> pa.Table:
    if os.path.isdir(path):
        parts = sorted(glob.glob(os.path.join(path, "*")))
        assert all(os.path.basename(p).startswith("part-") for p in parts), parts
        return pa.concat_tables([pq.read_table(p) for p in parts])
    return pq.read_table(path)


def assert_tables_match(local: pa.Table, dask: pa.Table, exact=False):
    assert dask.schema == local.schema
    assert dask.num_rows == local.num_rows
    for name in local.column_names:
        if name in FEATURES:
            x = local.column(name).to_numpy(zero_copy_only=False)
            y = dask.column(name).to_numpy(zero_copy_only=False)
            if exact:
                np.testing.assert_array_equal(y, x, err_msg=name)
            else:
                _close(x, y, name, rtol=1e-12, atol=1e-12)
        else:
            assert dask.column(name).equals(local.column(name)), name


def no_leftovers(directory):
    """Nothing temporary (or partial) left behind."""
    return [n for n in os.listdir(directory) if "bncli-tmp" in n]


# -- fit --------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [2, 7, 10, 16, 64, 100, 256])
@pytest.mark.parametrize("momentum", [None, 0.1])
@pytest.mark.parametrize("drop_last", [False, True])
def test_fit_matches_local_engine(tmp_path, dataset, cluster, batch, momentum, drop_last):
    _, paths = dataset
    params = Params(batch_size=batch, momentum=momentum, drop_last=drop_last)
    local, ls = pipeline.fit(
        paths, str(tmp_path / "l.json"), str(tmp_path / "l.parquet"), params=params, reporter=QUIET
    )
    # Alternate the two Parquet outputs: a dataset directory and one file.
    out = str(tmp_path / "d") + "/" if batch % 2 else str(tmp_path / "d.parquet")
    dask, ds = dask_engine.fit(
        paths, str(tmp_path / "d.json"), out, params=params, reporter=QUIET,
        scheduler=cluster, partition_rows=PARTITION_ROWS,
    )  # fmt: skip
    assert_stats_match(local, dask)
    assert_stats_match(local, load_stats(str(tmp_path / "d.json")))
    assert (ds.rows, ds.batches, ds.features, ds.passthrough) == (ls.rows, ls.batches, ls.features, ls.passthrough)
    assert_tables_match(read_output(str(tmp_path / "l.parquet")), read_output(out))
    assert not no_leftovers(tmp_path)


def test_batches_inside_a_partition_are_bit_identical(tmp_path, cluster):
    """Pass 2 uses the local engine's shift and arithmetic: with one partition, the
    output bytes are the local engine's; only batches that straddle partitions
    (merged with Chan's formulas) can differ, by rounding."""
    src = str(REPO / "sample_data" / "california_housing.parquet")
    params = Params(batch_size=100, momentum=0.1)
    pipeline.fit([src], str(tmp_path / "l.json"), str(tmp_path / "l.parquet"), params=params, reporter=QUIET)
    dask_engine.fit(
        [src], str(tmp_path / "d.json"), str(tmp_path / "d.parquet"), params=params, reporter=QUIET, scheduler=cluster
    )
    assert pq.read_table(tmp_path / "d.parquet").equals(pq.read_table(tmp_path / "l.parquet"))


def test_fit_stats_only_and_partitioning(tmp_path, dataset, cluster):
    """-o /dev/null skips pass 2; results do not depend on the partition size
    or on naming the directory instead of its files."""
    d, paths = dataset
    params = Params(batch_size=16, momentum=0.1)
    local, _ = pipeline.fit(paths, str(tmp_path / "l.json"), os.devnull, params=params, reporter=QUIET)
    for rows in (1, 20, 1000):
        dask, _ = dask_engine.fit(
            [d], str(tmp_path / "d.json"), os.devnull, params=params, reporter=QUIET, scheduler=cluster,
            partition_rows=rows,
        )  # fmt: skip
        assert_stats_match(local, dask)


def test_fit_resume_matches_local(tmp_path, dataset, cluster):
    _, paths = dataset
    params = Params(batch_size=8, momentum=None)
    first, _ = pipeline.fit(paths[:3], str(tmp_path / "first.json"), os.devnull, params=params, reporter=QUIET)
    local, _ = pipeline.fit(
        paths[3:], str(tmp_path / "l.json"), os.devnull, params=params, resume=load_stats(str(tmp_path / "first.json")),
        reporter=QUIET,
    )  # fmt: skip
    dask, _ = dask_engine.fit(
        paths[3:], str(tmp_path / "d.json"), os.devnull, params=params, resume=load_stats(str(tmp_path / "first.json")),
        reporter=QUIET, scheduler=cluster, partition_rows=PARTITION_ROWS,
    )  # fmt: skip
    assert_stats_match(local, dask)
    assert dask.provenance["rows_total"] == local.provenance["rows_total"]


def test_hive_partitioned_dataset(tmp_path, cluster):
    """key=value folders become pass-through string columns, as in the local engine."""
    rng = np.random.default_rng(9)
    for day, n in (("d1", 23), ("d2", 31)):
        for region, m in (("eu", n), ("us", n + 4)):
            folder = tmp_path / "ds" / f"day={day}" / f"region={region}"
            folder.mkdir(parents=True)
            pq.write_table(_table(rng, m, False), folder / "part.parquet", row_group_size=8)
    params = Params(batch_size=6, momentum=0.1)
    ds = str(tmp_path / "ds")
    local, _ = pipeline.fit([ds], str(tmp_path / "l.json"), str(tmp_path / "l.parquet"), params=params, reporter=QUIET)
    dask, _ = dask_engine.fit(
        [ds], str(tmp_path / "d.json"), str(tmp_path / "d.parquet"), params=params, reporter=QUIET,
        scheduler=cluster, partition_rows=10,
    )  # fmt: skip
    assert_stats_match(local, dask)
    out = read_output(str(tmp_path / "d.parquet"))
    assert out.column_names[-2:] == ["day", "region"]
    assert_tables_match(read_output(str(tmp_path / "l.parquet")), out)


def _csv_inputs(tmp_path):
    rng = np.random.default_rng(3)
    paths = []
    for i, n in enumerate((30, 1, 45)):
        t = _table(rng, n, i == 0).drop_columns(["label"])
        t = t.append_column("note", pa.array([f'say "hi", {j}' for j in range(n)]))
        p = tmp_path / f"in{i}.csv"
        pacsv.write_csv(t, p)
        paths.append(str(p))
    return paths


def test_csv_inputs_and_csv_output(tmp_path, cluster):
    paths = _csv_inputs(tmp_path)
    params = Params(batch_size=5, momentum=0.1)
    local, _ = pipeline.fit(paths, str(tmp_path / "l.json"), str(tmp_path / "l.csv"), params=params, reporter=QUIET)
    dask, _ = dask_engine.fit(
        paths, str(tmp_path / "d.json"), str(tmp_path / "d.csv.gz"), params=params, reporter=QUIET, scheduler=cluster
    )
    assert_stats_match(local, dask)
    types = {c: pa.float64() for c in FEATURES}
    lt = pacsv.read_csv(tmp_path / "l.csv", convert_options=pacsv.ConvertOptions(column_types=types))
    dt = pacsv.read_csv(tmp_path / "d.csv.gz", convert_options=pacsv.ConvertOptions(column_types=types))
    assert_tables_match(lt, dt)
    # transform: the same arithmetic per row, so the very same bytes.
    stats = load_stats(str(tmp_path / "l.json"))
    pipeline.transform(paths, stats, str(tmp_path / "lt.csv"), reporter=QUIET)
    dask_engine.transform(paths, stats, str(tmp_path / "dt.csv"), reporter=QUIET, scheduler=cluster)
    assert (tmp_path / "dt.csv").read_bytes() == (tmp_path / "lt.csv").read_bytes()


# -- transform -----------------------------------------------------------------------


@pytest.mark.parametrize("use,inverse", [("running", False), ("global", False), ("running", True)])
def test_transform_matches_local_engine(tmp_path, dataset, cluster, use, inverse):
    d, paths = dataset
    pipeline.fit(
        paths, str(tmp_path / "s.json"), os.devnull, params=Params(batch_size=10, momentum=0.1), reporter=QUIET
    )
    stats = load_stats(str(tmp_path / "s.json"))
    pipeline.transform(paths, stats, str(tmp_path / "l.parquet"), use=use, inverse=inverse, reporter=QUIET)
    local = read_output(str(tmp_path / "l.parquet"))
    for out in (str(tmp_path / "d.parquet"), str(tmp_path / "dsdir")):
        summary = dask_engine.transform(
            [d], stats, out, use=use, inverse=inverse, batch_size=7, reporter=QUIET, scheduler=cluster,
            partition_rows=PARTITION_ROWS,
        )  # fmt: skip
        assert summary.rows == sum(SIZES)
        assert_tables_match(local, read_output(out), exact=True)
    # Empty partitions leave no part file; parts are numbered in input order.
    names = sorted(os.listdir(tmp_path / "dsdir"))
    assert names == [f"part-{i:05d}.parquet" for i in range(len(names))]
    assert not no_leftovers(tmp_path)


# -- errors and atomicity -------------------------------------------------------------


def test_data_error_names_file_and_row_and_leaves_nothing(tmp_path, dataset, cluster):
    _, paths = dataset
    bad = tmp_path / "bad.parquet"
    t = _table(np.random.default_rng(1), 40, False)
    a = t.column("a").to_numpy().copy()
    a[33] = np.inf
    pq.write_table(t.set_column(0, "a", pa.array(a)), bad, row_group_size=16)
    inputs = paths + [str(bad)]
    with pytest.raises(DataError) as local:
        pipeline.fit(inputs, str(tmp_path / "l.json"), str(tmp_path / "l.parquet"), reporter=QUIET)
    for out in ("out/", "out.parquet", "out.csv"):
        with pytest.raises(DataError) as dask:
            dask_engine.fit(
                inputs, str(tmp_path / "d.json"), str(tmp_path / out), reporter=QUIET, scheduler=cluster,
                partition_rows=PARTITION_ROWS,
            )  # fmt: skip
        assert dask.value.format() == local.value.format()
        assert "row 34" in dask.value.message
    assert sorted(os.listdir(tmp_path)) == ["bad.parquet"]


def test_mismatched_columns_and_usage_errors(tmp_path, dataset, cluster):
    _, paths = dataset
    other = tmp_path / "other.parquet"
    pq.write_table(
        _table(np.random.default_rng(2), 20, False).rename_columns(["a", "b", "big", "sparse", "kk", "label"]), other
    )
    with pytest.raises(DataError) as local:
        pipeline.fit(paths + [str(other)], str(tmp_path / "l.json"), os.devnull, reporter=QUIET)
    with pytest.raises(DataError) as dask:
        dask_engine.fit(paths + [str(other)], str(tmp_path / "d.json"), os.devnull, reporter=QUIET, scheduler=cluster)
    assert dask.value.format() == local.value.format()
    with pytest.raises(UsageError, match="stdin"):
        dask_engine.fit(["-"], str(tmp_path / "d.json"), os.devnull, reporter=QUIET, scheduler=cluster)
    with pytest.raises(UsageError, match="Parquet dataset"):
        dask_engine.fit(
            paths, str(tmp_path / "d.json"), str(tmp_path / "outdir"), io=IOOptions(output_format="csv"),
            reporter=QUIET, scheduler=cluster,
        )  # fmt: skip
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="holds other files"):
        dask_engine.fit(paths, str(tmp_path / "d.json"), str(tmp_path / "busy"), reporter=QUIET, scheduler=cluster)
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "d.json").exists() and not no_leftovers(tmp_path)


def test_existing_dataset_directory_is_replaced(tmp_path, dataset, cluster):
    d, paths = dataset
    out = tmp_path / "out"
    for batch in (4, 64):
        dask_engine.fit(
            [d], str(tmp_path / "s.json"), str(out), params=Params(batch_size=batch), reporter=QUIET,
            scheduler=cluster, partition_rows=1000,
        )  # fmt: skip
    pipeline.fit(
        paths, str(tmp_path / "l.json"), str(tmp_path / "l.parquet"), params=Params(batch_size=64), reporter=QUIET
    )
    assert_tables_match(read_output(str(tmp_path / "l.parquet")), read_output(str(out)))
    assert not no_leftovers(tmp_path)


# -- CLI --------------------------------------------------------------------------------


def test_cli_engine_dask(tmp_path, dataset, cluster):
    d, paths = dataset
    runner = CliRunner()
    common = ["-b", "10", "--momentum", "0.1", "-q"]
    r = runner.invoke(cli, ["fit", *paths, "-s", str(tmp_path / "l.json"), "-o", str(tmp_path / "l.parquet"), *common])
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        cli,
        ["fit", d, "-s", str(tmp_path / "d.json"), "-o", str(tmp_path / "out") + "/", *common,
         "--engine", "dask", "--scheduler", cluster],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert_stats_match(load_stats(str(tmp_path / "l.json")), load_stats(str(tmp_path / "d.json")))
    assert_tables_match(read_output(str(tmp_path / "l.parquet")), read_output(str(tmp_path / "out")))
    assert json.loads((tmp_path / "d.json").read_text())["params"]["batch_size"] == 10

    r = runner.invoke(
        cli,
        ["transform", d, "-s", str(tmp_path / "d.json"), "-o", str(tmp_path / "t.parquet"), "--engine", "dask",
         "--scheduler", cluster],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert pq.read_table(tmp_path / "t.parquet").num_rows == sum(SIZES)


def test_cli_csv_to_stdout_is_byte_identical(tmp_path, cluster):
    """One CSV file is one partition: fit's training-mode output on stdout is the
    local engine's, byte for byte; the stats agree to rounding."""
    src = str(REPO / "sample_data" / "california_housing.csv")
    runner = CliRunner()
    local = runner.invoke(cli, ["fit", src, "-s", str(tmp_path / "l.json"), "-b", "100", "-q"])
    dask = runner.invoke(
        cli, ["fit", src, "-s", str(tmp_path / "d.json"), "-b", "100", "-q", "--engine", "dask", "--scheduler", cluster]
    )
    assert local.exit_code == 0 and dask.exit_code == 0, dask.stderr
    assert dask.stdout_bytes == local.stdout_bytes
    assert_stats_match(load_stats(str(tmp_path / "l.json")), load_stats(str(tmp_path / "d.json")))


def test_cli_errors_are_one_line(tmp_path, dataset, cluster):
    d, _ = dataset
    runner = CliRunner()
    r = runner.invoke(
        cli, ["fit", d, "-s", str(tmp_path / "s.json"), "--engine", "dask", "--scheduler", "tcp://127.0.0.1:1"]
    )
    assert r.exit_code == 2
    assert r.stderr.startswith("Error: cannot connect to the Dask scheduler at tcp://127.0.0.1:1")
    assert r.stderr.count("\n") == 1
    r = runner.invoke(
        cli, ["fit", d, "-s", str(tmp_path / "s.json"), "-o", str(tmp_path / "o/"), "-c", "label", "--engine", "dask",
              "--scheduler", cluster],
    )  # fmt: skip
    assert r.exit_code == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "non-numeric" in r.stderr
    assert sorted(os.listdir(tmp_path)) == []
