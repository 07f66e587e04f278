"""fit against the plain reference loop in tests/reference.py, through real files.

Small reader chunks (a few hundred bytes) force mini-batches to straddle
chunks, so the carry/merge logic of the streaming pipeline is exercised too.
"""

from __future__ import annotations

import json
from unittest import mock

import numpy as np
import pyarrow.csv as pacsv
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bncli import pipeline
from bncli.report import Reporter
from bncli.stats import Params

from reference import fit_reference, output_tolerance


def write_csv(path, x: np.ndarray, names=None, text_column=True) -> list[str]:
    names = names or [f"f{j}" for j in range(x.shape[1])]
    with open(path, "w") as fh:
        fh.write(",".join(names + (["label"] if text_column else [])) + "\n")
        for i, row in enumerate(x):
            cells = ["" if np.isnan(v) else repr(float(v)) for v in row]
            fh.write(",".join(cells + ([f"r{i:05d}"] if text_column else [])) + "\n")
    return names


def run_fit(tmp_path, x, batch_size, momentum, eps=1e-5, drop_last=False, chunk_bytes=300, group_rows=None):
    src = tmp_path / "in.csv"
    names = write_csv(src, x)
    out = tmp_path / "out.csv"
    stats_path = tmp_path / "stats.json"
    # Small groups of batches make the math run in several steps even on small data.
    with mock.patch.object(pipeline, "GROUP_ROWS", group_rows or pipeline.GROUP_ROWS):
        _fit(src, stats_path, out, batch_size, momentum, eps, drop_last, chunk_bytes)
    table = pacsv.read_csv(out, convert_options=pacsv.ConvertOptions(column_types={n: "float64" for n in names}))
    y = np.column_stack([table.column(n).to_numpy(zero_copy_only=False) for n in names])
    labels = table.column("label").to_pylist()
    return y, labels, json.loads(stats_path.read_text())


def _fit(src, stats_path, out, batch_size, momentum, eps, drop_last, chunk_bytes):
    pipeline.fit(
        [str(src)],
        str(stats_path),
        str(out),
        params=Params(batch_size=batch_size, momentum=momentum, eps=eps, drop_last=drop_last),
        io=pipeline.IOOptions(chunk_bytes=chunk_bytes),
        reporter=Reporter(verbosity=-1),
    )


def assert_matches_reference(x, y, stats, ref, batch_size):
    sd = stats["state_dict"]
    np.testing.assert_allclose(sd["running_mean"], ref["running_mean"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sd["running_var"], ref["running_var"], rtol=1e-9, atol=1e-12)
    assert sd["num_batches_tracked"] == ref["num_batches_tracked"]
    assert stats["column_batches_tracked"] == list(ref["column_batches_tracked"])
    g = stats["global"]
    assert g["count"] == ref["count"]
    assert g["nan_count"] == ref["nan_count"]
    for key in ("mean", "var", "var_sample", "min", "max"):
        got = np.array([np.nan if v is None else v for v in g[key]])
        want = np.array([np.nan if v is None else v for v in ref[key]])
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=0, err_msg=key)
    assert np.array_equal(np.isnan(y), np.isnan(ref["y"])), "missing values must stay missing, others not"
    tol = output_tolerance(x, batch_size)
    err = np.where(np.isnan(y), 0.0, np.abs(y - ref["y"]))
    assert (err <= tol).all(), f"max output error {err.max(axis=0)} > {tol}"


@pytest.mark.parametrize("momentum", [None, 0.1, 0.0, 1.0])
@pytest.mark.parametrize("n_rows,batch_size", [(100, 10), (101, 10), (107, 10), (57, 64), (2, 2), (3, 2)])
def test_fit_matches_reference(tmp_path, momentum, n_rows, batch_size):
    rng = np.random.default_rng(n_rows * 7 + batch_size)
    x = rng.normal(size=(n_rows, 3)) * [1.0, 250.0, 0.01] + [0.0, -40.0, 3.0]
    x[rng.random(x.shape) < 0.1] = np.nan
    y, labels, stats = run_fit(tmp_path, x, batch_size, momentum)
    assert labels == [f"r{i:05d}" for i in range(n_rows)]  # row order and count preserved
    assert_matches_reference(x, y, stats, fit_reference(x, batch_size, momentum, 1e-5), batch_size)


@pytest.mark.parametrize("momentum", [None, 0.1])
@pytest.mark.parametrize("n_rows", [100, 101, 105])
def test_drop_last_matches_reference(tmp_path, momentum, n_rows):
    rng = np.random.default_rng(n_rows)
    x = rng.normal(size=(n_rows, 2)) * 3 + 5
    y, labels, stats = run_fit(tmp_path, x, 10, momentum, drop_last=True)
    assert len(labels) == n_rows
    ref = fit_reference(x, 10, momentum, 1e-5, drop_last=True)
    assert stats["state_dict"]["num_batches_tracked"] == 10
    assert_matches_reference(x, y, stats, ref, 10)


