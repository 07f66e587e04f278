"""Streaming table readers: CSV/TSV (plain or compressed) and Parquet, files or stdin.

Readers know nothing of the math.  Each yields :class:`Chunk` objects: an Arrow
table whose *feature* columns are float64 (missing values are nulls) and whose
other columns are passed through untouched (CSV: the exact text as strings;
Parquet: the original type), plus the number of the chunk's first row so that
errors can name it.  Memory is bounded by the chunk size, never by the input.

CSV is cut into chunks at record boundaries by this module (a newline outside
quotes, found by quote parity) and each chunk is parsed by pyarrow with
explicit column types.  That keeps pyarrow's fast multi-threaded parser while
(1) feature columns are read as float64 whatever the first block suggests,
(2) every error can be traced to its row, and (3) a quote left open at the end
of the file is detected instead of silently swallowing the rest.
"""

from __future__ import annotations

import bisect
import codecs
import csv
import functools
import io
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from . import files, formats
from .errors import DataError, InputError, UsageError, locate

#: Tokens read as missing in feature columns (pandas' and pyarrow's defaults).
DEFAULT_NULL_VALUES = (
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
    "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
)  # fmt: skip

CHUNK_BYTES = 4 << 20
#: pyarrow's parse block (its unit of parallelism); longer records are retried as one block.
PARSE_BLOCK_BYTES = 1 << 20
#: A record (in practice: a quoted field) longer than this is taken for a quote
#: that is never closed, rather than read into memory to the end of the input.
MAX_RECORD_BYTES = 64 << 20
STDIN = "-"


@dataclass
class Chunk:
    """Rows ``first_row .. first_row + table.num_rows - 1`` (data rows, from 1) of ``source``."""

    table: pa.Table
    source: str
    first_row: int


@dataclass
class CsvDialect:
    """How CSV text is read (and written back)."""

    delimiter: str = ","
    encoding: str = "utf-8"
    null_values: tuple[str, ...] = DEFAULT_NULL_VALUES


# -- column kinds -----------------------------------------------------------------


def is_numeric_type(t: pa.DataType) -> bool:
    """Integers, floats and decimals are numeric features; booleans are not."""
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_null(t)


# -- opening ------------------------------------------------------------------------


class _Prefixed(io.RawIOBase):
    """A binary stream with some already-read bytes put back in front."""

    def __init__(self, head: bytes, rest):
        self._head = head
        self._rest = rest

    def readable(self):
        return True

    def read(self, n=-1):
        if self._head:
            if n is None or n < 0:
                out, self._head = self._head + self._rest.read(), b""
                return out
            out, self._head = self._head[:n], self._head[n:]
            if len(out) < n:
                out += self._rest.read(n - len(out)) or b""
            return out
        return self._rest.read(n)

    def readinto(self, b):
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def tell(self):
        return self._rest.tell() - len(self._head)


class _Transcoder(io.RawIOBase):
    """Decode a byte stream from ``encoding`` and re-encode it as UTF-8, incrementally."""

    def __init__(self, raw, encoding: str, source: str):
        self._raw = raw
        self._dec = codecs.getincrementaldecoder(encoding)(errors="strict")
        self._encoding = encoding
        self._source = source
        self._offset = 0

    def readable(self):
        return True

    def read(self, n=-1):
        data = self._raw.read(n if n and n > 0 else CHUNK_BYTES)
        try:
            text = self._dec.decode(data, final=not data)
        except UnicodeError as e:  # UnicodeDecodeError, or e.g. UTF-16 without a byte order mark
            at = f"byte {self._offset + e.start}" if isinstance(e, UnicodeDecodeError) else f"bytes near {self._offset}"
            raise DataError(
                f"{self._source}: cannot decode {at} as {self._encoding} ({e.reason if hasattr(e, 'reason') else e})",
                hint="check the file's encoding and pass it with --encoding",
            ) from None
        self._offset += len(data)
        return text.encode("utf-8")


def _display(path: str) -> str:
    return "<stdin>" if path == STDIN else path


def _delimiter_byte(delimiter: str) -> bytes:
    """The delimiter as the single byte pyarrow splits on (text reaches it as UTF-8)."""
    if len(delimiter) != 1 or not delimiter.isascii() or delimiter in '"\r\n':
        raise UsageError(
            f"--delimiter {delimiter!r} cannot be used",
            hint="the delimiter must be one ASCII character other than a quote or a line break",
        )
    return delimiter.encode("ascii")


