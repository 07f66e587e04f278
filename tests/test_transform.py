"""transform (inference mode): formula, independence from --batch-size, --inverse, --use global."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.csv as pacsv
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bncli import pipeline
from bncli.report import Reporter
from bncli.stats import Params, load_stats

from test_fit_reference import write_csv

QUIET = Reporter(verbosity=-1)


def read(path, names):
    t = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types={n: "float64" for n in names}))
    return np.column_stack([t.column(n).to_numpy(zero_copy_only=False) for n in names]), t


@pytest.fixture
def fitted(tmp_path):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2000, 3)) * [2.0, 0.5, 1e4] + [10.0, -3.0, 1e5]
    x[rng.random(x.shape) < 0.05] = np.nan
    src = tmp_path / "train.csv"
    names = write_csv(src, x)
    stats_path = tmp_path / "stats.json"
    pipeline.fit([str(src)], str(stats_path), "/dev/null", params=Params(batch_size=100, momentum=0.1), reporter=QUIET)
    return x, names, src, stats_path


def test_transform_formula_with_edited_weight_and_bias(tmp_path, fitted):
    x, names, src, stats_path = fitted
    doc = json.loads(stats_path.read_text())
    doc["state_dict"]["weight"] = [2.0, 0.5, -1.0]
    doc["state_dict"]["bias"] = [1.0, 0.0, 3.0]
    stats_path.write_text(json.dumps(doc))
    out = tmp_path / "out.csv"
    pipeline.transform([str(src)], load_stats(str(stats_path)), str(out), reporter=QUIET)
    y, table = read(out, names)
    sd = doc["state_dict"]
    rm, rv = np.array(sd["running_mean"]), np.array(sd["running_var"])
    want = np.array(sd["weight"]) * (x - rm) / np.sqrt(rv + 1e-5) + np.array(sd["bias"])
    np.testing.assert_allclose(y, want, rtol=1e-13, atol=1e-13, equal_nan=True)
    assert table.column("label").to_pylist() == [f"r{i:05d}" for i in range(len(x))]


def test_use_global_applies_exact_mean_and_sample_variance(tmp_path, fitted):
    x, names, src, stats_path = fitted
    out = tmp_path / "out.csv"
    pipeline.transform([str(src)], load_stats(str(stats_path)), str(out), use="global", reporter=QUIET)
    y, _ = read(out, names)
    want = (x - np.nanmean(x, axis=0)) / np.sqrt(np.nanvar(x, axis=0, ddof=1) + 1e-5)
    np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("use", ["running", "global"])
def test_output_bytes_do_not_depend_on_batch_size_or_chunking(tmp_path, fitted, use):
    _, _, src, stats_path = fitted
    stats = load_stats(str(stats_path))
    outputs = []
    for i, (batch_size, chunk_bytes) in enumerate([(65536, 4 << 20), (1, 4 << 20), (7, 1000), (333, 50_000)]):
        out = tmp_path / f"out{i}.csv"
        pipeline.transform([str(src)], stats, str(out), use=use, batch_size=batch_size,
                           io=pipeline.IOOptions(chunk_bytes=chunk_bytes), reporter=QUIET)  # fmt: skip
        outputs.append(out.read_bytes())
    assert all(o == outputs[0] for o in outputs[1:])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    offset=st.sampled_from([0.0, -5.0, 1e3, 1e6]),
    spread=st.sampled_from([1e-3, 1.0, 1e4]),
    use=st.sampled_from(["running", "global"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_inverse_round_trip(tmp_path, offset, spread, use, seed):
    rng = np.random.default_rng(seed)
    x = offset + spread * rng.normal(size=(300, 2))
    x[rng.random(x.shape) < 0.1] = np.nan
    src = tmp_path / "x.csv"
    names = write_csv(src, x)
    stats_path = tmp_path / "s.json"
    pipeline.fit([str(src)], str(stats_path), "/dev/null", params=Params(batch_size=32), reporter=QUIET)
    stats = load_stats(str(stats_path))
    norm_path, back_path = tmp_path / "n.csv", tmp_path / "b.csv"
    pipeline.transform([str(src)], stats, str(norm_path), use=use, reporter=QUIET)
    pipeline.transform([str(norm_path)], stats, str(back_path), use=use, inverse=True, reporter=QUIET)
    back, table = read(back_path, names)
    np.testing.assert_allclose(back, x, rtol=1e-12, atol=1e-12 * (abs(offset) + spread), equal_nan=True)
    assert table.column("label").to_pylist() == [f"r{i:05d}" for i in range(len(x))]