def test_one_row_tail_is_merged_into_previous_batch(tmp_path):
    x = np.arange(21, dtype=float).reshape(-1, 1) ** 1.5
    y, _, stats = run_fit(tmp_path, x, 10, None)
    # Batches: rows 0-9, then 10-20 (eleven rows): two updates, no lone row.
    assert stats["state_dict"]["num_batches_tracked"] == 2
    tail = x[10:, 0]
    np.testing.assert_allclose(y[10:, 0], (tail - tail.mean()) / np.sqrt(tail.var() + 1e-5), rtol=1e-12)
    want_rm = (x[:10, 0].mean() + tail.mean()) / 2
    np.testing.assert_allclose(stats["state_dict"]["running_mean"][0], want_rm, rtol=1e-13)


def test_feature_with_single_value_in_batch_outputs_zero_and_is_not_updated(tmp_path):
    x = np.array([[1.0, 1.0], [2.0, np.nan], [3.0, np.nan], [4.0, 7.0], [6.0, 9.0]])
    y, _, stats = run_fit(tmp_path, x, 3, None)
    # Second column: batch 1 has one value (output 0, no update), batch 2 two values.
    assert y[0, 1] == 0.0 and np.isnan(y[1, 1]) and np.isnan(y[2, 1])
    assert stats["column_batches_tracked"] == [2, 1]
    np.testing.assert_allclose(stats["state_dict"]["running_mean"], [(2.0 + 5.0) / 2, 8.0])
    np.testing.assert_allclose(stats["state_dict"]["running_var"], [(1.0 + 2.0) / 2, 2.0])


def test_all_missing_feature_has_null_statistics(tmp_path):
    x = np.column_stack([np.arange(6.0), np.full(6, np.nan)])
    y, _, stats = run_fit(tmp_path, x, 3, None)
    assert np.isnan(y[:, 1]).all()
    g = stats["global"]
    assert g["count"][1] == 0 and g["nan_count"][1] == 6
    assert g["mean"][1] is None and g["var"][1] is None and g["min"][1] is None
    assert stats["state_dict"]["running_mean"][1] == 0.0 and stats["state_dict"]["running_var"][1] == 1.0


def test_large_offset_keeps_twelve_digits_of_variance(tmp_path):
    rng = np.random.default_rng(3)
    x = (1e9 + rng.normal(scale=0.01, size=(5000, 1))).round(6)
    _, _, stats = run_fit(tmp_path, x, 256, None, chunk_bytes=4096)
    ref = fit_reference(x, 256, None, 1e-5)
    got = stats["global"]["var"][0]
    assert abs(got - ref["var"][0]) / ref["var"][0] < 1e-12
    assert abs(stats["global"]["mean"][0] - ref["mean"][0]) <= 2 * np.spacing(1e9)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n_rows=st.integers(2, 120),
    batch_size=st.integers(2, 40),
    n_features=st.integers(1, 4),
    nan_rate=st.sampled_from([0.0, 0.05, 0.3, 0.9]),
    offset=st.sampled_from([0.0, 1.0, 1e3, 1e6, 1e9]),
    spread=st.sampled_from([1e-2, 1.0, 1e3]),
    momentum=st.sampled_from([None, 0.1, 0.5]),
    drop_last=st.booleans(),
    group_rows=st.sampled_from([None, 1, 50]),
    seed=st.integers(0, 2**32 - 1),
)
def test_fit_property(tmp_path, n_rows, batch_size, n_features, nan_rate, offset, spread, momentum, drop_last,
                      group_rows, seed):  # fmt: skip
    rng = np.random.default_rng(seed)
    x = offset + spread * rng.normal(size=(n_rows, n_features))
    x[rng.random(x.shape) < nan_rate] = np.nan
    y, labels, stats = run_fit(tmp_path, x, batch_size, momentum, drop_last=drop_last, chunk_bytes=200,
                               group_rows=group_rows)  # fmt: skip
    assert len(labels) == n_rows
    ref = fit_reference(x, batch_size, momentum, 1e-5, drop_last)
    assert_matches_reference(x, y, stats, ref, batch_size)


@pytest.mark.parametrize("batch_size", [7, 64])
def test_statistics_and_outputs_do_not_depend_on_chunking(tmp_path, batch_size):
    """Same data, different read chunk sizes: every output byte and statistic bit is equal."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3001, 3)) * [1.0, 1e-3, 1e5] + [0.0, 1e9, 3.0]
    x[rng.random(x.shape) < 0.05] = np.nan
    runs = []
    for i, chunk_bytes in enumerate([150, 10_000, 1 << 22]):
        d = tmp_path / str(i)
        d.mkdir()
        with mock.patch.object(pipeline, "GROUP_ROWS", 70):
            run_fit(d, x, batch_size, 0.1, chunk_bytes=chunk_bytes)
        doc = json.loads((d / "stats.json").read_text())
        doc.pop("provenance")
        runs.append(((d / "out.csv").read_bytes(), doc))
    assert all(r == runs[0] for r in runs[1:])