def open_input(path: str):
    """Open ``path`` (or ``-`` for stdin) for binary reading; errors are InputErrors."""
    if path == STDIN:
        return sys.stdin.buffer
    try:
        if os.path.isdir(path):
            raise InputError(f"{path}: is a directory", hint="pass the files inside it, e.g. DIR/*.csv")
        return open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied (cannot read)") from None
    except OSError as e:
        raise InputError(f"{path}: cannot open: {e.strerror}") from None


def detect_format(path: str, fmt: str | None, fh) -> tuple[str, str | None, object]:
    """Settle (format, compression) for an open input; returns a stream to read from.

    The first bytes are sniffed and put back in front of the stream.  They
    decide for stdin and unknown extensions, and also when a file named like
    plain CSV holds compressed or Parquet bytes (``data.csv`` that is really
    gzip), which would otherwise fail with a baffling encoding error.
    """
    ext_fmt, compression = formats.from_path(path) if path != STDIN else (None, None)
    if compression is not None or (fmt == "parquet" and path != STDIN):
        return fmt or ext_fmt or "csv", compression, fh
    head = _read_head(fh, path, 16)
    fh = _Prefixed(head, fh)
    sniffed, sniffed_comp = _sniff(head, path)
    if path == STDIN or ext_fmt is None:
        return fmt or (sniffed if not sniffed_comp else None) or "csv", sniffed_comp, fh
    if fmt in (None, "csv", "tsv") and sniffed_comp:
        return fmt or ext_fmt, sniffed_comp, fh
    if fmt is None and ext_fmt != "parquet" and sniffed == "parquet":
        return "parquet", None, fh
    return fmt or ext_fmt, None, fh


def _read_head(fh, path: str, n: int) -> bytes:
    try:
        return fh.read(n) or b""
    except OSError as e:
        raise InputError(f"{_display(path)}: cannot read: {e.strerror or e}") from None


def _sniff(head: bytes, path: str) -> tuple[str, str | None]:
    """formats.sniff, but bzip2 only with its full signature (CSV text may begin
    with "BZh") and a named file as Parquet only if it also ends in PAR1."""
    sniffed, comp = formats.sniff(head)
    if comp == "bz2" and not re.match(rb"BZh[1-9]1AY&SY", head):
        return "csv", None
    if sniffed == "parquet" and path != STDIN and os.path.isfile(path):
        try:
            with open(path, "rb") as f:
                f.seek(-4, os.SEEK_END)
                if f.read(4) != b"PAR1":
                    return "csv", None
        except OSError:
            return "csv", None
    return sniffed, comp


def open_reader(path: str, fmt: str | None = None, dialect: CsvDialect | None = None, chunk_bytes=CHUNK_BYTES):
    """A :class:`CsvReader` or :class:`ParquetReader` for ``path`` (``-`` = stdin)."""
    fh = open_input(path)
    try:
        fmt, compression, fh = detect_format(path, fmt, fh)
        if fmt == "parquet":
            if compression:
                raise InputError(f"{_display(path)}: Parquet files are not read {compression}-compressed")
            return ParquetReader(path, fh)
        dialect = dialect or CsvDialect()
        if fmt == "tsv" and dialect.delimiter == ",":
            dialect = CsvDialect("\t", dialect.encoding, dialect.null_values)
        return CsvReader(path, fh, dialect, compression, chunk_bytes, fmt)
    except BaseException:
        if fh is not sys.stdin.buffer:
            try:
                fh.close()
            except Exception:
                pass
        raise


# -- CSV ----------------------------------------------------------------------------


