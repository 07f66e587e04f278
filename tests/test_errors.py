"""Bad input never crashes bncli or loses data (issue 3).

Each case checks the exit code, the one-line message (what, where, hint), that
no traceback is printed, and that no file was created, changed or left behind
(``Snapshot``).  Most cases run in-process through Click's runner; those that
need a real process (signals, pipes, /dev/full, permissions) run ``python -m
bncli`` as a user would.
"""

from __future__ import annotations

import ctypes
import decimal
import errno
import gzip
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bncli import files, readers
from bncli.cli import cli

OK = "a,b,c\n1,2,x\n3,4,y\n5,7,z\n"


# -- helpers ----------------------------------------------------------------------------


class Snapshot:
    """Every file under a folder (bytes, or a symlink's target) at one moment."""

    def __init__(self, root: Path):
        self.root = root
        self.files = self._take()

    def _take(self) -> dict[str, object]:
        out = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                p = os.path.join(dirpath, name)
                rel = os.path.relpath(p, self.root)
                out[rel] = ("link", os.readlink(p)) if os.path.islink(p) else Path(p).read_bytes()
        return out

    def assert_unchanged(self):
        now = self._take()
        assert sorted(now) == sorted(self.files), f"files created or removed: {set(now) ^ set(self.files)}"
        changed = [k for k in now if now[k] != self.files[k]]
        assert not changed, f"files changed: {changed}"


def invoke(runner, *args, input=None):
    return runner.invoke(cli, [str(a) for a in args], input=input)


def assert_fails(result, code: int, *parts: str):
    """Exit ``code``, one ``Error:`` line on stderr containing ``parts``, no traceback."""
    err = result.stderr
    assert result.exit_code == code, (result.exit_code, err, result.exception)
    assert isinstance(result.exception, (SystemExit, type(None))), repr(result.exception)
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("Warning:")]
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def assert_usage(result, *parts: str):
    """Click's usage style: exit 2, 'Usage:' and 'Error: Invalid value ...', no traceback."""
    err = result.stderr
    assert result.exit_code == 2, (result.exit_code, err, result.exception)
    assert "Traceback" not in err and "internal error" not in err, err
    assert err.startswith("Usage: ") and "\nError: " in err, err
    for part in parts:
        assert part in err, (part, err)


def assert_ok(result):
    assert result.exit_code == 0, (result.exit_code, result.stderr, result.exception)
    assert "Traceback" not in result.stderr
    return result


def bncli_proc(*args, cwd=None, **kw) -> subprocess.CompletedProcess:
    """``python -m bncli`` in a real process, as a user would run it."""
    kw.setdefault("capture_output", True)
    kw.setdefault("timeout", 120)
    return subprocess.run([sys.executable, "-m", "bncli", *map(str, args)], cwd=cwd, **kw)


