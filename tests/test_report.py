"""Progress and messages on stderr: a bar on a terminal, never an escape code in a pipe.

Unit tests drive :class:`bncli.report.Reporter` with fake streams; the end-to-end
tests run ``bncli transform`` with stderr on a real pseudo-terminal (``pty``)
and on a pipe, with stdin fed slowly so that the run outlasts the progress delay.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import threading
import time

import pytest

from bncli import report
from bncli.report import Reporter

ESC = "\x1b"


class FakeStream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self._tty = tty

    def isatty(self):
        return self._tty


# -- messages ---------------------------------------------------------------------------


def test_warnings_are_printed_once_each_and_silenced_by_quiet():
    err = FakeStream(tty=False)
    r = Reporter(0, stream=err)
    r.warn("feature 'a' is constant")
    r.warn("feature 'a' is constant")
    r.warn("feature 'b' is constant")
    assert err.getvalue() == "Warning: feature 'a' is constant\nWarning: feature 'b' is constant\n"
    quiet = FakeStream(tty=False)
    q = Reporter(-1, stream=quiet)
    q.warn("x")
    q.summary("fit: 10 rows")
    assert quiet.getvalue() == ""


@pytest.mark.parametrize(
    "tty, verbosity, shown",
    [(False, 0, False), (False, 1, True), (True, 0, True), (True, -1, False), (True, 1, True)],
)
def test_summary_with_verbose_or_on_a_terminal(tty, verbosity, shown):
    err = FakeStream(tty)
    Reporter(verbosity, stream=err).summary("fit: 10 rows")
    assert err.getvalue() == ("fit: 10 rows\n" if shown else "")


def test_info_needs_verbose():
    err = FakeStream(tty=True)
    Reporter(0, stream=err).info("detail")
    Reporter(1, stream=err).info("detail")
    assert err.getvalue() == "detail\n"


@pytest.mark.parametrize(
    "tty, verbosity, option, term, expected",
    [
        (True, 0, None, "xterm", True),
        (True, -1, None, "xterm", False),  # -q
        (True, 0, None, "dumb", False),
        (True, 0, False, "xterm", False),  # --no-progress
        (False, 0, None, "xterm", False),  # a pipe
        (False, 0, True, "xterm", True),  # --progress forces it
    ],
)
def test_when_progress_is_shown(monkeypatch, tty, verbosity, option, term, expected):
    monkeypatch.setenv("TERM", term)
    assert Reporter(verbosity, option, stream=FakeStream(tty)).show_progress is expected


# -- the progress display -------------------------------------------------------------------


def _run_progress(reporter, total, steps=3, warn=None):
    with reporter.progress("fit", total) as bar:
        for i in range(1, steps + 1):
            bar.update(i * 100, None if total is None else i * total // steps)
            if warn and i == 2:
                reporter.warn(warn)
    return reporter.stream.getvalue()


def test_no_progress_in_a_pipe_not_even_after_the_delay(monkeypatch):
    monkeypatch.setattr(report, "PROGRESS_DELAY", 0.0)
    out = _run_progress(Reporter(1, stream=FakeStream(tty=False)), 3000, warn="late warning")
    assert ESC not in out
    assert out == "Warning: late warning\n"


def test_no_progress_before_the_delay(monkeypatch):
    monkeypatch.setattr(report, "PROGRESS_DELAY", 60.0)
    assert _run_progress(Reporter(0, stream=FakeStream(tty=True)), 3000) == ""


def test_progress_on_a_terminal_is_drawn_then_erased(monkeypatch):
    monkeypatch.setattr(report, "PROGRESS_DELAY", 0.0)
    monkeypatch.setenv("TERM", "xterm")
    out = _run_progress(Reporter(0, stream=FakeStream(tty=True)), 3000)
    assert ESC in out
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    assert "fit" in plain and "300 rows" in plain and "/3.0 kB" in plain  # bytes against the size
    assert out.endswith("\x1b[2K")  # transient: the last thing done is erasing the line


def test_progress_for_stdin_counts_rows(monkeypatch):
    monkeypatch.setattr(report, "PROGRESS_DELAY", 0.0)
    monkeypatch.setenv("TERM", "xterm")
    out = _run_progress(Reporter(0, stream=FakeStream(tty=True)), None)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    assert "300 rows" in plain and "kB" not in plain


def test_warning_during_progress_is_printed_above_the_bar(monkeypatch):
    monkeypatch.setattr(report, "PROGRESS_DELAY", 0.0)
    monkeypatch.setenv("TERM", "xterm")
    out = _run_progress(Reporter(0, stream=FakeStream(tty=True)), 3000, warn="eps is large")
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    assert plain.count("Warning: eps is large") == 1


# -- end to end: a real pseudo-terminal, and a pipe -------------------------------------------------

ROW = "1.25,-3.5,7.0,x\n"
HEAD = "a,b,c,name\n"


@pytest.fixture(scope="module")
def stats_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    (d / "train.csv").write_text(HEAD + "1,2,3,x\n2,3,3,y\n4,1,3,z\n")
    subprocess.run(
        [sys.executable, "-m", "bncli", "fit", str(d / "train.csv"), "-s", str(d / "s.json"), "-o", os.devnull, "-q"],
        check=True,
    )
    return str(d / "s.json")


def _feed_slowly(stdin, pause: float) -> None:
    """About 4.5 MB at once, then, after ``pause`` seconds, 1.5 MB more (the reader
    takes 4 MB chunks, so its second chunk arrives after the pause)."""
    try:
        stdin.write((HEAD + ROW * 280_000).encode())
        stdin.flush()
        time.sleep(pause)
        stdin.write((ROW * 100_000).encode())
    finally:
        stdin.close()


def _run_bncli(args, stderr_tty: bool, pause: float = 1.3):
    """Run ``python -m bncli ARGS`` with stdin fed slowly; returns (exit code, stderr bytes)."""
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="100")
    env.pop("NO_COLOR", None)
    cmd = [sys.executable, "-m", "bncli", *args]
    if not stderr_tty:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        feeder = threading.Thread(target=_feed_slowly, args=(proc.stdin, pause))
        feeder.start()
        err = proc.stderr.read()
        feeder.join()
        return proc.wait(timeout=60), err
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=slave, env=env)
    os.close(slave)
    feeder = threading.Thread(target=_feed_slowly, args=(proc.stdin, pause))
    feeder.start()
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    feeder.join()
    return proc.wait(timeout=60), b"".join(chunks)


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_terminal_shows_a_transient_progress_bar_and_a_summary(stats_file):
    code, err = _run_bncli(["transform", "-", "-s", stats_file], stderr_tty=True)
    assert code == 0, err
    text = err.decode()
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    assert re.search(r"transform +[\d,]+ rows", plain), plain  # stdin: rows processed
    assert "\x1b[2K" in text  # the bar is erased when done
    assert re.search(r"transform: 380,000 rows, 3 features, 1 pass-through columns in [\d.]+ s", plain)
    # the summary comes after the bar has gone
    assert plain.rstrip().splitlines()[-1].startswith("transform: 380,000 rows")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_no_progress_option_on_a_terminal(stats_file):
    code, err = _run_bncli(["transform", "-", "-s", stats_file, "--no-progress"], stderr_tty=True)
    assert code == 0
    text = err.decode().replace("\r\n", "\n")
    assert ESC not in text
    assert re.fullmatch(r"transform: 380,000 rows, .* rows/s\)\n", text)


def test_a_pipe_gets_no_escape_codes(stats_file):
    code, err = _run_bncli(["transform", "-", "-s", stats_file], stderr_tty=False)
    assert code == 0 and err == b""  # default in a pipe: silent
    code, err = _run_bncli(["transform", "-", "-s", stats_file, "-v"], stderr_tty=False, pause=0)
    assert code == 0
    assert ESC.encode() not in err
    assert re.fullmatch(rb"transform: 380,000 rows, .* rows/s\)\n", err)


def test_progress_option_forces_the_bar_into_a_pipe(stats_file):
    code, err = _run_bncli(["transform", "-", "-s", stats_file, "--progress"], stderr_tty=False)
    assert code == 0
    assert ESC.encode() in err and b"rows" in err
