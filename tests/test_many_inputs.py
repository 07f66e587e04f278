"""Many inputs (files, globs, Parquet datasets with hive partitions), --output-dir,
fit --resume, and merge: each compared with one fit over the concatenated data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from bncli.cli import cli

REPO = Path(__file__).resolve().parents[1]
HOUSING = REPO / "sample_data" / "california_housing.csv"


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def stats(path):
    doc = json.loads(Path(path).read_text())
    return doc["state_dict"], doc["global"], doc["column_batches_tracked"], doc["init_weight"]


def assert_same_stats(a, b, rtol=1e-13):
    (sd_a, g_a, t_a, w_a), (sd_b, g_b, t_b, w_b) = stats(a), stats(b)
    assert sd_a["num_batches_tracked"] == sd_b["num_batches_tracked"]
    assert t_a == t_b and g_a["count"] == g_b["count"] and g_a["nan_count"] == g_b["nan_count"]
    for k in ("running_mean", "running_var", "weight", "bias"):
        np.testing.assert_allclose(sd_a[k], sd_b[k], rtol=rtol, err_msg=k)
    for k in ("mean", "var", "var_sample", "min", "max"):
        np.testing.assert_allclose(np.array(g_a[k], float), np.array(g_b[k], float), rtol=rtol, err_msg=k)
    np.testing.assert_allclose(w_a, w_b, rtol=rtol, atol=1e-300)


@pytest.fixture
def shards(tmp_path):
    """The housing data split into 3 CSV shards; the first two hold whole 256-row batches."""
    lines = HOUSING.read_text().splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    cuts = [0, 256 * 30, 256 * 55, len(rows)]
    paths = []
    for i in range(3):
        p = tmp_path / f"part-{i}.csv"
        p.write_text(header + "".join(rows[cuts[i] : cuts[i + 1]]))
        paths.append(p)
    return paths


@pytest.mark.parametrize("momentum", ["cumulative", "0.1"])
def test_merge_equals_one_fit_over_the_concatenation(tmp_path, shards, momentum):
    run("fit", HOUSING, "-s", tmp_path / "whole.json", "-o", "/dev/null", "--momentum", momentum, "-q")
    parts = []
    for i, shard in enumerate(shards):
        parts.append(tmp_path / f"s{i}.json")
        run("fit", shard, "-s", parts[-1], "-o", "/dev/null", "--momentum", momentum, "-q")
    run("merge", *parts, "-o", tmp_path / "merged.json")
    assert_same_stats(tmp_path / "merged.json", tmp_path / "whole.json")


@pytest.mark.parametrize("momentum", ["cumulative", "0.1"])
def test_resume_equals_one_fit_over_the_concatenation(tmp_path, shards, momentum):
    run("fit", HOUSING, "-s", tmp_path / "whole.json", "-o", "/dev/null", "--momentum", momentum, "-q")
    run("fit", shards[0], "-s", tmp_path / "a.json", "-o", "/dev/null", "--momentum", momentum, "-q")
    run("fit", shards[1], "-s", tmp_path / "b.json", "--resume", tmp_path / "a.json", "-o", "/dev/null", "-q")
    run("fit", shards[2], "-s", tmp_path / "c.json", "--resume", tmp_path / "b.json", "-o", "/dev/null", "-q")
    assert_same_stats(tmp_path / "c.json", tmp_path / "whole.json")
    assert json.loads((tmp_path / "c.json").read_text())["params"]["momentum"] == (
        None if momentum == "cumulative" else 0.1
    )


def test_resume_after_a_partial_batch_starts_a_new_batch(tmp_path):
    lines = HOUSING.read_text().splitlines(keepends=True)
    (tmp_path / "a.csv").write_text("".join(lines[:101]))  # 100 rows: one partial batch of 100
    (tmp_path / "b.csv").write_text(lines[0] + "".join(lines[101:301]))
    run("fit", tmp_path / "a.csv", "-s", tmp_path / "a.json", "-o", "/dev/null", "-b", "256", "-q")
    run("fit", tmp_path / "b.csv", "-s", tmp_path / "b.json", "--resume", tmp_path / "a.json", "-o", "/dev/null", "-q")
    sd, g, _, _ = stats(tmp_path / "b.json")
    assert sd["num_batches_tracked"] == 2  # rows 1-100, then rows 101-300
    assert g["count"][0] == 300  # whole-data statistics are exact regardless
    x = np.array([float(line.split(",")[0]) for line in lines[1:301]])
    np.testing.assert_allclose(g["mean"][0], x.mean(), rtol=1e-14)
    np.testing.assert_allclose(sd["running_mean"][0], (x[:100].mean() + x[100:].mean()) / 2, rtol=1e-14)


def test_resume_warns_when_overriding_momentum(tmp_path, shards):
    run("fit", shards[0], "-s", tmp_path / "a.json", "-o", "/dev/null", "-q")
    result = CliRunner().invoke(
        cli, ["fit", str(shards[1]), "-s", str(tmp_path / "b.json"), "--resume", str(tmp_path / "a.json"),
              "--momentum", "0.1", "-o", "/dev/null"],
    )  # fmt: skip
    assert result.exit_code == 0
    assert "Warning: --resume: overriding momentum None from the stats file with 0.1" in result.stderr


def test_merge_refuses_mismatched_files(tmp_path, shards):
    run("fit", shards[0], "-s", tmp_path / "a.json", "-o", "/dev/null", "-q")
    run("fit", shards[1], "-s", tmp_path / "b.json", "-o", "/dev/null", "-q", "--eps", "1e-3")
    run("fit", shards[1], "-s", tmp_path / "c.json", "-o", "/dev/null", "-q", "-C", "longitude")
    for other, what in (("b.json", "eps differs (0.001 vs 1e-05)"), ("c.json", "features differ")):
        result = CliRunner().invoke(
            cli, ["merge", str(tmp_path / "a.json"), str(tmp_path / other), "-o", str(tmp_path / "m.json")]
        )
        assert result.exit_code == 1
        assert f"Error: stats file {tmp_path / other}: cannot merge with" in result.stderr
        assert what in result.stderr
        assert not (tmp_path / "m.json").exists()


def test_several_files_glob_and_directory_read_in_sorted_order(tmp_path, shards):
    run("fit", HOUSING, "-s", tmp_path / "whole.json", "-o", tmp_path / "whole.csv", "-q")
    # Given out of order on purpose: explicit files are read in the order given...
    run("fit", *shards, "-s", tmp_path / "files.json", "-o", tmp_path / "files.csv", "-q")
    # ... a quoted glob and a directory in sorted order.
    run("fit", str(tmp_path / "part-*.csv"), "-s", tmp_path / "glob.json", "-o", tmp_path / "glob.csv", "-q")
    d = tmp_path / "dir"
    d.mkdir()
    for p in shards:
        (d / p.name).write_bytes(p.read_bytes())
    (d / "_SUCCESS").write_text("")
    run("fit", d, "-s", tmp_path / "dir.json", "-o", tmp_path / "dir.csv", "-q")
    whole = (tmp_path / "whole.csv").read_bytes()
    for name in ("files", "glob", "dir"):
        assert (tmp_path / f"{name}.csv").read_bytes() == whole
        assert stats(tmp_path / f"{name}.json")[:3] == stats(tmp_path / "whole.json")[:3]


def test_hive_partitioned_parquet_dataset(tmp_path):
    t = pq.read_table(REPO / "sample_data" / "california_housing.parquet")
    root = tmp_path / "ds"
    layout = [("region=north", "part-0.parquet", 0, 7000), ("region=north", "part-1.parquet", 7000, 5000),
              ("region=south", "part-0.parquet", 12000, None)]  # fmt: skip
    for folder, name, start, length in layout:
        (root / folder).mkdir(parents=True, exist_ok=True)
        pq.write_table(t.slice(start, length), root / folder / name)
    run("fit", root, "-s", tmp_path / "ds.json", "-o", tmp_path / "fit.parquet", "-q")
    run(
        "fit", REPO / "sample_data" / "california_housing.parquet", "-s", tmp_path / "one.json", "-o", "/dev/null", "-q"
    )
    assert stats(tmp_path / "ds.json")[:3] == stats(tmp_path / "one.json")[:3]
    out = pq.read_table(tmp_path / "fit.parquet")
    assert out.column_names == t.column_names + ["region"]
    assert out.column("region").to_pylist() == ["north"] * 12000 + ["south"] * (t.num_rows - 12000)

    # transform --output-dir mirrors the layout; partition values stay in the folder names.
    run("transform", root, "-s", tmp_path / "ds.json", "--output-dir", tmp_path / "out", "--output-format", "csv")
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written == ["region=north/part-0.csv", "region=north/part-1.csv", "region=south/part-0.csv"]
    header = (tmp_path / "out" / "region=south" / "part-0.csv").read_text().splitlines()[0]
    assert header.split(",") == t.column_names
    rows = sum(len(p.read_text().splitlines()) - 1 for p in (tmp_path / "out").rglob("*.csv"))
    assert rows == t.num_rows


def test_inputs_with_different_columns_are_refused(tmp_path, shards):
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n3,4\n")
    result = CliRunner().invoke(cli, ["fit", str(shards[0]), str(other), "-s", str(tmp_path / "s.json")])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {other}: missing feature column(s) 'longitude'")
    assert not (tmp_path / "s.json").exists()


def test_parquet_parts_with_different_types_are_refused(tmp_path):
    pq.write_table(pa.table({"x": [1.0, 2.0], "tag": ["a", "b"]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"x": [3.0, 4.0], "tag": [1, 2]}), tmp_path / "b.parquet")
    result = CliRunner().invoke(
        cli, ["fit", str(tmp_path), "-s", str(tmp_path / "s.json"), "-c", "x", "-o", "/dev/null"]
    )
    assert result.exit_code == 1
    assert "column 'tag' has type int64, but string in" in result.stderr
