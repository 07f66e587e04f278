"""The command line: CliRunner for options and messages, real subprocess pipelines for stdin/stdout."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from bncli.cli import cli

REPO = Path(__file__).resolve().parents[1]
HOUSING = REPO / "sample_data" / "california_housing.csv"
HOUSING_PARQUET = REPO / "sample_data" / "california_housing.parquet"
HOUSING_FEATURES = [
    "longitude", "latitude", "housing_median_age", "total_rooms", "total_bedrooms",
    "population", "households", "median_income", "median_house_value",
]  # fmt: skip

SMALL = "id,x,flag,y,zip\na,1.5,True,10,007\nb,2.5,False,,08123\nc,4,True,30,00001\nd,8,False,40,1\n"


def bncli(*args, input=None, check=True) -> subprocess.CompletedProcess:
    """Run the installed CLI as a user would (``python -m bncli`` is the same program)."""
    proc = subprocess.run([sys.executable, "-m", "bncli", *map(str, args)], input=input, capture_output=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr.decode()}")
    return proc


def sh(command: str, cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=cwd, capture_output=True, env=env)


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def small(tmp_path):
    p = tmp_path / "small.csv"
    p.write_text(SMALL)
    return p


def test_version(runner):
    from bncli import __version__

    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"bncli, version {__version__}\n"


def test_fit_small_exact_output(runner, small, tmp_path):
    stats = tmp_path / "s.json"
    result = runner.invoke(cli, ["fit", str(small), "-s", str(stats), "-b", "2", "-C", "zip"])
    assert result.exit_code == 0, result.output
    # Batches (1.5, 2.5) and (4, 8); y has one value in the first batch -> 0.
    s1 = np.sqrt(0.25 + 1e-5)
    s2 = np.sqrt(4.0 + 1e-5)
    s3 = np.sqrt(25.0 + 1e-5)
    want = [
        "id,x,flag,y,zip",
        f"a,{float(-0.5 / s1)!r},True,0,007",
        f"b,{float(0.5 / s1)!r},False,,08123",
        f"c,{float(-2 / s2)!r},True,{float(-5 / s3)!r},00001",
        f"d,{float(2 / s2)!r},False,{float(5 / s3)!r},1",
    ]
    assert result.stdout.splitlines() == want
    doc = json.loads(stats.read_text())
    assert doc["columns"] == ["x", "y"]  # numeric columns; text, booleans and --exclude pass through
    assert doc["state_dict"]["num_batches_tracked"] == 2
    assert doc["column_batches_tracked"] == [2, 1]
    everything = runner.invoke(cli, ["fit", str(small), "-s", str(stats), "-o", "/dev/null"])
    assert everything.exit_code == 0
    assert json.loads(stats.read_text())["columns"] == ["x", "y", "zip"]  # zip codes are numbers


def test_columns_and_exclude(runner, small, tmp_path):
    stats = tmp_path / "s.json"
    result = runner.invoke(cli, ["fit", str(small), "-s", str(stats), "-C", "zip", "-o", "/dev/null"])
    assert result.exit_code == 0
    assert json.loads(stats.read_text())["columns"] == ["x", "y"]
    result = runner.invoke(cli, ["fit", str(small), "-s", str(stats), "-c", "y", "-c", "x", "-o", "/dev/null"])
    assert json.loads(stats.read_text())["columns"] == ["x", "y"]  # input order


def test_transform_passes_unfitted_columns_through(runner, small, tmp_path):
    stats = tmp_path / "s.json"
    runner.invoke(cli, ["fit", str(small), "-s", str(stats), "-c", "x", "-o", "/dev/null"])
    result = runner.invoke(cli, ["transform", str(small), "-s", str(stats)])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert [line.split(",", 2)[2] for line in lines] == [line.split(",", 2)[2] for line in SMALL.splitlines()]


def test_momentum_warning_names_features(runner, small, tmp_path):
    result = runner.invoke(
        cli, ["fit", str(small), "-s", str(tmp_path / "s.json"), "--momentum", "0.1", "-o", "/dev/null"]
    )
    assert result.exit_code == 0
    assert (
        "Warning: with --momentum 0.1, the running statistics of 'x', 'y', 'zip' still give up to 90%" in result.stderr
    )
    quiet = runner.invoke(
        cli, ["fit", str(small), "-s", str(tmp_path / "s.json"), "--momentum", "0.1", "-q", "-o", "/dev/null"]
    )
    assert quiet.stderr == ""


def test_summary_line_with_verbose(runner, small, tmp_path):
    result = runner.invoke(cli, ["fit", str(small), "-s", str(tmp_path / "s.json"), "-b", "2", "-o", "/dev/null", "-v"])
    assert result.exit_code == 0
    assert result.stderr.startswith("fit: 4 rows, 2 batches, 3 features, 2 pass-through columns in ")


# -- pipelines through real processes ----------------------------------------------------


def test_shell_pipeline_fit_then_transform(tmp_path):
    shutil.copy(HOUSING, tmp_path / "h.csv")
    r = sh("cat h.csv | bncli fit - -s s.json | gzip > fit.csv.gz", tmp_path)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stderr == b""  # silent in a pipeline
    assert (
        gzip.decompress((tmp_path / "fit.csv.gz").read_bytes())
        == bncli("fit", HOUSING, "-s", tmp_path / "x.json").stdout
    )
    r = sh("bncli transform h.csv -s s.json | bncli transform - -s s.json --inverse > back.csv", tmp_path)
    assert r.returncode == 0, r.stderr.decode()
    orig = pacsv.read_csv(tmp_path / "h.csv")
    back = pacsv.read_csv(tmp_path / "back.csv")
    for name in HOUSING_FEATURES:
        np.testing.assert_allclose(back.column(name).to_numpy(), orig.column(name).to_numpy(), rtol=1e-12)
    assert back.column("ocean_proximity").equals(orig.column("ocean_proximity"))


def test_pass_through_column_is_byte_identical(tmp_path):
    shutil.copy(HOUSING, tmp_path / "h.csv")
    r = sh("bncli fit h.csv -s s.json -o out.csv", tmp_path)
    assert r.returncode == 0
    src = (tmp_path / "h.csv").read_text().splitlines()
    out = (tmp_path / "out.csv").read_text().splitlines()
    assert len(out) == len(src) == 20641
    assert out[0] == src[0]
    assert [line.rsplit(",", 1)[1] for line in out] == [line.rsplit(",", 1)[1] for line in src]
    # The 207 missing total_bedrooms stay empty cells.
    assert sum(line.split(",")[4] == "" for line in out[1:]) == 207


def test_text_is_quoted_only_where_needed(tmp_path):
    (tmp_path / "q.csv").write_text('name,v\n"Smith, J.",1\nplain,2\n"say ""hi""",3\n"two\nlines",4\n  spaced ,5\n')
    r = bncli("fit", tmp_path / "q.csv", "-s", tmp_path / "s.json", "-b", "4")
    lines = r.stdout.decode().split("\n")
    assert lines[1].startswith('"Smith, J.",') and lines[2].startswith("plain,")
    assert lines[3].startswith('"say ""hi""",') and lines[4] == '"two' and lines[5].startswith('lines",')
    assert lines[6].startswith("  spaced ,")