class CsvReader:
    """Stream a CSV/TSV file as Arrow chunks; see the module docstring.

    After construction, ``columns`` holds the header names and ``sample_types``
    the types pyarrow infers from the first chunk: used only to *choose* the
    default features, never to read them.
    """

    def __init__(self, path, fh, dialect: CsvDialect, compression, chunk_bytes, fmt="csv"):
        self.path = path
        self.source = _display(path)
        self.format = fmt
        self.dialect = dialect
        self.chunk_bytes = chunk_bytes
        self._quoting = _quote_rules(_delimiter_byte(dialect.delimiter))
        self._row = 1  # data row number of the first record in ``_pending``
        self._fh = fh
        self._raw = fh
        stream = fh
        if compression:
            stream = pa.CompressedInputStream(pa.PythonFile(fh, mode="r"), compression)
        enc = codecs.lookup(dialect.encoding).name
        if enc not in ("utf-8", "utf-8-sig", "ascii"):
            stream = _Transcoder(stream, dialect.encoding, self.source)
        self._stream = stream
        self.total_bytes = _file_size(path)
        self._bytes_read = 0
        self._pending = b""
        self._eof = False
        self._read_header()

    # progress: bytes of the (possibly compressed) input consumed so far
    @property
    def bytes_read(self) -> int:
        try:
            return self._raw.tell()
        except (OSError, AttributeError, ValueError):
            return self._bytes_read

    def close(self):
        if self._fh is not sys.stdin.buffer:
            self._fh.close()

    # -- raw chunking -------------------------------------------------------------
    def _read_more(self, n: int) -> bool:
        if self._eof:
            return False
        try:
            data = self._stream.read(n)
        except OSError as e:
            raise InputError(f"{self.source}: cannot read: {getattr(e, 'strerror', None) or e}") from None
        except pa.ArrowInvalid as e:
            raise InputError(f"{self.source}: cannot decompress: {e}") from None
        if not data:
            self._eof = True
            return False
        data = bytes(data)
        self._bytes_read += len(data)
        self._pending += data
        return True

    def _next_raw(self) -> _Run | None:
        """The next run of whole records (None at the end)."""
        while True:
            buf = self._pending
            if not self._eof and len(buf) < self.chunk_bytes:
                self._read_more(self.chunk_bytes)
                continue
            # Nearly always the quoting is plain (RFC 4180, no line break inside
            # quotes): one regular-expression pass proves it, and then the last
            # line break ends the last whole record.
            plain = b'"' not in buf or self._quoting.plain.match(buf).end() == len(buf)
            literal = [] if plain else _literal_quotes(buf, self._quoting)
            if self._eof:
                self._pending = b""
                if not buf:
                    return None
                if _structural_quotes(buf, literal, 0, len(buf)) % 2:
                    self._unterminated_quote(buf, literal)
                return _Run(buf, plain, literal)
            cut = _last_line_break(buf, 0, len(buf)) + 1 if plain else _record_boundary(buf, literal)
            if cut > 0:
                self._pending = buf[cut:]
                return _Run(buf if cut == len(buf) else memoryview(buf)[:cut], plain, literal)
            # One record longer than a chunk: read on until it ends, within reason.
            if len(buf) >= max(MAX_RECORD_BYTES, self.chunk_bytes):
                self._unterminated_quote(buf, literal, eof=False)
            self._read_more(max(self.chunk_bytes, len(buf)))

    # -- header ----------------------------------------------------------------------
    def _read_header(self):
        while not self._eof and len(self._pending) < 65536:
            self._read_more(65536)
        if self._pending.startswith(codecs.BOM_UTF8):
            self._pending = self._pending[len(codecs.BOM_UTF8) :]
        # Blank lines before the header are skipped, as pyarrow skips blank lines.
        self._pending = self._pending.lstrip(b"\r\n")
        while not self._pending and not self._eof:
            self._read_more(65536)
            self._pending = self._pending.lstrip(b"\r\n")
        if not self._pending:
            raise DataError(f"{self.source}: empty input (no header row)")
        while True:
            literal = _literal_quotes(self._pending, self._quoting)
            end = _first_record_end(self._pending, literal, final=self._eof)
            if end >= 0 or self._eof:
                break
            if len(self._pending) >= max(MAX_RECORD_BYTES, self.chunk_bytes):
                self._unterminated_quote(self._pending, literal, eof=False, header=True)
            self._read_more(self.chunk_bytes)
        if end < 0:
            if _structural_quotes(self._pending, literal, 0, len(self._pending)) % 2:
                self._unterminated_quote(self._pending, literal, header=True)
            end = len(self._pending)
        header, self._pending = self._pending[:end], self._pending[end:]
        try:
            text = header.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(
                f"{self.source}: header is not valid UTF-8 (byte {e.start})",
                hint="pass the file's encoding with --encoding, e.g. --encoding latin-1",
            ) from None
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=self.dialect.delimiter, strict=False))
        self.columns = rows[0] if rows else []
        seen = {}
        for i, name in enumerate(self.columns):
            if name in seen:
                raise DataError(
                    f"{self.source}: duplicate column name {name!r} (columns {seen[name] + 1} and {i + 1})",
                    hint="column names must be unique; rename one of them",
                )
            seen[name] = i
        self._lines_before = text.count("\n") or 1
        self._first_raw = self._next_raw()
        self.sample_types = self._infer_types(self._first_raw)

    def _infer_types(self, raw: _Run | None) -> dict[str, pa.DataType]:
        if not raw:
            return {c: pa.null() for c in self.columns}
        try:
            t = self._parse(raw, None)
        except pa.ArrowInvalid as e:
            self._raise_parse_error(bytes(raw), 1, e)
        return {name: t.schema.field(i).type for i, name in enumerate(self.columns)}

    # -- parsing ------------------------------------------------------------------------
    def _parse(self, raw: _Run | bytes, column_types: dict | None, include: list[str] | None = None) -> pa.Table:
        try:
            return self._read_csv(raw, column_types, PARSE_BLOCK_BYTES, include)
        except pa.ArrowInvalid as e:
            if "straddl" not in str(e):
                raise
        # A record longer than pyarrow's parse block: read the run as one block.
        return self._read_csv(raw, column_types, len(raw) + 1, include)

    def _read_csv(self, raw: _Run | bytes, column_types: dict | None, block_size: int, include=None) -> pa.Table:
        # pyarrow parses in parallel only when no quoted value holds a line break.
        if isinstance(raw, _Run):
            raw, quoted = raw.data, raw.multiline
        else:
            quoted = b'"' in raw
        return pacsv.read_csv(
            pa.py_buffer(raw),
            read_options=pacsv.ReadOptions(column_names=self.columns, use_threads=True, block_size=block_size),
            parse_options=pacsv.ParseOptions(delimiter=self.dialect.delimiter, newlines_in_values=quoted),
            convert_options=pacsv.ConvertOptions(
                column_types=column_types,
                include_columns=include,
                null_values=list(self.dialect.null_values),
                strings_can_be_null=column_types is None,
                quoted_strings_can_be_null=True,
                check_utf8=True,
            ),
        )

    def chunks(self, features: list[str], only_features: bool = False) -> Iterator[Chunk]:
        """Yield the data as chunks with ``features`` as float64, other columns as strings.

        ``only_features`` leaves the other columns out (their text is still
        tokenized, so ragged rows are still caught, but not converted).
        """
        fset = set(features)
        types = {c: (pa.float64() if c in fset else pa.string()) for c in self.columns}
        include = list(features) if only_features else None
        row = 1
        raw = self._first_raw
        self._first_raw = None
        while raw is not None:
            try:
                table = self._parse(raw, types, include)
            except pa.ArrowInvalid as e:
                self._raise_parse_error(bytes(raw), row, e, types)
            if table.num_rows:
                yield Chunk(table, self.source, row)
            row += table.num_rows
            self._row = row
            raw = self._next_raw()

    # -- errors ---------------------------------------------------------------------
    def _unterminated_quote(self, buf: bytes, literal: list[int], eof: bool = True, header: bool = False):
        """Stop on a quoted field that never closes, naming the row and column where it opens.

        pyarrow would silently read everything after such a quote as one value;
        a quote left open in mid-file makes one "record" grow without end.
        """
        start = _record_boundary(buf, literal)
        opener = _open_quote(buf, start, self._quoting)
        text = buf[start:opener].decode("utf-8", errors="replace")
        if header:
            where, column = self.source + ", header", None
        else:
            where = locate(self.source, self._row + _count_records(buf[:start], self.dialect.delimiter))
            fields = next(csv.reader(io.StringIO(text, newline=""), delimiter=self.dialect.delimiter, strict=False), [])
            index = max(len(fields) - 1, 0)
            column = self.columns[index] if index < len(self.columns) else None
        if column is not None:
            where += f", column {column!r}"
        runs = "to the end of the input" if eof else f"on for more than {MAX_RECORD_BYTES >> 20} MiB"
        raise DataError(
            f"{where}: quoted field {_excerpt(buf[opener:])} is never closed (it runs {runs})",
            hint='the file may be truncated; a quote inside a quoted field must be doubled ("")',
        )

    def _raise_parse_error(self, raw: bytes, first_row: int, exc: Exception, types=None):
        msg = str(exc)
        m = re.search(r"CSV column #(\d+): CSV conversion error to (\w+): invalid value '(.*)'$", msg, re.S)
        if m:
            col = self.columns[int(m.group(1))]
            value = m.group(3)
            row = self._find_bad_value(raw, col, m.group(2), value)
            raise DataError(
                f"{locate(self.source, None if row is None else first_row + row, col)}: "
                f"{_short(value)!r} is not a number",
                hint=_not_a_number_hint(col, value),
            ) from None
        m = re.search(r"CSV column #(\d+): CSV conversion error to string: invalid UTF8", msg)
        if m or "invalid UTF8" in msg:
            col = self.columns[int(m.group(1))] if m else None
            row = self._find_bad_utf8(raw, col) if col is not None else None
            raise DataError(
                f"{locate(self.source, None if row is None else first_row + row, col)}: invalid UTF-8 text",
                hint="pass the file's encoding with --encoding, e.g. --encoding latin-1",
            ) from None
        m = re.search(r"Expected (\d+) columns, got (\d+)", msg)
        if m:
            row, n = self._find_ragged_row(raw, int(m.group(1)))
            where = locate(self.source, None if row is None else first_row + row)
            raise DataError(
                f"{where}: expected {m.group(1)} fields like the header, found {n if n is not None else m.group(2)}",
                hint="every row must have as many fields as the header (check quoting and the --delimiter)",
            ) from None
        raise DataError(f"{self.source}: cannot parse CSV: {msg.splitlines()[0]}") from None

    def _string_column(self, raw: bytes, col: str, type_: pa.DataType | None = None) -> pa.Array | None:
        type_ = type_ or pa.string()
        types = {c: (type_ if c == col else pa.binary()) for c in self.columns}
        try:
            t = pacsv.read_csv(
                pa.py_buffer(raw),
                read_options=pacsv.ReadOptions(column_names=self.columns, use_threads=False, block_size=len(raw) + 1),
                parse_options=pacsv.ParseOptions(delimiter=self.dialect.delimiter, newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    column_types=types, null_values=list(self.dialect.null_values), strings_can_be_null=True
                ),
            )
        except pa.ArrowInvalid:
            return None
        return t.column(col).combine_chunks()

    def _find_bad_value(self, raw: bytes, col: str, target: str, value: str) -> int | None:
        """0-based row in ``raw`` of the first value of ``col`` that does not convert:
        the first occurrence of the value pyarrow named, else found by bisection."""
        arr = self._string_column(raw, col)
        if arr is None:
            return None
        import pyarrow.compute as pc  # here: importing it costs start-up time

        i = pc.index(arr, value).as_py()
        if i is not None and i >= 0:
            return i
        to = pa.float64() if target == "double" else pa.type_for_alias(target)
        return _first_failure(arr, lambda a: a.cast(to))

    def _find_bad_utf8(self, raw: bytes, col: str) -> int | None:
        arr = self._string_column(raw, col, pa.binary())
        if arr is None:
            return None
        return _first_failure(arr, lambda a: a.cast(pa.string()).validate(full=True))

    def _find_ragged_row(self, raw: bytes, expected: int) -> tuple[int | None, int | None]:
        text = raw.decode("utf-8", errors="replace")
        row = 0
        for fields in csv.reader(io.StringIO(text, newline=""), delimiter=self.dialect.delimiter, strict=False):
            if not fields:
                continue  # blank line: skipped by the parser too
            if len(fields) != expected:
                return row, len(fields)
            row += 1
        return None, None


