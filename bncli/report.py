"""Everything human-facing goes to stderr through a :class:`Reporter`.

Verbosity is counted: ``-q`` (-1) silences warnings, the default (0) prints
warnings and, when stderr is a terminal, a one-line summary; ``-v`` (1) always
prints the summary.  The progress display (rich) appears only on a terminal,
only after about a second, and disappears when done; ``--progress`` /
``--no-progress`` force it either way.  rich is imported only when needed.
"""

from __future__ import annotations

import sys
import time

PROGRESS_DELAY = 1.0  # seconds before a progress display appears


class Reporter:
    def __init__(self, verbosity: int = 0, progress: bool | None = None, stream=None):
        self.verbosity = verbosity
        self.stream = stream if stream is not None else sys.stderr
        self._tty = _isatty(self.stream)
        self.show_progress = (self._tty and verbosity >= 0) if progress is None else progress
        self._warned: set[str] = set()

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
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass

    # -- progress --------------------------------------------------------------------
    def progress(self, description: str, total_bytes: int | None) -> "Progress":
        return Progress(self, description, total_bytes)


class Progress:
    """Bytes read against the file size (rate, ETA), or rows for stdin."""

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
            Progress as RichProgress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

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
            columns = [TextColumn("[bold]{task.description}"), TextColumn("{task.completed:,} rows"), TimeElapsedColumn()]
        self._live = RichProgress(*columns, console=console, transient=True, refresh_per_second=5)
        self._live.start()
        self._task = self._live.add_task(self._description, total=self._total, rows=0)

    def __exit__(self, *exc):
        if self._live is not None:
            self._live.stop()
        return False


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False