def test_csv_to_parquet_and_back(tmp_path):
    bncli("fit", HOUSING, "-s", tmp_path / "s.json", "-o", tmp_path / "fit.parquet")
    t = pq.read_table(tmp_path / "fit.parquet")
    assert t.num_rows == 20640
    assert t.schema.field("ocean_proximity").type == pa.string()
    assert t.schema.field("total_bedrooms").type == pa.float64()
    assert t.column("total_bedrooms").null_count == 207
    bncli("transform", HOUSING, "-s", tmp_path / "s.json", "-o", tmp_path / "t.parquet")
    bncli("transform", tmp_path / "t.parquet", "-s", tmp_path / "s.json", "--inverse", "-o", tmp_path / "back.csv")
    orig, back = pacsv.read_csv(HOUSING), pacsv.read_csv(tmp_path / "back.csv")
    for name in HOUSING_FEATURES:
        np.testing.assert_allclose(back.column(name).to_numpy(), orig.column(name).to_numpy(), rtol=1e-12)


def test_parquet_on_stdin_and_to_stdout(tmp_path):
    data = HOUSING_PARQUET.read_bytes()
    r = bncli("fit", "-", "-s", tmp_path / "s.json", input=data)
    assert r.stdout[:4] == b"PAR1"  # Parquet in, Parquet out
    t = pq.read_table(pa.BufferReader(r.stdout))
    assert t.num_rows == 20640
    by_file = bncli("fit", HOUSING_PARQUET, "-s", tmp_path / "s2.json", "-o", "/dev/null")
    assert by_file.returncode == 0
    a = json.loads((tmp_path / "s.json").read_text())
    b = json.loads((tmp_path / "s2.json").read_text())
    assert a["state_dict"] == b["state_dict"] and a["global"] == b["global"]