def _not_a_number_hint(col: str, value: str) -> str:
    token = value if re.fullmatch(r"[\w.?*/+-]+", value) else repr(value)
    return (
        f"if {_short(value)!r} means a missing value, add --null-value {_short(token)}; "
        f"to keep {col!r} as text, fit with --exclude {col!r}"
    )


def _first_failure(arr: pa.Array, check) -> int | None:
    """Index of the first element for which ``check(slice)`` raises, by bisection."""

    def fails(a):
        try:
            check(a)
            return False
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return True

    lo, hi = 0, len(arr)
    if not fails(arr):
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fails(arr.slice(lo, mid - lo)):
            hi = mid
        else:
            lo = mid
    return lo


# -- quoting -----------------------------------------------------------------------
#
# pyarrow (like Python's csv module) treats a quote as opening a quoted field
# only at the start of a field; inside one, "" is a literal quote and a single
# quote closes it; anything else is literal, so 5"10 or "a" b" hold literal
# quotes.  Records are cut by quote parity, which is exact once those literal
# quotes are left out of the count.  Finding them is a single regular
# expression match over the buffer (C speed) when the quoting is regular, which
# it nearly always is; only stray quotes cost a step of Python each.


@dataclass(frozen=True)
class _QuoteRules:
    regular: re.Pattern  # everything up to the first quote that breaks RFC 4180 quoting
    plain: re.Pattern  # the same, also stopping at a line break inside quotes
    quoted: re.Pattern  # a quoted section: opening quote to closing quote (or the end)
    rest: re.Pattern  # the rest of a field
    separators: frozenset  # bytes after which a field starts


