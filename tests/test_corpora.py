"""Third-party edge-case corpora: every CSV, TSV and Parquet file goes through ``bncli fit``.

The corpora live outside the repository, in ``../shared/corpora`` (see its
README.md); these tests skip when it is absent.  Each file must either succeed
or fail with one clean ``Error:`` line (exit 1 or 2): never a traceback, a hang
or a partial output.  csv-spectrum's expected JSON is checked value by value.

``python tests/test_corpora.py`` rewrites docs/corpora.md from actual runs.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import signal
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from bncli.cli import cli
from bncli.stats import Params, Stats

REPO = Path(__file__).resolve().parents[1]
CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
DATA = Path(__file__).resolve().parent / "data"
DOC = REPO / "docs" / "corpora.md"
SUFFIXES = (".csv", ".tsv", ".parquet")
TIMEOUT_S = 60

needs_corpora = pytest.mark.skipif(not CORPORA.is_dir(), reason=f"{CORPORA} not present")


def corpus_files() -> list[Path]:
    if not CORPORA.is_dir():
        return []
    return sorted(p for p in CORPORA.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)


def _id(p: Path) -> str:
    return str(p.relative_to(CORPORA))


class Hang(Exception):
    pass


@contextmanager
def time_limit(seconds: int):
    """Fail instead of hanging (SIGALRM reaches the main thread between bytecodes)."""

    def on_alarm(signum, frame):
        raise Hang(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


#: Outcomes of this session's runs, by file, so the docs check need not run everything twice.
_SEEN: dict[Path, Outcome] = {}


@dataclass
class Outcome:
    code: int
    message: str  # the Error: line ('' on success)
    rows: int | None  # rows written on success


def run_fit(src: Path, workdir: Path) -> Outcome:
    """``bncli fit SRC -s S -o OUT`` in-process, with every check that applies to any file."""
    out = workdir / ("out.parquet" if src.suffix == ".parquet" else "out.csv")
    stats = workdir / "stats.json"
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    with time_limit(TIMEOUT_S):
        r = CliRunner().invoke(cli, ["fit", str(src), "-s", str(stats), "-o", str(out)])
    err = r.stderr
    assert isinstance(r.exception, (SystemExit, type(None))), f"{r.exception!r}\n{err}"
    assert r.exit_code in (0, 1, 2), (r.exit_code, err)
    assert "Traceback" not in err and "internal error" not in err, err
    assert hashlib.sha256(src.read_bytes()).hexdigest() == digest, "the input was modified"
    left = sorted(p.name for p in workdir.iterdir())
    if r.exit_code:
        lines = [line for line in err.splitlines() if line.strip() and not line.startswith("Warning:")]
        assert len(lines) == 1 and lines[0].startswith("Error: "), err
        assert left == [], f"a failed run left {left}"
        return Outcome(r.exit_code, lines[0], None)
    assert left == sorted([out.name, stats.name]), left
    json.loads(stats.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in the stats file"))
    if out.suffix == ".parquet":
        rows = pq.ParquetFile(out).metadata.num_rows
    else:
        rows = len(list(csv.reader(io.StringIO(out.read_bytes().decode("utf-8"), newline="")))) - 1
    return Outcome(0, "", rows)


def expected_rows(src: Path) -> int | None:
    """Data rows as an independent reader sees them (None where that is not well defined)."""
    if src.suffix == ".parquet":
        try:
            return pq.read_table(src).num_rows
        except Exception:
            return None
    try:
        text = src.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    delimiter = "\t" if src.suffix == ".tsv" else ","
    records = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if r]
    return max(len(records) - 1, 0)


# -- every file ----------------------------------------------------------------------------


@needs_corpora
@pytest.mark.parametrize("src", corpus_files(), ids=_id)
def test_fit_every_corpus_file(src, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    outcome = _SEEN[src] = run_fit(src, workdir)
    if outcome.code == 0:
        want = expected_rows(src)
        if want is not None:
            assert outcome.rows == want, (outcome.rows, want)


@needs_corpora
def test_bad_data_parquet_files_are_all_seen():
    bad = sorted((CORPORA / "parquet" / "parquet-testing" / "bad_data").glob("*.parquet"))
    assert len(bad) >= 8
    assert set(bad) <= set(corpus_files())


def test_parquet_row_group_shorter_than_its_footer(tmp_path):
    """ARROW-GH-41317: pyarrow yields no rows for a row group whose footer says 3,
    without an error; bncli must not silently drop them (copy in tests/data)."""
    src = DATA / "ARROW-GH-41317.parquet"
    workdir = tmp_path / "w"
    workdir.mkdir()
    outcome = run_fit(src, workdir)
    assert outcome.code == 1
    assert "row group 1 of 2 holds 3 rows but only 0 could be read" in outcome.message


def run_pass_through(src: Path, workdir: Path) -> Outcome:
    """``bncli transform`` with a stats file of no features: every column is decoded and passed
    through.  Each value must come out as it went in (CSV: cell for cell as Python's csv module
    reads it, Parquet: the row count), or the run fails cleanly."""
    stats = workdir.parent / "no-features.json"
    stats.write_text(Stats.initial([], Params()).to_json())
    out = workdir / ("out.parquet" if src.suffix == ".parquet" else "out.csv")
    with time_limit(TIMEOUT_S):
        r = CliRunner().invoke(cli, ["transform", str(src), "-s", str(stats), "-o", str(out)])
    err = r.stderr
    assert isinstance(r.exception, (SystemExit, type(None))), f"{r.exception!r}\n{err}"
    assert r.exit_code in (0, 1, 2) and "Traceback" not in err and "internal error" not in err, err
    if r.exit_code:
        lines = [line for line in err.splitlines() if line.strip() and not line.startswith("Warning:")]
        assert len(lines) == 1 and lines[0].startswith("Error: "), err
        assert list(workdir.iterdir()) == []
        return Outcome(r.exit_code, lines[0], None)
    if src.suffix == ".parquet":
        rows = pq.ParquetFile(out).metadata.num_rows
        want = expected_rows(src)
        assert want is None or rows == want, (rows, want)
        return Outcome(0, "", rows)
    delimiter = "\t" if src.suffix == ".tsv" else ","
    text = src.read_bytes().decode("utf-8-sig")
    records = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if r]
    got = list(csv.reader(io.StringIO(out.read_bytes().decode("utf-8"), newline="")))  # out.csv: commas
    assert got == records
    return Outcome(0, "", len(got) - 1)


@needs_corpora
@pytest.mark.parametrize("src", corpus_files(), ids=_id)
def test_pass_through_every_corpus_file(src, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    run_pass_through(src, workdir)


# -- csv-spectrum: expected values ---------------------------------------------------------


def spectrum_cases() -> list[Path]:
    d = CORPORA / "csv" / "csv-spectrum" / "csvs"
    return sorted(d.glob("*.csv")) if d.is_dir() else []


def _is_number(s: str) -> bool:
    try:
        return math.isfinite(float(s))
    except ValueError:
        return False


def _identity_stats(features: list[str], path: Path) -> None:
    """Stats whose transform returns each value unchanged: mean 0, variance 1, eps below 1's ulp."""
    stats = Stats.initial(features, Params(eps=2.0**-60))
    path.write_text(stats.to_json())


