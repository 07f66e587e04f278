"""Exceptions that reach the user as one line on stderr, and their exit codes.

Exit codes: 0 success; 1 bad data or runtime failure; 2 usage error (bad
option values, conflicting paths); 130 interrupted.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what `yes | head` reports

#: C0 controls and DEL as visible escapes (\n, \t, \x0b ...).
_ESCAPES = {c: repr(chr(c))[1:-1] for c in [*range(32), 127]}


class BncliError(Exception):
    """A failure the user can act on: ``message`` says what and where, ``hint`` how."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def format(self) -> str:
        """The single line printed on stderr (without the ``Error:`` prefix).

        Control characters are escaped: names and values quoted from the data
        (a header cell holding a line break, say) must not split the line.
        """
        text = f"{self.message} (hint: {self.hint})" if self.hint else self.message
        return text.translate(_ESCAPES)


class InputError(BncliError):
    """An input cannot be opened or read (missing, directory, permission, format)."""


class DataError(BncliError):
    """The data itself is unusable: unparsable values, ragged rows, inf, no rows."""


class StatsFileError(BncliError):
    """A stats file is missing, not JSON, not a bncli stats file, or incompatible."""


class OutputError(BncliError):
    """An output cannot be written (missing directory, permission, disk full)."""


class UsageError(BncliError):
    """Options that cannot work together, or paths that would clobber an input."""

    exit_code = EXIT_USAGE


def locate(source: str, row: int | None = None, column: str | None = None) -> str:
    """``"data.csv, row 12, column 'price'"``: the 'where' part of a message.

    Rows are data rows counted from 1 (the header is not a row).
    """
    parts = [source]
    if row is not None:
        parts.append(f"row {row}")
    if column is not None:
        parts.append(f"column {column!r}")
    return ", ".join(parts)