#: Possessive quantifiers (Python 3.11+) keep the match linear and its memory flat;
#: the patterns are written so that plain greedy ones stay linear too.
_POSSESSIVE = b"+" if sys.version_info >= (3, 11) else b""


@functools.lru_cache(maxsize=8)
def _quote_rules(delimiter: bytes) -> _QuoteRules:
    d = re.escape(delimiter)
    sep = b"[^" + d + rb"\r\n]"
    star, plus = b"*" + _POSSESSIVE, b"+" + _POSSESSIVE
    body = b'[^"]' + star + b'(?:""[^"]' + star + b")" + star
    field_start, field_end = rb"(?<!" + sep + b")", rb"(?!" + sep + b")"
    quoted = b'"' + body + rb'(?:"' + field_end + rb"|\Z)"
    line = b'[^"\r\n]' + star
    quoted_line = b'"' + line + b'(?:""' + line + b")" + star + rb'(?:"' + field_end + rb"|\Z)"
    return _QuoteRules(
        regular=re.compile(b'(?:[^"]' + plus + b"|" + field_start + quoted + b")" + star),
        plain=re.compile(b'(?:[^"]' + plus + b"|" + field_start + quoted_line + b")" + star),
        quoted=re.compile(b'"' + body + b'(")?'),
        rest=re.compile(sep + star),
        separators=frozenset(delimiter + b"\r\n"),
    )