def test_gzip_input_by_extension_and_by_sniffing(tmp_path):
    gz = tmp_path / "h.csv.gz"
    gz.write_bytes(gzip.compress(HOUSING.read_bytes()))
    plain = bncli("fit", HOUSING, "-s", tmp_path / "p.json").stdout
    assert bncli("fit", gz, "-s", tmp_path / "g.json").stdout == plain
    assert bncli("fit", "-", "-s", tmp_path / "i.json", input=gz.read_bytes()).stdout == plain
    assert (
        json.loads((tmp_path / "g.json").read_text())["global"]
        == json.loads((tmp_path / "p.json").read_text())["global"]
    )


def test_gzip_output_by_extension(tmp_path):
    bncli("transform", HOUSING, "-s", _fit_housing(tmp_path), "-o", tmp_path / "t.csv.gz")
    text = gzip.decompress((tmp_path / "t.csv.gz").read_bytes()).decode()
    assert text == bncli("transform", HOUSING, "-s", tmp_path / "h.json").stdout.decode()


def test_tsv_in_csv_out(tmp_path):
    tsv = tmp_path / "h.tsv"
    tsv.write_text(HOUSING.read_text().replace(",", "\t"))
    out = bncli("transform", tsv, "-s", _fit_housing(tmp_path), "--output-format", "csv").stdout.decode()
    assert out == bncli("transform", HOUSING, "-s", tmp_path / "h.json").stdout.decode()
    tsv_out = bncli("transform", tsv, "-s", tmp_path / "h.json").stdout.decode()
    assert tsv_out.splitlines()[0] == "\t".join(HOUSING_FEATURES + ["ocean_proximity"])


def _fit_housing(tmp_path) -> Path:
    stats = tmp_path / "h.json"
    if not stats.exists():
        bncli("fit", HOUSING, "-s", stats, "-o", "/dev/null")
    return stats