def assert_proc_fails(proc, code: int, *parts: str) -> str:
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == code, (proc.returncode, err)
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("Warning:")]
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def _drop_dac_capabilities():
    """Run as root but without the capabilities that bypass file permissions
    (the tests run as root, for whom chmod alone changes nothing)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop = 24
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(pr_capbset_drop, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def as_unprivileged(*args, cwd=None) -> subprocess.CompletedProcess:
    """bncli with file permissions enforced: as root minus DAC capabilities, or as is for non-root."""
    if os.geteuid() != 0:
        return bncli_proc(*args, cwd=cwd)
    return bncli_proc(*args, cwd=cwd, preexec_fn=_drop_dac_capabilities)


@pytest.fixture(scope="module")
def permissions_enforced(tmp_path_factory):
    d = tmp_path_factory.mktemp("perm")
    probe = d / "probe"
    probe.write_text("x")
    probe.chmod(0)
    try:
        cmd = [sys.executable, "-c", f"open({str(probe)!r}).read()"]
        pre = _drop_dac_capabilities if os.geteuid() == 0 else None
        proc = subprocess.run(cmd, preexec_fn=pre, capture_output=True)
    except OSError:
        pytest.skip("cannot drop root's file capabilities here")
    if proc.returncode == 0:
        pytest.skip("file permissions are not enforced for this user")


@pytest.fixture
def ok_csv(tmp_csv):
    return tmp_csv(OK, "ok.csv")


@pytest.fixture
def stats(tmp_path, ok_csv, runner):
    """A stats file fitted on ok.csv (features a, b)."""
    path = tmp_path / "stats.json"
    assert_ok(invoke(runner, "fit", ok_csv, "-s", path, "-o", os.devnull))
    return path


# -- inputs -----------------------------------------------------------------------------


def test_missing_input(runner, tmp_path):
    snap = Snapshot(tmp_path)
    r = invoke(runner, "fit", tmp_path / "nope.csv", "-s", tmp_path / "s.json", "-o", tmp_path / "o.csv")
    assert_fails(r, 1, "nope.csv", "no such file")
    snap.assert_unchanged()


def test_directory_without_tables(runner, tmp_path):
    (tmp_path / "empty_dir").mkdir()
    snap = Snapshot(tmp_path)
    r = invoke(runner, "fit", tmp_path / "empty_dir", "-s", tmp_path / "s.json", "-o", tmp_path / "o.csv")
    assert_fails(r, 1, "empty_dir")
    snap.assert_unchanged()


def test_unreadable_input(tmp_path, permissions_enforced):
    src = tmp_path / "secret.csv"
    src.write_text(OK)
    src.chmod(0)
    snap = Snapshot(tmp_path)
    proc = as_unprivileged("fit", src, "-s", tmp_path / "s.json", "-o", tmp_path / "o.csv")
    assert_proc_fails(proc, 1, "secret.csv", "permission denied")
    snap.assert_unchanged()


def test_empty_file(runner, tmp_csv, tmp_path):
    src = tmp_csv(b"", "empty.csv")
    snap = Snapshot(tmp_path)
    for cmd in ("fit", "transform"):
        stats = tmp_path / "s.json"
        if cmd == "transform":
            continue  # needs a stats file; see test_header_only
        r = invoke(runner, cmd, src, "-s", stats, "-o", tmp_path / "o.csv")
        assert_fails(r, 1, "empty.csv", "empty input")
    snap.assert_unchanged()


def test_header_only(runner, tmp_csv, tmp_path, stats):
    src = tmp_csv("a,b,c\n", "header.csv")
    snap = Snapshot(tmp_path)
    r = invoke(runner, "fit", src, "-s", tmp_path / "new.json", "-o", tmp_path / "o.csv")
    assert_fails(r, 1, "header.csv", "no data rows")
    snap.assert_unchanged()
    out = tmp_path / "t.csv"
    assert_ok(invoke(runner, "transform", src, "-s", stats, "-o", out))
    assert out.read_text() == "a,b,c\n"


def test_no_numeric_columns(runner, tmp_csv, tmp_path):
    src = tmp_csv("name,city\nann,Oslo\nbob,Lima\n")
    snap = Snapshot(tmp_path)
    r = invoke(runner, "fit", src, "-s", tmp_path / "s.json", "-o", tmp_path / "o.csv")
    assert_fails(r, 1, "no numeric columns", "hint: ", "--columns")
    snap.assert_unchanged()


@pytest.mark.parametrize(
    "option, parts",
    [
        (["--columns", "a,zz"], ["--columns", "'zz'", "not in the input", "hint: the columns are: a, b, c"]),
        (["--columns", "c"], ["--columns", "non-numeric", "'c'"]),
        (["--exclude", "nope"], ["--exclude", "'nope'"]),
    ],
)
def test_bad_column_selection(runner, ok_csv, tmp_path, option, parts):
    snap = Snapshot(tmp_path)
    r = invoke(runner, "fit", ok_csv, "-s", tmp_path / "s.json", "-o", tmp_path / "o.csv", *option)
    assert_fails(r, 1, *parts)
    snap.assert_unchanged()


def test_duplicate_column_names(runner, tmp_csv, tmp_path):
    src = tmp_csv("a,b,a\n1,2,3\n4,5,6\n")
    snap = Snapshot(tmp_path)
    r = invoke(runner, "fit", src, "-s", tmp_path / "s.json", "-o", tmp_path / "o.csv")
    assert_fails(r, 1, "duplicate column name 'a'", "columns 1 and 3")
    snap.assert_unchanged()


def test_ragged_row(runner, tmp_csv, tmp_path):
    src = tmp_csv("a,b\n1,2\n3,4\n5\n7,8\n")
    snap = Snapshot(tmp_path)
    r = invoke(runner, "fit", src, "-s", tmp_path / "s.json", "-o", tmp_path / "o.csv")
    assert_fails(r, 1, "data.csv, row 3", "expected 2 fields", "found 1")
    snap.assert_unchanged()


def test_unterminated_quote_at_end(runner, tmp_csv, tmp_path):
    # pyarrow alone would read '4\n5,6\n7,8\n' as one value and report 2 rows.
    src = tmp_csv('a,b\n1,2\n3,"4\n5,6\n7,8\n')
    snap = Snapshot(tmp_path)
    r = invoke(runner, "fit", src, "-s", tmp_path / "s.json", "-o", tmp_path / "o.csv")
    assert_fails(r, 1, "data.csv, row 2, column 'b'", "never closed", "hint: ")
    snap.assert_unchanged()


def test_unterminated_quote_in_header(runner, tmp_csv, tmp_path):
    src = tmp_csv('a,"b\n1,2\n')
    r = invoke(runner, "fit", src, "-s", tmp_path / "s.json", "-o", tmp_path / "o.csv")
    assert_fails(r, 1, "header", "never closed")


def test_unterminated_quote_mid_file_is_bounded(runner, tmp_csv, tmp_path, monkeypatch):
    """A quote opened early must not make one 'record' swallow (and buffer) the whole file."""
    monkeypatch.setattr(readers, "MAX_RECORD_BYTES", 1 << 20)
    src = tmp_csv('a,b\n1,2\n3,"x\n' + "5,6\n" * 2_000_000)
    snap = Snapshot(tmp_path)
    r = invoke(runner, "fit", src, "-s", tmp_path / "s.json", "-o", tmp_path / "o.csv")
    assert_fails(r, 1, "row 2, column 'b'", "never closed", "more than 1 MiB")  # the 8 MB file is never held whole
    snap.assert_unchanged()


def test_literal_quotes_inside_fields(runner, tmp_csv, tmp_path):
    """A quote inside an unquoted field (5"10) or after a closing quote is text,
    as for pyarrow and Python's csv module; it must not upset record cutting."""
    rows = ['bob,5"10,1', 'al,"x""y",2', 'jo,"3" ",3', "ed,6',4"] * 3000
    src = tmp_csv("name,h,n\n" + "\n".join(rows) + "\n")
    out = tmp_path / "o.csv"
    assert_ok(invoke(runner, "fit", src, "-s", tmp_path / "s.json", "-o", out))
    import csv

    got = list(csv.reader(out.open(newline="")))[1:]
    assert len(got) == len(rows)
    assert [r[1] for r in got[:4]] == ['5"10', 'x"y', '3 "', "6'"]


def test_literal_quotes_across_chunks(tmp_path):
    """Same, with chunks far smaller than the file: cuts must land between records."""
    lines = []
    for i in range(5000):
        lines.append(f'{i},5"{i}' if i % 7 == 0 else f'{i},"q,""{i}""\nline2"')
    text = ("a,t\n" + "\n".join(lines) + "\n").encode()
    src = tmp_path / "lit.csv"
    src.write_bytes(text)
    reader = readers.open_reader(str(src), chunk_bytes=1000)
    try:
        tables = [c.table for c in reader.chunks(["a"])]
    finally:
        reader.close()
    t = pa.concat_tables(tables)
    assert t.num_rows == 5000
    assert t.column("a").to_pylist() == [float(i) for i in range(5000)]
    assert t.column("t")[0].as_py() == '5"0' and t.column("t")[1].as_py() == 'q,"1"\nline2'


def test_invalid_utf8_hints_at_encoding(runner, tmp_csv, tmp_path):
    src = tmp_csv(b"a,b,name\n1,2,ok\n3,4,caf\xe9\n5,6,z\n")
    snap = Snapshot(tmp_path)
    r = invoke(runner, "fit", src, "-s", tmp_path / "s.json", "-o", tmp_path / "o.csv")
    assert_fails(r, 1, "row 2, column 'name'", "UTF-8", "--encoding")
    snap.assert_unchanged()
    out = tmp_path / "o.csv"
    assert_ok(invoke(runner, "fit", src, "--encoding", "latin-1", "-s", tmp_path / "s.json", "-o", out))
    assert out.read_text(encoding="utf-8").splitlines()[2].endswith(",café")


def test_invalid_utf8_in_header(runner, tmp_csv, tmp_path):
    src = tmp_csv(b"a,b\xff\n1,2\n3,4\n")
    r = invoke(runner, "fit", src, "-s", tmp_path / "s.json", "-o", tmp_path / "o.csv")
    assert_fails(r, 1, "header", "UTF-8", "--encoding")


def test_undecodable_with_encoding_option(runner, tmp_csv, tmp_path):
    # UTF-16 without a byte order mark makes Python's codec raise UnicodeError, not UnicodeDecodeError.
    src = tmp_csv(b"a,b\n1,2\n3,4\n")
    snap = Snapshot(tmp_path)
    r = invoke(runner, "fit", src, "--encoding", "utf-16", "-s", tmp_path / "s.json", "-o", tmp_path / "o.csv")
    assert_fails(r, 1, "data.csv", "utf-16", "--encoding")
    snap.assert_unchanged()


def test_bom_crlf_and_quoted_newlines_just_work(runner, tmp_csv, tmp_path):
    src = tmp_csv(b'\xef\xbb\xbfx,note\r\n1,"two\r\nlines"\r\n2,plain\r\n3,"a ""quote"""\r\n')
    out = tmp_path / "o.csv"
    assert_ok(invoke(runner, "fit", src, "-s", tmp_path / "s.json", "-o", out))
    import csv

    rows = list(csv.reader(out.open(newline="", encoding="utf-8")))
    assert rows[0] == ["x", "note"]  # no BOM in the first name
    assert [r[1] for r in rows[1:]] == ["two\r\nlines", "plain", 'a "quote"']
    assert json.loads((tmp_path / "s.json").read_text())["columns"] == ["x"]


def test_record_longer_than_parse_block(runner, tmp_csv, tmp_path):
    big = "x" * 3_000_000
    src = tmp_csv(f'a,b\n1,"{big}"\n2,y\n3,{big}\n')
    out = tmp_path / "o.csv"
    assert_ok(invoke(runner, "fit", src, "-s", tmp_path / "s.json", "-o", out))
    assert out.read_text().count("\n") == 4


@pytest.fixture(scope="module")
def big_bad_csv(tmp_path_factory):
    """~9 MB CSV with 'oops' in column x at data row 200000, far past the 4 MiB first chunk."""
    rng = np.random.default_rng(0)
    n = 250_000
    x = np.char.mod("%.9f", rng.normal(size=n))
    y = np.char.mod("%.6f", rng.normal(size=n))
    x[199_999] = "oops"
    lines = np.char.add(np.char.add(np.char.add(x, ","), y), ",some text")
    path = tmp_path_factory.mktemp("big") / "big.csv"
    path.write_text("x,y,tag\n" + "\n".join(lines.tolist()) + "\n")
    assert path.read_bytes().index(b"oops") > 1.5 * readers.CHUNK_BYTES
    return path


def test_text_deep_in_numeric_column(runner, big_bad_csv, tmp_path):
    snap = Snapshot(tmp_path)
    r = invoke(runner, "fit", big_bad_csv, "-s", tmp_path / "s.json", "-o", tmp_path / "o.csv")
    assert_fails(r, 1, "big.csv, row 200000, column 'x'", "'oops' is not a number", "--null-value", "--exclude")
    snap.assert_unchanged()


def test_text_deep_in_feature_at_transform(runner, big_bad_csv, tmp_path, tmp_csv):
    fitted = tmp_path / "s.json"
    assert_ok(invoke(runner, "fit", tmp_csv("x,y,tag\n1,2,a\n3,5,b\n"), "-s", fitted, "-o", os.devnull))
    snap = Snapshot(tmp_path)
    r = invoke(runner, "transform", big_bad_csv, "-s", fitted, "-o", tmp_path / "o.csv")
    assert_fails(r, 1, "row 200000, column 'x'", "'oops'")
    snap.assert_unchanged()


@pytest.mark.parametrize("token", ["inf", "-inf", "Infinity", "-Infinity"])
def test_infinity_is_an_error_naming_row_and_column(runner, tmp_csv, tmp_path, token):
    src = tmp_csv(f"a,b\n1,2\n3,{token}\n5,6\n")
    snap = Snapshot(tmp_path)
    r = invoke(runner, "fit", src, "-s", tmp_path / "s.json", "-o", tmp_path / "o.csv")
    assert_fails(r, 1, "row 2, column 'b'", "infinite", "--inf missing")
    snap.assert_unchanged()


def test_inf_missing_option(runner, tmp_csv, tmp_path):
    src = tmp_csv("a,b\n1,2\n3,inf\n5,6\n")
    out = tmp_path / "o.csv"
    assert_ok(invoke(runner, "fit", src, "--inf", "missing", "-s", tmp_path / "s.json", "-o", out))
    assert out.read_text().splitlines()[2].endswith(",")  # stays missing
    assert json.loads((tmp_path / "s.json").read_text())["global"]["count"] == [3, 2]


def test_constant_column(runner, tmp_csv, tmp_path):
    src = tmp_csv("a,k\n1,7\n2,7\n3,7\n")
    out = tmp_path / "o.csv"
    r = assert_ok(invoke(runner, "fit", src, "-s", tmp_path / "s.json", "-o", out))
    assert "Warning:" in r.stderr and "constant" in r.stderr and "'k'" in r.stderr
    assert [line.split(",")[1] for line in out.read_text().splitlines()[1:]] == ["0", "0", "0"]


def test_all_missing_column(runner, tmp_csv, tmp_path):
    src = tmp_csv("a,m\n1,\n2,NA\n3,\n")
    out, stats = tmp_path / "o.csv", tmp_path / "s.json"
    r = assert_ok(invoke(runner, "fit", src, "-s", stats, "-o", out))
    assert "Warning:" in r.stderr and "'m'" in r.stderr
    assert [line.split(",")[1] for line in out.read_text().splitlines()[1:]] == ["", "", ""]
    g = json.loads(stats.read_text())["global"]
    assert g["mean"][1] is None and g["var"][1] is None and g["count"][1] == 0


@pytest.mark.parametrize(
    "values",
    [
        ["1e300", "-1e300", "1e300", "-1e300"],
        ["1e308", "1e308", "1e308", "1e308"],
        ["1.7e308", "-1.7e308", "1e-300", "5e-324"],
        ["1e300", "2e300", "3e300", "4e300"],
        ["1e150", "2e150", "3e150", "4e150"],
    ],
)
def test_huge_values_never_give_nan_or_infinity(runner, tmp_csv, tmp_path, values):
    src = tmp_csv("a,b\n" + "".join(f"{v},{i}\n" for i, v in enumerate(values)))
    stats = tmp_path / "s.json"
    with warnings.catch_warnings():  # numpy's overflow warning: see test_overflow_error_is_one_line...
        warnings.simplefilter("ignore", RuntimeWarning)
        r = invoke(runner, "fit", src, "-s", stats, "-o", tmp_path / "o.csv")
    if r.exit_code == 0:
        text = stats.read_text()
        assert "NaN" not in text and "Infinity" not in text
        json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the stats file"))
        out = (tmp_path / "o.csv").read_text()
        assert "nan" not in out.lower() and "inf" not in out.lower()
    else:
        assert_fails(r, 1, "'a'", "too large")
        assert not stats.exists() and not (tmp_path / "o.csv").exists()


def test_content_beats_a_misleading_extension(runner, tmp_path):
    """gzip or Parquet bytes in a file named .csv are read for what they are."""
    gz = tmp_path / "gz.csv"
    gz.write_bytes(gzip.compress(OK.encode()))
    pqf = tmp_path / "pq.csv"
    pq.write_table(pa.table({"a": [1.0, 2.0, 4.0]}), pqf)
    for src in (gz, pqf):
        out = tmp_path / f"{src.stem}.out.csv"
        assert_ok(invoke(runner, "fit", src, "-s", tmp_path / "s.json", "-o", out))
        assert out.read_text().startswith("a")


def test_non_ascii_delimiter_is_a_usage_error(runner, tmp_csv, tmp_path):
    src = tmp_csv("a§b\n1§2\n3§4\n")
    r = invoke(runner, "fit", src, "-d", "§", "-s", tmp_path / "s.json", "-o", tmp_path / "o.csv")
    assert r.exit_code == 2 and "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    assert "delimiter" in r.stderr


def test_debug_shows_the_traceback(runner, tmp_path):
    r = invoke(runner, "fit", tmp_path / "nope.csv", "-s", tmp_path / "s.json", "--debug")
    assert r.exit_code == 1 and "Traceback" in r.stderr and "Error: " in r.stderr


# -- options --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, parts",
    [
        (["-b", "0"], ["--batch-size", "0"]),
        (["-b", "1"], ["--batch-size", "1"]),
        (["-b", "-3"], ["--batch-size", "-3"]),
        (["-b", "abc"], ["--batch-size", "abc"]),
        (["--momentum", "1.5"], ["--momentum", "1.5"]),
        (["--momentum", "-0.1"], ["--momentum", "-0.1"]),
        (["--momentum", "abc"], ["--momentum", "abc"]),
        (["--eps", "0"], ["--eps"]),
        (["--eps", "-1"], ["--eps"]),
        (["--eps", "abc"], ["--eps", "abc"]),
        (["--input-format", "xls"], ["--input-format", "xls"]),
        (["--output-format", "json"], ["--output-format", "json"]),
        (["--inf", "maybe"], ["--inf", "maybe"]),
        (["-d", "ab"], ["--delimiter"]),
        (["--encoding", "klingon"], ["--encoding", "klingon"]),
        (["--precision", "0"], ["--precision"]),
    ],
)
def test_bad_option_values(runner, ok_csv, tmp_path, args, parts):
    snap = Snapshot(tmp_path)
    r = invoke(runner, "fit", ok_csv, "-s", tmp_path / "s.json", "-o", tmp_path / "o.csv", *args)
    assert_usage(r, *parts)
    snap.assert_unchanged()