def _literal_quotes(buf: bytes, rules: _QuoteRules) -> list[int]:
    """Sorted offsets of the quote characters in ``buf`` that neither open nor close
    a quoted field (``buf`` starts at a record boundary)."""
    if b'"' not in buf:
        return []
    literal: list[int] = []
    n = len(buf)
    pos = 0
    while True:
        pos = rules.regular.match(buf, pos).end()
        if pos >= n:
            return literal
        # buf[pos] is a quote that breaks the regular form.
        if pos == 0 or buf[pos - 1] in rules.separators:
            # It opens a field, but text follows its closing quote: skip the quoted part.
            pos = rules.quoted.match(buf, pos).end()
            if pos >= n:
                return literal
        end = rules.rest.match(buf, pos).end()
        q = buf.find(b'"', pos, end)
        while q >= 0:
            literal.append(q)
            q = buf.find(b'"', q + 1, end)
        pos = end


class _Run:
    """A run of whole records: a view of the read buffer (not a copy), and whether
    a quoted value in it spans lines (pyarrow then cannot parse it in parallel)."""

    __slots__ = ("data", "multiline")

    def __init__(self, data, plain: bool, literal: list[int]):
        self.data = data
        if plain:
            self.multiline = False
        else:
            data = bytes(data)
            self.multiline = _line_break_in_quotes(data, [q for q in literal if q < len(data)])

    def __len__(self) -> int:
        return len(self.data)

    def __bytes__(self) -> bytes:
        return bytes(self.data)


def _line_break_in_quotes(buf: bytes, literal: list[int]) -> bool:
    """Whether a line break of ``buf`` (which starts outside quotes) lies inside a quoted field.

    A break is inside quotes when an odd number of structural quotes precede it.
    Vectorized: a few passes over the bytes instead of a serial parse.
    """
    if b'"' not in buf:
        return False
    a = np.frombuffer(buf, dtype=np.uint8)
    quotes = np.flatnonzero(a == ord('"'))
    if literal:
        quotes = np.setdiff1d(quotes, np.asarray(literal), assume_unique=True)
    if len(quotes) < 2:
        return False
    inner = a[quotes[0] : quotes[-1]]
    is_break = inner == ord("\n")
    if b"\r" in buf:
        is_break |= inner == ord("\r")
    breaks = np.flatnonzero(is_break) + quotes[0]
    return bool((np.searchsorted(quotes, breaks) & 1).any())


def _structural_quotes(buf: bytes, literal: list[int], start: int, end: int) -> int:
    """How many quotes in ``buf[start:end]`` open or close fields (or are doubled)."""
    n = buf.count(b'"', start, end)
    if literal:
        n -= bisect.bisect_left(literal, end) - bisect.bisect_left(literal, start)
    return n


def _record_boundary(buf: bytes, literal: list[int] = ()) -> int:
    """Offset just past the last line break (CR or LF, as for pyarrow) of ``buf`` that
    lies outside quotes (0 if none).

    ``buf`` starts outside quotes.  With RFC 4180 quoting the quoted stretches
    run from each even-numbered quote to the next (an escaped "" is two
    adjacent quotes, so it adds no gap), ``literal`` quotes aside.  Walking back
    over those stretches costs one step per quoted field skipped, however many
    lines they hold.  A cut between the CR and LF of a CRLF is harmless: the LF
    then starts the next run as an empty line, which the parser skips.
    """
    end = len(buf)
    if b'"' not in buf:
        return _last_line_break(buf, 0, end) + 1
    if _structural_quotes(buf, literal, 0, end) & 1:
        end = _prev_quote(buf, literal, end)  # the tail after the last quote is inside it
    while True:
        closer = _prev_quote(buf, literal, end)
        p = _last_line_break(buf, closer + 1, end)
        if p >= 0:
            return p + 1
        if closer < 0:
            return 0
        end = _prev_quote(buf, literal, closer)  # skip the quoted stretch
        if end < 0:
            return 0


