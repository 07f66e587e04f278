"""Everything human-facing goes to stderr through a :class:`Reporter`.

Verbosity is counted: ``-q`` (-1) silences warnings, the default (0) prints
warnings and, when stderr is a terminal, a one-line summary; ``-v`` (1) always
prints the summary.  The progress display (rich) appears only on a terminal,
only after about a second, and disappears when done; ``--progress`` /
``--no-progress`` force it either way.  rich is imported only when needed.

Without a terminal on stderr (and without ``--progress``) nothing here ever
writes an escape code: messages are plain lines.  While a progress display is
live, messages are printed through its console, above the bar, so the two
never garble each other.  stdout is never touched: it carries data.
"""

from __future__ import annotations

import os
import sys
import time

PROGRESS_DELAY = 1.0  # seconds before a progress display appears


class Reporter:
    """Warnings, the summary line and progress, on ``stream`` (stderr).

    ``verbosity`` is ``-v`` count minus ``-q`` count; ``progress`` None means
    "when ``stream`` is a terminal (not TERM=dumb) and not -q".
    """

    def __init__(self, verbosity: int = 0, progress: bool | None = None, stream=None):
        self.verbosity = verbosity
        self.stream = stream if stream is not None else sys.stderr
        self._tty = _isatty(self.stream)
        if progress is None:
            progress = self._tty and verbosity >= 0 and os.environ.get("TERM") != "dumb"
        self.show_progress = bool(progress)
        self._warned: set[str] = set()
        self._live = None  # the rich Progress on screen, if any

    # -- messages -------------------------------------------------------------------
    def warn(self, message: str) -> None:
        """``Warning: ...`` once per distinct message, unless -q."""
        if self.verbosity < 0 or message in self._warned:
            return
        self._warned.add(message)
        self._print(f"Warning: {message}")

    def info(self, message: str) -> None:
        """Printed with -v only."""
        if self.verbosity >= 1:
            self._print(message)

    def summary(self, message: str) -> None:
        """The closing one-liner: with -v, or by default on a terminal."""
        if self.verbosity >= 1 or (self.verbosity == 0 and self._tty):
            self._print(message)

    def _print(self, line: str) -> None:
        try:
            if self._live is not None:
                self._live.console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)
                return
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass

    # -- progress --------------------------------------------------------------------
    def progress(self, description: str, total_bytes: int | None) -> Progress:
        return Progress(self, description, total_bytes)


class Progress:
    """Bytes read against the file size (rate, ETA), or rows for stdin.

    A context manager; call :meth:`update` with the rows done so far and the
    bytes read (None when unknown).  Nothing is drawn during the first
    ``PROGRESS_DELAY`` seconds, so short runs never show a bar; the bar is
    transient: erased when the run ends, successfully or not.
    """

    def __init__(self, reporter: Reporter, description: str, total_bytes: int | None):
        self._reporter = reporter
        self._description = description
        self._total = total_bytes
        self._start = time.monotonic()
        self._live = None
        self._task = None
        self.rows = 0

    def __enter__(self):
        return self

    def update(self, rows: int, bytes_read: int | None) -> None:
        self.rows = rows
        if not self._reporter.show_progress:
            return
        if self._live is None:
            if time.monotonic() - self._start < PROGRESS_DELAY:
                return
            self._begin()
        if self._total and bytes_read is not None:
            self._live.update(self._task, completed=min(bytes_read, self._total), rows=rows)
        else:
            self._live.update(self._task, completed=rows, rows=rows)

    def _begin(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as RichProgress

        console = Console(file=self._reporter.stream, force_terminal=self._reporter.show_progress)
        if self._total:
            columns = [
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TextColumn("{task.fields[rows]:,} rows"),
                TimeRemainingColumn(),
            ]
        else:
            columns = [
                TextColumn("[bold]{task.description}"),
                TextColumn("{task.completed:,} rows"),
                TimeElapsedColumn(),
            ]
        # No stdout/stderr redirection: stdout carries data, and messages go
        # through Reporter._print, which knows about the live display.
        self._live = RichProgress(
            *columns,
            console=console,
            transient=True,
            refresh_per_second=5,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()
        self._task = self._live.add_task(self._description, total=self._total, rows=0)
        # Elapsed time counts from the start of the run, not from when the bar appeared.
        for task in self._live.tasks:
            if task.id == self._task and task.start_time is not None:
                task.start_time -= time.monotonic() - self._start
        self._reporter._live = self._live

    def __exit__(self, *exc):
        if self._live is not None:
            self._reporter._live = None
            try:
                self._live.stop()
            except (OSError, ValueError):
                pass
        return False


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False