@pytest.mark.parametrize("args", [["-b", "0"], ["-b", "-1"], ["-b", "x"], ["--use", "best"]])
def test_bad_transform_options(runner, ok_csv, stats, tmp_path, args):
    snap = Snapshot(tmp_path)
    assert_usage(invoke(runner, "transform", ok_csv, "-s", stats, "-o", tmp_path / "o.csv", *args))
    snap.assert_unchanged()


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_eps_nan_or_inf(runner, ok_csv, tmp_path, value):
    snap = Snapshot(tmp_path)
    assert_usage(invoke(runner, "fit", ok_csv, "-s", tmp_path / "s.json", "-o", tmp_path / "o.csv", "--eps", value))
    snap.assert_unchanged()


# -- conflicting paths ------------------------------------------------------------------


@pytest.mark.parametrize(
    "output, stats_name",
    [
        ("ok.csv", "s.json"),
        ("./ok.csv", "s.json"),
        ("sub/../ok.csv", "s.json"),
        ("link.csv", "s.json"),
        ("hard.csv", "s.json"),
        ("o.csv", "ok.csv"),
        ("o.csv", "./link.csv"),
        ("same.out", "./same.out"),
        ("o.csv", "-"),
    ],
)
def test_refuses_to_clobber(runner, tmp_path, monkeypatch, output, stats_name):
    (tmp_path / "ok.csv").write_text(OK)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.csv").symlink_to("ok.csv")
    os.link(tmp_path / "ok.csv", tmp_path / "hard.csv")
    monkeypatch.chdir(tmp_path)
    snap = Snapshot(tmp_path)
    r = invoke(runner, "fit", "ok.csv", "-s", stats_name, "-o", output)
    assert_fails(r, 2)
    snap.assert_unchanged()