@needs_corpora
@pytest.mark.parametrize("src", spectrum_cases(), ids=lambda p: p.name)
def test_csv_spectrum_values(src, tmp_path):
    expected = json.loads((src.parent.parent / "json" / (src.stem + ".json")).read_text(encoding="utf-8"))
    columns = list(expected[0])
    numeric = [c for c in columns if any(r[c] for r in expected) and all(_is_number(r[c]) for r in expected if r[c])]
    stats, out = tmp_path / "identity.json", tmp_path / "out.csv"
    _identity_stats(numeric, stats)
    with time_limit(TIMEOUT_S):
        r = CliRunner().invoke(cli, ["transform", str(src), "-s", str(stats), "-o", str(out)])
    assert r.exit_code == 0, r.stderr
    got = list(csv.DictReader(io.StringIO(out.read_bytes().decode("utf-8"), newline="")))
    assert list(got[0]) == columns if got else True
    assert len(got) == len(expected)
    for want, row in zip(expected, got, strict=False):
        for c in columns:
            if c in numeric and want[c]:
                assert float(row[c]) == float(want[c]), (c, row[c], want[c])
            else:
                assert row[c] == want[c], (c, row[c], want[c])  # pass-through text, byte for byte

    # fit (which needs two rows) passes the same text through unchanged.
    fitted = tmp_path / "fit.csv"
    with time_limit(TIMEOUT_S):
        r = CliRunner().invoke(cli, ["fit", str(src), "-s", str(tmp_path / "s.json"), "-o", str(fitted)])
    if r.exit_code == 0:
        got = list(csv.DictReader(io.StringIO(fitted.read_bytes().decode("utf-8"), newline="")))
        features = json.loads((tmp_path / "s.json").read_text())["columns"]
        assert len(got) == len(expected)
        for want, row in zip(expected, got, strict=False):
            for c in columns:
                if c not in features:
                    assert row[c] == want[c], (c, row[c], want[c])
    else:
        assert "only one data row" in r.stderr, r.stderr


# -- docs/corpora.md -------------------------------------------------------------------------


def _reason(message: str, src: Path) -> str:
    """The Error: line without the prefix and the file path, for the table."""
    text = message.removeprefix("Error: ").replace(str(src), "FILE")
    return text.replace("|", "\\|")