def _first_record_end(buf: bytes, literal: list[int] = (), final: bool = True) -> int:
    """Offset just past the line break (CR, LF or CRLF) that ends the first record
    (-1 if none yet; a CR at the very end is undecided unless ``final``)."""
    start = 0
    while True:
        opener = _next_quote(buf, literal, start)
        p = _first_line_break(buf, start, len(buf) if opener < 0 else opener)
        if p >= 0:
            if buf[p : p + 1] == b"\r":
                if p + 1 == len(buf) and not final:
                    return -1
                if buf[p + 1 : p + 2] == b"\n":
                    return p + 2
            return p + 1
        if opener < 0:
            return -1
        closer = _next_quote(buf, literal, opener + 1)
        if closer < 0:
            return -1
        start = closer + 1


def _last_line_break(buf: bytes, start: int, end: int) -> int:
    return max(buf.rfind(b"\n", start, end), buf.rfind(b"\r", start, end))


def _first_line_break(buf: bytes, start: int, end: int) -> int:
    lf, cr = buf.find(b"\n", start, end), buf.find(b"\r", start, end)
    return min(lf, cr) if lf >= 0 and cr >= 0 else max(lf, cr)


def _is_literal(literal: list[int], q: int) -> bool:
    i = bisect.bisect_left(literal, q)
    return i < len(literal) and literal[i] == q


def _prev_quote(buf: bytes, literal: list[int], before: int) -> int:
    """The last structural quote before offset ``before`` (-1 if none)."""
    q = buf.rfind(b'"', 0, before)
    while q >= 0 and literal and _is_literal(literal, q):
        q = buf.rfind(b'"', 0, q)
    return q


def _next_quote(buf: bytes, literal: list[int], start: int) -> int:
    """The first structural quote at or after ``start`` (-1 if none)."""
    q = buf.find(b'"', start)
    while q >= 0 and literal and _is_literal(literal, q):
        q = buf.find(b'"', q + 1)
    return q


def _open_quote(buf: bytes, start: int, rules: _QuoteRules) -> int:
    """Offset of the quote that opens the field left open at the end of ``buf``;
    ``start`` is the boundary of the record it belongs to."""
    pos = start
    while True:
        q = buf.find(b'"', pos)
        if q < 0:
            return start
        if q == 0 or buf[q - 1] in rules.separators:
            m = rules.quoted.match(buf, q)
            if m.group(1) is None:
                return q
            pos = m.end()
        else:
            pos = q + 1  # a literal quote inside an unquoted field


def _count_records(buf: bytes, delimiter: str) -> int:
    """Data rows in ``buf`` as pyarrow counts them (blank lines are skipped)."""
    text = buf.decode("utf-8", errors="replace")
    return sum(1 for fields in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False) if fields)


def _short(value: str, limit: int = 40) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."


def _excerpt(b: bytes) -> str:
    return repr(_short(b[:40].decode("utf-8", errors="replace").split("\n")[0]))


def _file_size(path: str) -> int | None:
    if path == STDIN:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size if st.st_size > 0 and os.path.isfile(path) else None


# -- Parquet ------------------------------------------------------------------------