def test_transform_refuses_output_over_stats_or_input(runner, tmp_path, ok_csv, stats):
    snap = Snapshot(tmp_path)
    assert_fails(invoke(runner, "transform", ok_csv, "-s", stats, "-o", stats), 2, "same file")
    assert_fails(invoke(runner, "transform", ok_csv, "-s", stats, "-o", ok_csv), 2, "input")
    snap.assert_unchanged()


def test_stats_to_stdout_while_output_goes_there(tmp_path):
    (tmp_path / "ok.csv").write_text(OK)
    snap = Snapshot(tmp_path)
    proc = bncli_proc("fit", "ok.csv", "-s", "/dev/stdout", cwd=tmp_path)
    assert_proc_fails(proc, 2, "same file")
    assert proc.stdout == b""
    snap.assert_unchanged()


# -- stats files at transform ------------------------------------------------------------


def _stats_variants(good: dict) -> dict[str, tuple[bytes, list[str]]]:
    text = json.dumps(good, indent=1)
    v2 = dict(good, version=2)
    return {
        "not_json": (b"hello, world\n", ["not valid JSON"]),
        "empty": (b"", ["not valid JSON"]),
        "truncated": (text[: len(text) // 2].encode(), ["not valid JSON", "truncated"]),
        "other_json": (b'{"name": "something else"}', ["missing key 'format'"]),
        "json_list": (b"[1, 2, 3]", ["not a bncli stats file"]),
        "wrong_format": (json.dumps(dict(good, format="other")).encode(), ["not a bncli stats file"]),
        "newer_version": (json.dumps(v2).encode(), ["version 2", "newer", "upgrade"]),
        "nan_constant": (text.replace('"eps": 1e-05', '"eps": NaN').encode(), ["NaN"]),
        "binary": (b"\x00\xff\xfe" * 10, ["not UTF-8"]),
    }


def test_bad_stats_files(runner, tmp_path, ok_csv, stats):
    good = json.loads(stats.read_text())
    for name, (content, parts) in _stats_variants(good).items():
        bad = tmp_path / f"{name}.json"
        bad.write_bytes(content)
        snap = Snapshot(tmp_path)
        r = invoke(runner, "transform", ok_csv, "-s", bad, "-o", tmp_path / "o.csv")
        assert_fails(r, 1, f"stats file {bad}", *parts)
        snap.assert_unchanged()


def test_missing_stats_file(runner, tmp_path, ok_csv):
    snap = Snapshot(tmp_path)
    r = invoke(runner, "transform", ok_csv, "-s", tmp_path / "none.json", "-o", tmp_path / "o.csv")
    assert_fails(r, 1, "none.json", "no such file", "bncli fit")
    snap.assert_unchanged()


def test_stats_file_is_a_directory(runner, tmp_path, ok_csv):
    (tmp_path / "d.json").mkdir()
    r = invoke(runner, "transform", ok_csv, "-s", tmp_path / "d.json", "-o", tmp_path / "o.csv")
    assert_fails(r, 1, "d.json", "directory")


def test_fitted_features_missing_from_input(runner, tmp_path, tmp_csv, stats):
    src = tmp_csv("c,d\nx,1\ny,2\n", "other.csv")
    snap = Snapshot(tmp_path)
    r = invoke(runner, "transform", src, "-s", stats, "-o", tmp_path / "o.csv")
    assert_fails(r, 1, "other.csv", "missing", "'a', 'b'")
    snap.assert_unchanged()


def test_feature_holds_text_in_new_data(runner, tmp_path, tmp_csv, stats):
    src = tmp_csv("a,b,c\n1,2,x\n3,four,y\n", "new.csv")
    snap = Snapshot(tmp_path)
    r = invoke(runner, "transform", src, "-s", stats, "-o", tmp_path / "o.csv")
    assert_fails(r, 1, "new.csv, row 2, column 'b'", "'four' is not a number")
    snap.assert_unchanged()


# -- outputs --------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["-o", "-s"])
def test_output_directory_missing(runner, tmp_path, ok_csv, which):
    other = {"-o": ["-s", tmp_path / "s.json"], "-s": ["-o", tmp_path / "o.csv"]}[which]
    snap = Snapshot(tmp_path)
    r = invoke(runner, "fit", ok_csv, which, tmp_path / "no" / "such" / "x.out", *other)
    assert_fails(r, 1, "does not exist", "hint: create it")
    snap.assert_unchanged()


def test_transform_output_directory_missing(runner, tmp_path, ok_csv, stats):
    snap = Snapshot(tmp_path)
    r = invoke(runner, "transform", ok_csv, "-s", stats, "-o", tmp_path / "nodir" / "o.csv")
    assert_fails(r, 1, "nodir", "does not exist")
    snap.assert_unchanged()


def test_output_is_a_directory(runner, tmp_path, ok_csv):
    (tmp_path / "outdir").mkdir()
    snap = Snapshot(tmp_path)
    r = invoke(runner, "fit", ok_csv, "-s", tmp_path / "s.json", "-o", tmp_path / "outdir")
    assert_fails(r, 1, "outdir", "is a directory")
    snap.assert_unchanged()


def test_no_write_permission(tmp_path, permissions_enforced):
    (tmp_path / "ok.csv").write_text(OK)
    ro = tmp_path / "ro"
    ro.mkdir()
    (tmp_path / "locked.csv").write_text("keep me\n")
    (tmp_path / "locked.csv").chmod(0o444)
    snap = Snapshot(tmp_path)
    try:
        ro.chmod(0o555)
        proc = as_unprivileged("fit", "ok.csv", "-s", "ro/s.json", "-o", "o.csv", cwd=tmp_path)
        assert_proc_fails(proc, 1, "ro/s.json", "permission denied")
        proc = as_unprivileged("fit", "ok.csv", "-s", "s.json", "-o", "ro/o.csv", cwd=tmp_path)
        assert_proc_fails(proc, 1, "ro/o.csv", "permission denied")
        # The rename would replace a read-only file; open() would refuse, and so does bncli.
        proc = as_unprivileged("fit", "ok.csv", "-s", "s.json", "-o", "locked.csv", cwd=tmp_path)
        assert_proc_fails(proc, 1, "locked.csv", "permission denied")
    finally:
        ro.chmod(0o755)
    snap.assert_unchanged()


def test_symlinked_output_is_written_through(runner, tmp_path, ok_csv):
    (tmp_path / "real.csv").write_text("old\n")
    (tmp_path / "via.csv").symlink_to("real.csv")
    assert_ok(invoke(runner, "fit", ok_csv, "-s", tmp_path / "s.json", "-o", tmp_path / "via.csv"))
    assert (tmp_path / "via.csv").is_symlink()
    assert (tmp_path / "real.csv").read_text().startswith("a,b,c\n")


def test_stdout_disk_full(tmp_path):
    (tmp_path / "ok.csv").write_text(OK)
    with open("/dev/full", "wb") as full:
        proc = bncli_proc(
            "fit", "ok.csv", "-s", "s.json", cwd=tmp_path, capture_output=False, stdout=full, stderr=subprocess.PIPE
        )
    assert_proc_fails(proc, 1, "no space left on device")
    assert sorted(os.listdir(tmp_path)) == ["ok.csv"]  # stats not committed either


def test_file_disk_full_while_writing(runner, tmp_path, ok_csv, monkeypatch):
    (tmp_path / "o.csv").write_text("previous\n")
    snap = Snapshot(tmp_path)

    def full(self, data):
        raise files.write_error(self.what, self.path, OSError(errno.ENOSPC, "No space left on device"))

    monkeypatch.setattr(files.AtomicFile, "write", full)
    r = invoke(runner, "fit", ok_csv, "-s", tmp_path / "s.json", "-o", tmp_path / "o.csv")
    assert_fails(r, 1, "no space left on device")
    snap.assert_unchanged()


def test_file_disk_full_at_commit(runner, tmp_path, ok_csv, monkeypatch):
    (tmp_path / "s.json").write_text("{}")
    snap = Snapshot(tmp_path)

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", fsync)
    r = invoke(runner, "fit", ok_csv, "-s", tmp_path / "s.json", "-o", tmp_path / "o.csv")
    assert_fails(r, 1, "no space left on device")
    snap.assert_unchanged()


@pytest.fixture
def tiny_fs(tmp_path):
    """A 64 KiB tmpfs, if this machine lets us mount one."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    yield mnt
    subprocess.run(["umount", str(mnt)], capture_output=True)


def test_real_full_filesystem(tmp_path, tiny_fs):
    rows = "".join(f"{i},{i * 0.5},name{i}\n" for i in range(20000))
    (tmp_path / "big.csv").write_text("a,b,c\n" + rows)
    (tiny_fs / "o.csv").write_text("previous\n")
    snap = Snapshot(tiny_fs)
    proc = bncli_proc("fit", tmp_path / "big.csv", "-s", tiny_fs / "s.json", "-o", tiny_fs / "o.csv")
    assert_proc_fails(proc, 1, "no space left on device")
    snap.assert_unchanged()
    proc = bncli_proc("fit", tmp_path / "big.csv", "-s", tmp_path / "s.json", "-o", tiny_fs / "o.parquet")
    assert_proc_fails(proc, 1, "no space left on device")
    snap.assert_unchanged()


@pytest.fixture(scope="module")
def large_csv(tmp_path_factory):
    """~60 MB of CSV: long enough to interrupt in the middle; and a stats file for it."""
    import pyarrow.csv as pacsv

    from bncli.stats import Params, Stats

    rng = np.random.default_rng(1)
    n = 2_000_000
    d = tmp_path_factory.mktemp("large")
    path, stats = d / "large.csv", d / "large.json"
    pacsv.write_csv(pa.table({c: rng.normal(size=n) for c in "xyz"}), path)
    stats.write_text(Stats.initial(["x", "y", "z"], Params()).to_json())
    return path, stats


def _interrupt_midway(args, out_dir: Path, deadline: float = 60.0):
    """Start bncli, wait until its temporary output holds data, then press Ctrl-C."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bncli", *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < deadline and proc.poll() is None:
            if any(p.stat().st_size > 0 for p in out_dir.glob(".*.bncli-tmp") if p.exists()):
                break
            time.sleep(0.01)
        if proc.poll() is not None:
            pytest.skip("the run finished before it could be interrupted")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err.decode("utf-8", "replace")


@pytest.mark.parametrize("command", ["transform", "fit"])
def test_ctrl_c_in_the_middle(tmp_path, large_csv, command):
    src, stats = large_csv
    out = tmp_path / "out.csv"
    out.write_text("previous output\n")
    new_stats = tmp_path / "new.json"
    new_stats.write_text("previous stats\n")
    snap = Snapshot(tmp_path)
    args = [command, src, "-s", stats if command == "transform" else new_stats, "-o", out]
    code, err = _interrupt_midway(args, tmp_path)
    assert code == 130, err
    assert "Traceback" not in err
    snap.assert_unchanged()


def test_closed_pipe_is_quiet(large_csv):
    src, stats = large_csv
    proc = subprocess.Popen(
        [sys.executable, "-m", "bncli", "transform", str(src), "-s", str(stats)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    head = proc.stdout.read(200)
    proc.stdout.close()  # like `| head`
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert head.startswith(b'"x","y","z"\n') or head.startswith(b"x,y,z\n")
    assert err == "", err
    assert proc.returncode != 0


def test_closed_pipe_exit_code_141(large_csv):
    src, stats = large_csv
    proc = subprocess.Popen(
        [sys.executable, "-m", "bncli", "transform", str(src), "-s", str(stats)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    proc.stdout.read(200)
    proc.stdout.close()
    assert proc.wait(timeout=60) == 141


# -- Parquet -------------------------------------------------------------------------------


@pytest.fixture
def typed_parquet(tmp_path):
    n = 4
    t = pa.table(
        {
            "x": pa.array([1.0, 2.0, 3.0, 5.0]),
            "dec": pa.array([decimal.Decimal(v) for v in ("1.25", "2.50", "-1.00", "3.75")], pa.decimal128(5, 2)),
            "ts": pa.array([1_600_000_000_000_000 + i for i in range(n)], pa.timestamp("us")),
            "flag": pa.array([True, False, None, True]),
            "cat": pa.array(["a", "b", "a", "c"]).dictionary_encode(),
            "lst": pa.array([[1, 2], [], None, [3]]),
            "mp": pa.array([[("k", 1)], [], None, [("j", 2)]], pa.map_(pa.string(), pa.int64())),
            "st": pa.array([{"p": i, "q": "z"} for i in range(n)]),
        }
    )
    path = tmp_path / "typed.parquet"
    pq.write_table(t, path)
    return path, t


def test_parquet_types_pass_through(runner, tmp_path, typed_parquet):
    src, t = typed_parquet
    out, stats = tmp_path / "o.parquet", tmp_path / "s.json"
    assert_ok(invoke(runner, "fit", src, "-s", stats, "-o", out))
    assert json.loads(stats.read_text())["columns"] == ["x", "dec"]  # decimals are numeric features
    got = pq.read_table(out)
    assert got.schema.field("dec").type == pa.float64()
    for name in ("ts", "flag", "lst", "mp", "st"):
        assert got.column(name).type == t.column(name).type and got.column(name).equals(t.column(name)), name
    assert got.column("cat").to_pylist() == ["a", "b", "a", "c"]
    assert_ok(invoke(runner, "transform", src, "-s", stats, "-o", tmp_path / "t.parquet"))


def test_parquet_nested_to_csv_names_column_and_type(runner, tmp_path, typed_parquet):
    src, _ = typed_parquet
    snap = Snapshot(tmp_path)
    r = invoke(runner, "fit", src, "-s", tmp_path / "s.json", "-o", tmp_path / "o.csv")
    assert_fails(r, 1, "'lst'", "list", "Parquet")
    snap.assert_unchanged()


@pytest.mark.parametrize("column", ["ts", "flag", "cat", "lst"])
def test_parquet_non_numeric_feature(runner, tmp_path, typed_parquet, column):
    src, t = typed_parquet
    snap = Snapshot(tmp_path)
    r = invoke(runner, "fit", src, "-s", tmp_path / "s.json", "-o", tmp_path / "o.parquet", "--columns", column)
    assert_fails(r, 1, f"'{column}'", "non-numeric")
    snap.assert_unchanged()


def test_parquet_truncated_and_corrupt(runner, tmp_path, typed_parquet):
    src, _ = typed_parquet
    data = src.read_bytes()
    cases = {
        "truncated.parquet": data[: len(data) // 2],
        "corrupt.parquet": data[:8] + b"\xff" * 200 + data[208:],
        "garbage.parquet": b"not parquet at all\n" * 10,
        "magic_only.parquet": b"PAR1",
        "empty.parquet": b"",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    snap = Snapshot(tmp_path)
    for name in cases:
        r = invoke(runner, "fit", tmp_path / name, "-s", tmp_path / "s.json", "-o", tmp_path / "o.parquet")
        assert_fails(r, 1, name)
        snap.assert_unchanged()


def test_parquet_on_stdin_corrupt(tmp_path, typed_parquet):
    src, _ = typed_parquet
    data = src.read_bytes()
    snap = Snapshot(tmp_path)
    proc = bncli_proc("fit", "-", "-s", tmp_path / "s.json", "-o", tmp_path / "o.parquet", input=data[: len(data) // 2])
    assert_proc_fails(proc, 1, "<stdin>", "Parquet")
    snap.assert_unchanged()
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("bncli-stdin-*"))


# -- known gaps outside readers/files (patches described in the issue-3 report) -------------


def test_single_column_empty_values_round_trip(runner, tmp_csv, tmp_path):
    src = tmp_csv("x\n1\n\n2\n3\nNA\n4\n", "one.csv")  # the blank line is skipped; NA is missing
    out = tmp_path / "o.csv"
    assert_ok(invoke(runner, "fit", src, "-s", tmp_path / "s.json", "-o", out))
    import csv

    rows = [r for r in csv.reader(out.open(newline="")) if r]
    assert len(rows) == 1 + 5  # header + every data row, the missing one included


def test_overflow_error_is_one_line_in_a_real_process(tmp_path):
    (tmp_path / "huge.csv").write_text("a,b\n1e308,1\n1e308,2\n1e308,3\n")
    proc = bncli_proc("fit", "huge.csv", "-s", "s.json", "-o", "o.csv", cwd=tmp_path)
    assert_proc_fails(proc, 1, "'a'", "too large")
    assert proc.stderr.decode().count("\n") == 1


def test_failed_run_with_compressed_output_is_quiet(tmp_path):
    (tmp_path / "ok.csv").write_text(OK)
    (tmp_path / "bad.csv").write_text("a,b,c\n1,x,y\n")
    snap = Snapshot(tmp_path)
    proc = bncli_proc("fit", "ok.csv", "bad.csv", "-s", "s.json", "-o", "o.csv.gz", cwd=tmp_path)
    assert_proc_fails(proc, 1, "bad.csv, row 1, column 'b'")
    snap.assert_unchanged()


def test_remove_temporary_files_for_signal_handlers(tmp_path):
    """What a signal handler calls before os._exit(): every uncommitted temporary output goes."""
    (tmp_path / "kept.csv").write_text("previous\n")
    a, b = files.AtomicFile(str(tmp_path / "kept.csv")), files.AtomicFile(str(tmp_path / "new.json"))
    a.write(b"partial")
    assert len(list(tmp_path.glob(".*.bncli-tmp"))) == 2
    files.remove_temporary_files()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.csv"]
    assert (tmp_path / "kept.csv").read_text() == "previous\n"
    a.discard()
    b.discard()  # harmless afterwards


def test_replacing_an_output_drops_only_its_cached_pages(tmp_path):
    """An existing output about to be replaced has its page cache dropped first
    (a speed measure): its bytes, mode and times stay as they were until the rename,
    and an unreadable or vanished target is no obstacle."""
    target = tmp_path / "out.csv"
    target.write_bytes(b"old,data\n" * 1000)
    os.chmod(target, 0o640)
    os.utime(target, (1_000_000_000, 1_000_000_000))
    before = target.stat()
    out = files.AtomicFile(str(target))
    out.write(b"new\n")
    after = target.stat()
    assert target.read_bytes() == b"old,data\n" * 1000
    assert (after.st_mode, after.st_mtime_ns, after.st_atime_ns) == (before.st_mode, before.st_mtime_ns, 10**18)
    out.commit()
    assert target.read_bytes() == b"new\n"
    files._drop_cached_pages(str(tmp_path / "missing.csv"))  # no error