def sweep(run) -> list[tuple[Path, Outcome]]:
    results = []
    for src in corpus_files():
        with tempfile.TemporaryDirectory() as d:
            work = Path(d) / "work"
            work.mkdir()
            results.append((src, run(src, work)))
    return results


def render(results: list[tuple[Path, Outcome]], passed: list[tuple[Path, Outcome]]) -> str:
    rejected = [(s, o) for s, o in results if o.code]
    accepted = [(s, o) for s, o in results if not o.code]
    lines = [
        "# Third-party corpora: what `bncli fit` accepts and rejects",
        "",
        "<!-- generated by `python tests/test_corpora.py` from actual runs; do not edit by hand -->",
        "",
        "`tests/test_corpora.py` runs `bncli fit FILE -s stats.json -o out.{csv,parquet}` over every CSV,",
        "TSV and Parquet file in `../shared/corpora/` (see its README.md for where each comes from).",
        "Every file either succeeds or stops with one `Error:` line and exit 1 or 2, leaving no output.",
        f"Of {len(results)} files, {len(accepted)} are accepted and {len(rejected)} rejected.",
        "",
        "Typical reasons, and why they are right for a normalizer:",
        "",
        "- *only one data row* / *no data rows*: `fit` needs two values per batch, as",
        "  `torch.nn.BatchNorm1d` does in training mode (`transform` accepts such files).",
        "- *no numeric columns*: nothing to normalize; `--columns` names features explicitly.",
        "- *expected N fields like the header*: ragged rows are refused, never padded or cut.",
        "- *duplicate column name*: usually several empty header cells; the output could not name them.",
        "- *not valid UTF-8*: the file is in another encoding; `--encoding` reads it (e.g. latin-1, utf-16).",
        "- *quoted field ... never closed*: pyarrow would swallow the rest of the file into one value.",
        "- Parquet: files pyarrow cannot decode, and row groups that yield fewer rows than their footer",
        "  promises (silent data loss otherwise).",
        "",
        "Files read with a header that a human would not choose (comment lines, title rows, `;` or",
        "backtick delimiters without `--delimiter`) still succeed when their columns happen to be",
        "consistent; bncli does not guess dialects.",
        "",
        "## Rejected",
        "",
        "| file | exit | reason |",
        "|---|---:|---|",
    ]
    for src, o in rejected:
        lines.append(f"| `{_id(src)}` | {o.code} | {_reason(o.message, src)} |")
    lines += ["", "## Accepted", "", "| file | rows written |", "|---|---:|"]
    for src, o in accepted:
        lines.append(f"| `{_id(src)}` | {o.rows} |")
    failed = [(s, o) for s, o in passed if o.code]
    fit_message = {s: o.message for s, o in results}
    new = [(s, o) for s, o in failed if o.message != fit_message.get(s)]
    lines += [
        "",
        "## Pass-through",
        "",
        "A rejected `fit` may stop before it decodes every column, so the same files also go through",
        "`bncli transform` with a stats file of no features: every column is decoded and written back.",
        "Each CSV that passes comes out cell for cell as Python's csv module reads it; each Parquet file",
        f"keeps its rows.  {len(passed) - len(failed)} of {len(passed)} files pass; {len(failed) - len(new)} fail",
        "with the same message as `fit` above, and these fail for another reason:",
        "",
        "| file | exit | reason |",
        "|---|---:|---|",
    ]
    for src, o in new:
        lines.append(f"| `{_id(src)}` | {o.code} | {_reason(o.message, src)} |")
    return "\n".join(lines) + "\n"


@needs_corpora
@pytest.mark.skipif(not DOC.exists(), reason="docs/corpora.md not generated")
def test_docs_table_matches_actual_runs():
    """Which files docs/corpora.md lists as rejected is what bncli does today."""
    text = DOC.read_text()
    section = text.split("## Rejected", 1)[1].split("## Accepted", 1)[0]

    documented = {line.split("`")[1] for line in section.splitlines() if line.startswith("| `")}
    actual = set()
    for src in corpus_files():
        if src not in _SEEN:
            with tempfile.TemporaryDirectory() as d:
                (Path(d) / "work").mkdir()
                _SEEN[src] = run_fit(src, Path(d) / "work")
        if _SEEN[src].code:
            actual.add(_id(src))
    assert documented == actual, f"regenerate with python tests/test_corpora.py: {documented ^ actual}"


if __name__ == "__main__":
    if not CORPORA.is_dir():
        sys.exit(f"{CORPORA} not present")
    DOC.write_text(render(sweep(run_fit), sweep(run_pass_through)))
    print(f"wrote {os.path.relpath(DOC)}")
