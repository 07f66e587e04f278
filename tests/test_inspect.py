"""``bncli inspect``: the table, --json, --data histograms and the --html page.

Expectations are computed here from the data with numpy (np.histogram,
np.nanmean, ...), not read back from bncli's own helpers.
"""

from __future__ import annotations

import json
import math
import os
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from click.testing import CliRunner

from bncli.cli import cli
from bncli.inspect import Histogram, fmt_label

LONG = "a_really_long_feature_name_" + "x" * 70 + "_end"
WEIRD = "weird <name> & co"
EPS = 1e-5
SVG = "{http://www.w3.org/2000/svg}"


def _write_csv(path, columns: dict[str, np.ndarray]) -> None:
    names = list(columns)
    n = len(next(iter(columns.values())))
    with open(path, "w") as fh:
        fh.write(",".join(f'"{c}"' if "," in c or '"' in c else c for c in names) + "\n")
        for i in range(n):
            fh.write(",".join("" if np.isnan(columns[c][i]) else repr(float(columns[c][i])) for c in names) + "\n")


def _data(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    gauss = rng.normal(50.0, 8.0, n)
    skewed = rng.exponential(3.0, n)
    holes = rng.normal(size=n)
    holes[rng.random(n) < 0.2] = np.nan
    return {"gauss": gauss, LONG: skewed, WEIRD: holes, "const": np.full(n, 7.0)}


def _invoke(*args):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """(directory, data dict, stats path, parsed stats file) for a fit of _data()."""
    d = tmp_path_factory.mktemp("inspect")
    data = _data()
    _write_csv(d / "train.csv", data)
    result = _invoke("fit", str(d / "train.csv"), "-s", str(d / "stats.json"), "-o", os.devnull, "-b", "64", "-q")
    assert result.exit_code == 0, result.output
    with open(d / "stats.json") as fh:
        stats = json.load(fh)
    return d, data, str(d / "stats.json"), stats


def _strict_json(text: str):
    def reject(name):
        raise AssertionError(f"non-strict JSON constant {name}")

    return json.loads(text, parse_constant=reject)


# -- the table ----------------------------------------------------------------------------


def test_table_shows_every_feature_name_whole_when_stdout_is_not_a_terminal(fitted):
    _, data, stats_path, _ = fitted
    result = _invoke("inspect", stats_path)
    assert result.exit_code == 0, result.output
    out = result.stdout
    lines = out.splitlines()
    for name in data:
        assert any(name in line for line in lines), f"{name!r} not on one line"
    assert "…" not in out and "\x1b" not in out
    assert all(line == line.rstrip() for line in lines), "trailing blanks"
    # parameters and provenance above the table
    assert out.index("momentum cumulative") < out.index("gauss")
    assert "batch size 64" in out and "eps 1e-05" in out
    assert "train.csv (csv, 1,000 rows" in out and "bncli version" in out


def test_table_row_values_and_flags(fitted):
    _, data, stats_path, _ = fitted
    out = _invoke("inspect", stats_path).stdout
    row = next(line for line in out.splitlines() if line.strip().startswith("const "))
    assert "1,000" in row and "constant" in row
    weird = next(line for line in out.splitlines() if WEIRD in line)
    n_missing = int(np.isnan(data[WEIRD]).sum())
    assert f"{n_missing:,}" in weird.split()
    assert "constant: variance 0" in out  # the legend explains the flag


def test_table_fits_a_narrow_terminal_without_truncating(fitted, monkeypatch):
    """On an 80-column terminal the table folds names and splits in two, never truncates."""
    import io

    from rich.console import Console

    from bncli.inspect import build_report, render_terminal
    from bncli.stats import load_stats

    _, data, stats_path, _ = fitted
    report = build_report(load_stats(stats_path), stats_path)

    class Tty(io.StringIO):
        def isatty(self):
            return True

    buf = Tty()
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("COLUMNS", "80")  # rich's width when the stream has no real terminal size
    assert Console(file=buf).width == 80
    render_terminal(report, file=buf)
    text = re.sub(r"\x1b\[[0-9;]*m", "", buf.getvalue())
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "running statistics" in text  # split into two tables
    # the folded name reads whole down the first column
    first_table = text[text.index("whole-data statistics") : text.index("running statistics")]
    first_cells = [line.split()[0] for line in first_table.splitlines()[3:] if line.strip()]
    assert LONG in "".join(first_cells)


# -- JSON ------------------------------------------------------------------------------------


def test_json_matches_the_data_and_the_stats_file(fitted):
    _, data, stats_path, stats = fitted
    result = _invoke("inspect", stats_path, "--json")
    assert result.exit_code == 0
    report = _strict_json(result.stdout)
    assert report["params"] == {"batch_size": 64, "momentum": None, "eps": EPS, "drop_last": False}
    assert report["data"] is None
    assert [f["name"] for f in report["features"]] == list(data)
    for i, f in enumerate(report["features"]):
        x = data[f["name"]]
        assert f["count"] == int((~np.isnan(x)).sum())
        assert f["missing"] == int(np.isnan(x).sum())
        assert f["mean"] == pytest.approx(np.nanmean(x), rel=1e-12)
        assert f["std"] == pytest.approx(np.nanstd(x, ddof=1), rel=1e-9, abs=1e-12)
        assert f["min"] == np.nanmin(x) and f["max"] == np.nanmax(x)
        assert f["running_mean"] == stats["state_dict"]["running_mean"][i]
        assert f["running_std"] == pytest.approx(math.sqrt(stats["state_dict"]["running_var"][i]), rel=1e-15)
        assert f["batches_tracked"] == stats["column_batches_tracked"][i]
        assert f["histogram"] is None
    flags = {f["name"]: f["flags"] for f in report["features"]}
    assert flags["const"] == ["constant"]
    assert flags["gauss"] == []


def test_json_is_strict_with_null_for_undefined(tmp_path):
    data = {"ok": np.arange(10.0), "empty": np.full(10, np.nan)}
    _write_csv(tmp_path / "d.csv", data)
    assert (
        _invoke("fit", str(tmp_path / "d.csv"), "-s", str(tmp_path / "s.json"), "-o", os.devnull, "-q").exit_code == 0
    )
    result = _invoke("inspect", str(tmp_path / "s.json"), "--json", "--data", str(tmp_path / "d.csv"))
    assert result.exit_code == 0, result.output
    report = _strict_json(result.stdout)
    empty = report["features"][1]
    assert empty["flags"] == ["all_missing"]
    assert empty["mean"] is None and empty["std"] is None and empty["min"] is None
    assert empty["histogram"] == {"values": 0, "missing": 10, "raw": None, "normalized": None}
    # and the terminal view says so instead of drawing
    out = _invoke("inspect", str(tmp_path / "s.json"), "--data", str(tmp_path / "d.csv")).stdout
    assert "undefined: no fitted range" in out


# -- histograms --------------------------------------------------------------------------------


def _normalize(x, mean, var):
    return (x - mean) / np.sqrt(var + EPS)


def test_histograms_match_numpy_on_the_training_data(fitted):
    d, data, stats_path, stats = fitted
    bins = 7
    result = _invoke("inspect", stats_path, "--data", str(d / "train.csv"), "--bins", str(bins), "--json")
    assert result.exit_code == 0, result.output
    report = _strict_json(result.stdout)
    assert report["data"]["rows"] == 1000 and report["data"]["bins"] == bins
    for i, f in enumerate(report["features"]):
        x = data[f["name"]]
        x = x[~np.isnan(x)]
        h = f["histogram"]
        assert h["values"] == x.size and h["missing"] == 1000 - x.size
        lo, hi = x.min(), x.max()
        if lo == hi:  # constant: numpy widens the range by 0.5 each side, and so does bncli
            lo, hi = lo - 0.5, hi + 0.5
        counts, edges = np.histogram(x, bins=bins, range=(lo, hi))
        assert h["raw"]["counts"] == counts.tolist()
        assert h["raw"]["edges"] == pytest.approx(edges.tolist(), rel=1e-15, abs=1e-15)
        assert h["raw"]["below"] == h["raw"]["above"] == 0  # training data: all inside

        mean, var = stats["state_dict"]["running_mean"][i], stats["state_dict"]["running_var"][i]
        y = _normalize(x, mean, var)
        ylo, yhi = _normalize(np.array([x.min(), x.max()]), mean, var)
        if ylo == yhi:
            ylo, yhi = ylo - 0.5, yhi + 0.5
        counts, edges = np.histogram(y, bins=bins, range=(ylo, yhi))
        assert h["normalized"]["counts"] == counts.tolist()
        assert h["normalized"]["edges"] == pytest.approx(edges.tolist(), rel=1e-12)
        assert sum(h["normalized"]["counts"]) == x.size


def test_global_statistics_centre_the_training_data(fitted):
    d, data, stats_path, _ = fitted
    result = _invoke("inspect", stats_path, "--data", str(d / "train.csv"), "--use", "global", "--json")
    report = _strict_json(result.stdout)
    g = next(f for f in report["features"] if f["name"] == "gauss")
    x = data["gauss"]
    z = (x - x.mean()) / np.sqrt(x.var(ddof=1) + EPS)
    assert g["histogram"]["normalized"]["lo"] == pytest.approx(z.min(), rel=1e-12)
    assert g["histogram"]["normalized"]["hi"] == pytest.approx(z.max(), rel=1e-12)
    assert report["use"] == "global"


def test_new_data_outside_the_fitted_range_is_counted_not_binned(fitted, tmp_path):
    _, data, stats_path, stats = fitted
    new = {k: v.copy() for k, v in _data(n=300, seed=1).items()}
    new["gauss"][:5] = -1e3  # far below the fitted min
    new["gauss"][5:12] = 1e3  # far above the fitted max
    _write_csv(tmp_path / "new.csv", new)
    result = _invoke("inspect", stats_path, "--data", str(tmp_path / "new.csv"), "--bins", "9", "--json")
    assert result.exit_code == 0, result.output
    f = _strict_json(result.stdout)["features"][0]
    x = new["gauss"]
    lo, hi = data["gauss"].min(), data["gauss"].max()
    raw = f["histogram"]["raw"]
    assert raw["below"] == int((x < lo).sum()) >= 5
    assert raw["above"] == int((x > hi).sum()) >= 7
    counts, _ = np.histogram(x, bins=9, range=(lo, hi))  # numpy also leaves them out
    assert raw["counts"] == counts.tolist()
    assert sum(raw["counts"]) + raw["below"] + raw["above"] == x.size
    norm_h = f["histogram"]["normalized"]
    assert (norm_h["below"], norm_h["above"]) == (raw["below"], raw["above"])
    out = _invoke("inspect", stats_path, "--data", str(tmp_path / "new.csv"), "--bins", "9").stdout
    assert f"out of range: {raw['below']} below" in out


def test_histogram_is_independent_of_chunking():
    rng = np.random.default_rng(3)
    x = rng.normal(size=10_001)
    whole = Histogram.over(-2.0, 2.0, 13)
    whole.add(x)
    parts = Histogram.over(-2.0, 2.0, 13)
    for chunk in np.array_split(x, 17):
        parts.add(chunk)
    expected, edges = np.histogram(x, bins=13, range=(-2.0, 2.0))
    assert parts.counts.tolist() == whole.counts.tolist() == expected.tolist()
    assert parts.edges.tolist() == edges.tolist()
    assert (parts.below, parts.above) == (int((x < -2).sum()), int((x > 2).sum()))
    assert Histogram.over(float("nan"), 1.0, 5) is None


def test_terminal_histograms_are_drawn_with_labelled_axes(fitted):
    d, data, stats_path, _ = fitted
    out = _invoke("inspect", stats_path, "--data", str(d / "train.csv"), "--bins", "12").stdout
    assert "▁" in out or "█" in out
    block = out[out.index("\ngauss ") :]
    x = data["gauss"]
    counts, _ = np.histogram(x, bins=12, range=(x.min(), x.max()))
    top = f"{counts.max():,} ┤"
    assert block.count(top) == 2  # raw and normalized share the shape, so the same tallest bar
    assert f"{x.min():.6g}" in block and f"{x.max():.6g}" in block
    assert "after transform (running)" in block


# -- HTML ----------------------------------------------------------------------------------


def _svgs(page: str):
    return [ET.fromstring(m) for m in re.findall(r"<svg\b.*?</svg>", page, flags=re.S)]


def test_html_page_draws_each_feature_before_and_after(fitted, tmp_path):
    d, data, stats_path, _ = fitted
    page_path = tmp_path / "report.html"
    bins = 11
    result = _invoke(
        "inspect", stats_path, "--data", str(d / "train.csv"), "--bins", str(bins), "--html", str(page_path), "--json"
    )
    assert result.exit_code == 0, result.output
    report = _strict_json(result.stdout)
    page = page_path.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "<link" not in page and not re.search(r"(src|href)=", page)
    assert "&lt;name&gt; &amp; co" in page and "<name>" not in page  # escaped
    svgs = _svgs(page)
    assert len(svgs) == 2 * len(data)
    for i, name in enumerate(data):
        x = data[name]
        x = x[~np.isnan(x)]
        lo, hi = x.min(), x.max()
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        expected, _ = np.histogram(x, bins=bins, range=(lo, hi))
        for svg, which in zip(svgs[2 * i : 2 * i + 2], ("raw", "normalized"), strict=False):
            bars = svg.findall(f".//{SVG}rect[@class='bar']")
            assert len(bars) == bins
            counts = [int(b.get("data-count")) for b in bars]
            assert counts == report["features"][i]["histogram"][which]["counts"] == expected.tolist()
            heights = np.array([float(b.get("height")) for b in bars])
            assert (heights[expected == 0] == 0).all()
            ratio = heights[expected > 0] / expected[expected > 0]
            assert ratio == pytest.approx(np.full(ratio.shape, ratio[0]), rel=1e-3, abs=2e-3)
            labels = {t.get("class"): t.text for t in svg.iter(f"{SVG}text")}
            h = report["features"][i]["histogram"][which]
            assert labels["xlabel lo"] == fmt_label(h["lo"]) and labels["xlabel hi"] == fmt_label(h["hi"])
            yticks = [int(t.text.replace(",", "")) for t in svg.iter(f"{SVG}text") if t.get("class") == "ylabel"]
            assert yticks[0] == 0 and yticks[-1] >= expected.max()
        raw_title = svgs[2 * i].find(f"{SVG}text").text
        assert raw_title == "raw values"
    # the feature table is there too
    assert page.count('<td class="name">') == len(data)


def test_html_without_data_has_the_table_only(fitted, tmp_path):
    _, data, stats_path, _ = fitted
    result = _invoke("inspect", stats_path, "--html", str(tmp_path / "t.html"))
    assert result.exit_code == 0
    page = (tmp_path / "t.html").read_text()
    assert "<svg" not in page and "--data FILE" in page
    assert page.count('<td class="name">') == len(data)


# -- errors -----------------------------------------------------------------------------------


def test_missing_stats_file_is_one_error_line(tmp_path):
    result = _invoke("inspect", str(tmp_path / "nope.json"))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: stats file {tmp_path / 'nope.json'}: no such file (hint: ")
    assert result.stdout == ""


def test_data_without_the_features_fails_and_writes_no_page(fitted, tmp_path):
    _, _, stats_path, _ = fitted
    (tmp_path / "other.csv").write_text("a,b\n1,2\n3,4\n")
    page = tmp_path / "r.html"
    result = _invoke("inspect", stats_path, "--data", str(tmp_path / "other.csv"), "--html", str(page))
    assert result.exit_code == 1
    assert re.match(
        r"Error: \S*other.csv: fitted feature column\(s\) missing from the data: 'gauss'.*\(hint: ", result.stderr
    )
    assert os.listdir(tmp_path) == ["other.csv"]  # no page, no temporary file


def test_html_may_not_overwrite_an_input(fitted):
    _, _, stats_path, _ = fitted
    result = _invoke("inspect", stats_path, "--html", stats_path)
    assert result.exit_code == 2
    assert "never overwrites an input" in result.stderr


def test_summary_line_with_verbose_only(fitted):
    d, _, stats_path, _ = fitted
    quiet = _invoke("inspect", stats_path, "--data", str(d / "train.csv"))
    assert quiet.stderr == ""  # not a terminal, no -v: nothing on stderr
    loud = _invoke("inspect", stats_path, "--data", str(d / "train.csv"), "-v")
    assert re.fullmatch(r"inspect: 4 features, 1,000 rows of \S+train.csv in [\d.]+ s \([\d,]+ rows/s\)\n", loud.stderr)