class ParquetReader:
    """Stream a Parquet file one row group at a time (memory stays flat).

    Parquet on stdin is spooled to a temporary file first (the format keeps its
    schema at the end), which is removed on close.
    """

    format = "parquet"

    def __init__(self, path: str, fh):
        self.path = path
        self.source = _display(path)
        self._spool = None
        if path == STDIN:
            # Kept past this block (pyarrow reopens it by name); removed in close().
            spool = tempfile.NamedTemporaryFile(prefix="bncli-stdin-", suffix=".parquet", delete=False)  # noqa: SIM115
            self._spool = spool.name
            files.track_temporary_file(self._spool)
            try:
                with spool:
                    shutil.copyfileobj(fh, spool, 1 << 20)
            except BaseException:
                os.unlink(self._spool)
                raise
            target = self._spool
        else:
            fh.close()
            target = path
        if os.path.isfile(target) and os.path.getsize(target) == 0:
            self.close()
            raise DataError(f"{self.source}: empty input (0 bytes, not a Parquet file)")
        try:
            import pyarrow.parquet as pq  # here: CSV runs start faster without it

            self._pf = pq.ParquetFile(target)
            schema = self._pf.schema_arrow
        except (pa.ArrowException, OSError, ValueError) as e:
            self.close()
            raise InputError(f"{self.source}: not a readable Parquet file ({_first_line(e)})") from None
        self.columns = list(schema.names)
        seen = set()
        for name in self.columns:
            if name in seen:
                self.close()
                raise DataError(f"{self.source}: duplicate column name {name!r}")
            seen.add(name)
        self.sample_types = {f.name: f.type for f in schema}
        self.total_bytes = _file_size(target)
        self.bytes_read = 0

    def close(self):
        if self._spool:
            try:
                os.unlink(self._spool)
            except OSError:
                pass
            files.track_temporary_file(self._spool, live=False)
            self._spool = None

    def chunks(
        self, features: list[str], only_features: bool = False, row_groups=None, first_row: int = 1
    ) -> Iterator[Chunk]:
        """Yield the data as chunks with ``features`` as float64, other columns as
        stored (or left out with ``only_features``), one row group at a time.

        ``row_groups`` (default: all) and the number of their first row let the
        Dask engine read its share of a file with the same checks.
        """
        row = first_row
        meta = self._pf.metadata
        columns = list(features) if only_features else None
        for rg in range(self._pf.num_row_groups) if row_groups is None else row_groups:
            expected, first = meta.row_group(rg).num_rows, row
            if not only_features:
                self._check_nested_size(rg)
            try:
                batches = self._pf.iter_batches(batch_size=65536, row_groups=[rg], columns=columns, use_threads=True)
                for batch in batches:
                    table = pa.Table.from_batches([batch])
                    for name in features:
                        i = table.schema.get_field_index(name)
                        col = table.column(i)
                        if col.type != pa.float64():
                            table = table.set_column(i, name, _to_float64(col, self.source, name))
                    if batch.num_rows:
                        yield Chunk(table, self.source, row)
                    row += batch.num_rows
            except (pa.ArrowException, OSError) as e:
                if isinstance(e, DataError):
                    raise
                raise InputError(
                    f"{self.source}: cannot read row group {rg + 1} of {self._pf.num_row_groups} "
                    f"(rows from {row}): {_first_line(e)}",
                    hint="the file is damaged or uses a feature pyarrow cannot read",
                ) from None
            if row - first < expected:
                # Seen with corrupt files: pyarrow yields fewer rows than the footer
                # promises, without an error.  Rows would silently go missing.
                raise InputError(
                    f"{self.source}: row group {rg + 1} of {self._pf.num_row_groups} holds {expected} rows "
                    f"but only {row - first} could be read",
                    hint="the file is damaged; rewrite it from its source",
                )
            # Progress in file bytes: the compressed size of the row groups read so far.
            group = meta.row_group(rg)
            self.bytes_read += sum(group.column(j).total_compressed_size for j in range(group.num_columns))

    def _check_nested_size(self, rg: int) -> None:
        """Refuse, before decoding, a nested column whose data in one row group exceed 2 GiB.

        pyarrow cannot return such a column (nested data cannot be split into
        chunks) and fails only after decoding it, which takes long and as much memory.
        """
        group = self._pf.metadata.row_group(rg)
        for i in range(group.num_columns):
            chunk = group.column(i)
            name = chunk.path_in_schema.split(".")[0]
            t = self.sample_types.get(name)
            if chunk.total_uncompressed_size >= 1 << 31 and t is not None and pa.types.is_nested(t):
                raise InputError(
                    f"{locate(self.source, None, name)}: row group {rg + 1} holds "
                    f"{chunk.total_uncompressed_size / (1 << 30):.1f} GiB of {t} data, more than pyarrow "
                    "can read as one nested column",
                    hint="rewrite the file with smaller row groups",
                )


def _to_float64(col: pa.ChunkedArray, source: str, name: str) -> pa.ChunkedArray:
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = t.value_type
    if not is_numeric_type(t):
        raise DataError(f"{locate(source, None, name)}: type {t} is not numeric", hint="drop it from --columns")
    try:
        return col.cast(pa.float64(), safe=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise DataError(f"{locate(source, None, name)}: cannot convert {t} to float64 ({_first_line(e)})") from None


def _first_line(e: Exception) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__