def test_california_housing_end_to_end(tmp_path):
    """Global statistics against pandas; transform --use global is pandas' z-score (ddof=1)."""
    pd = pytest.importorskip("pandas")
    stats = _fit_housing(tmp_path)
    doc = json.loads(stats.read_text())
    df = pd.read_csv(HOUSING)
    assert doc["columns"] == HOUSING_FEATURES
    assert doc["global"]["count"] == [int(df[c].count()) for c in HOUSING_FEATURES]
    assert doc["global"]["nan_count"][4] == 207
    np.testing.assert_allclose(doc["global"]["mean"], df[HOUSING_FEATURES].mean().to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(doc["global"]["var_sample"], df[HOUSING_FEATURES].var().to_numpy(), rtol=1e-10)
    assert doc["state_dict"]["num_batches_tracked"] == 20640 // 256 + 1
    bncli("transform", HOUSING, "-s", stats, "--use", "global", "-o", tmp_path / "z.csv")
    z = pd.read_csv(tmp_path / "z.csv")
    want = (df[HOUSING_FEATURES] - df[HOUSING_FEATURES].mean()) / np.sqrt(df[HOUSING_FEATURES].var() + 1e-5)
    np.testing.assert_allclose(z[HOUSING_FEATURES].to_numpy(), want.to_numpy(), rtol=1e-9, atol=1e-12)
    assert (z["ocean_proximity"] == df["ocean_proximity"]).all()


def test_several_inputs_are_one_stream(tmp_path):
    lines = HOUSING.read_text().splitlines(keepends=True)
    (tmp_path / "a.csv").write_text("".join(lines[:10001]))
    (tmp_path / "b.csv").write_text(lines[0] + "".join(lines[10001:]))
    whole = bncli("fit", HOUSING, "-s", tmp_path / "w.json").stdout
    parts = bncli("fit", tmp_path / "a.csv", tmp_path / "b.csv", "-s", tmp_path / "p.json").stdout
    assert parts == whole
    w, p = (json.loads((tmp_path / f).read_text()) for f in ("w.json", "p.json"))
    assert w["state_dict"] == p["state_dict"] and w["global"] == p["global"]
    assert [i["rows"] for i in p["provenance"]["inputs"]] == [10000, 10640]


def test_fit_statistics_only_to_dev_null(tmp_path):
    r = bncli("fit", HOUSING, "-s", tmp_path / "s.json", "-o", "/dev/null")
    assert r.stdout == b""
    with_output = bncli("fit", HOUSING, "-s", tmp_path / "s2.json", "-o", tmp_path / "o.csv")
    assert with_output.returncode == 0
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("s.json", "s2.json"))
    assert a["state_dict"] == b["state_dict"] and a["global"] == b["global"]


def test_precision_rounds_to_significant_digits(tmp_path):
    out = bncli("transform", HOUSING, "-s", _fit_housing(tmp_path), "--precision", "4").stdout.decode().splitlines()
    full = bncli("transform", HOUSING, "-s", tmp_path / "h.json").stdout.decode().splitlines()
    a = np.array([float(v) for v in out[1].split(",")[:9]])
    b = np.array([float(v) for v in full[1].split(",")[:9]])
    np.testing.assert_allclose(a, b, rtol=5e-4)
    assert all(len(v.lstrip("-").replace(".", "").lstrip("0").split("e")[0]) <= 4 for v in out[1].split(",")[:9])


def test_stats_file_is_strict_json_and_round_trips_bits(tmp_path):
    stats = _fit_housing(tmp_path)
    text = stats.read_text()
    assert "NaN" not in text and "Infinity" not in text
    doc = json.loads(text)
    from bncli.stats import Stats

    again = Stats.from_dict(doc).to_dict()
    again.pop("provenance"), doc.pop("provenance")
    assert again == doc  # floats read back bit-identical


def test_precision_leaves_pass_through_float_columns_alone(tmp_path):
    """--precision rounds the normalized features only; an excluded float32 or
    float64 column is written as it came (it used to crash on float32)."""
    import pyarrow.parquet as pq

    src = tmp_path / "in.parquet"
    pq.write_table(
        pa.table(
            {
                "x": [1.0, 2.0, 4.0, 8.0],
                "keep32": pa.array([1.2345678, 2.5, -3.25, 0.1], pa.float32()),
                "keep64": [1.23456789, 98765.4321, -0.000123456789, 7.0],
            }
        ),  # fmt: skip
        src,
    )
    r = bncli("fit", src, "-s", tmp_path / "s.json", "-o", "/dev/null", "-c", "x", "-b", "2")
    assert r.returncode == 0, r.stderr
    r = bncli("transform", src, "-s", tmp_path / "s.json", "-o", tmp_path / "o.csv", "--precision", "3")
    assert r.returncode == 0, r.stderr
    lines = (tmp_path / "o.csv").read_text().splitlines()
    assert [ln.split(",", 1)[1] for ln in lines] == [
        "keep32,keep64", "1.2345678,1.23456789", "2.5,98765.4321", "-3.25,-0.000123456789", "0.1,7"
    ]  # fmt: skip
    assert all(len(ln.split(",")[0].lstrip("-").replace(".", "").lstrip("0").split("e")[0]) <= 3 for ln in lines[1:])
