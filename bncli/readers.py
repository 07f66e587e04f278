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

import codecs
import csv
import io
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from typing import Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from . import formats
from .errors import DataError, InputError, locate

#: Tokens read as missing in feature columns (pandas' and pyarrow's defaults).
DEFAULT_NULL_VALUES = (
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
    "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
)  # fmt: skip

CHUNK_BYTES = 4 << 20
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


class _Transcoder(io.RawIOBase):
    """Decode a byte stream from ``encoding`` and re-encode it as UTF-8, incrementally."""

    def __init__(self, raw, encoding: str, source: str):
        self._raw = raw
        self._dec = codecs.getincrementaldecoder(encoding)(errors="strict")
        self._source = source
        self._offset = 0

    def readable(self):
        return True

    def read(self, n=-1):
        data = self._raw.read(n if n and n > 0 else CHUNK_BYTES)
        try:
            text = self._dec.decode(data, final=not data)
        except UnicodeDecodeError as e:
            raise DataError(
                f"{self._source}: cannot decode byte {self._offset + e.start} as {self._dec.__class__.__module__.split('.')[-1]}",
                hint="check the file's encoding and pass it with --encoding",
            ) from None
        self._offset += len(data)
        return text.encode("utf-8")


def _display(path: str) -> str:
    return "<stdin>" if path == STDIN else path


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

    For stdin the first bytes are sniffed and put back in front of the stream.
    """
    ext_fmt, compression = formats.from_path(path) if path != STDIN else (None, None)
    if path == STDIN or (ext_fmt is None and compression is None):
        head = fh.read(4)
        fh = _Prefixed(head, fh)
        sniffed, sniffed_comp = formats.sniff(head)
        compression = compression or sniffed_comp
        ext_fmt = ext_fmt or (sniffed if not sniffed_comp else None)
    return fmt or ext_fmt or "csv", compression, fh


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

    def _next_raw(self) -> bytes | None:
        """The next run of whole records (None at the end)."""
        while True:
            buf = self._pending
            if not self._eof and len(buf) < self.chunk_bytes:
                self._read_more(self.chunk_bytes)
                continue
            if self._eof:
                self._pending = b""
                if buf and buf.count(b'"') % 2:
                    self._unterminated_quote(buf)
                return buf or None
            cut = _record_boundary(buf, self._newline)
            if cut > 0:
                self._pending = buf[cut:]
                return buf[:cut]
            # One record longer than a chunk: read on until it ends.
            self._read_more(max(self.chunk_bytes, len(buf)))

    # -- header ----------------------------------------------------------------------
    def _read_header(self):
        while not self._eof and len(self._pending) < 65536:
            self._read_more(65536)
        if self._pending.startswith(codecs.BOM_UTF8):
            self._pending = self._pending[len(codecs.BOM_UTF8):]
        # Blank lines before the header are skipped, as pyarrow skips blank lines.
        self._pending = self._pending.lstrip(b"\r\n")
        while not self._pending and not self._eof:
            self._read_more(65536)
            self._pending = self._pending.lstrip(b"\r\n")
        if not self._pending:
            raise DataError(f"{self.source}: empty input (no header row)")
        self._newline = b"\n" if b"\n" in self._pending else b"\r"
        while True:
            end = _first_record_end(self._pending, self._newline)
            if end >= 0 or self._eof:
                break
            self._read_more(self.chunk_bytes)
            self._newline = b"\n" if b"\n" in self._pending else b"\r"
        if end < 0:
            if self._pending.count(b'"') % 2:
                self._unterminated_quote(self._pending, header=True)
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

    def _infer_types(self, raw: bytes | None) -> dict[str, pa.DataType]:
        if not raw:
            return {c: pa.null() for c in self.columns}
        try:
            t = self._parse(raw, None)
        except pa.ArrowInvalid as e:
            self._raise_parse_error(raw, 1, e)
        return {name: t.schema.field(i).type for i, name in enumerate(self.columns)}

    # -- parsing ------------------------------------------------------------------------
    def _parse(self, raw: bytes, column_types: dict | None) -> pa.Table:
        quoted = b'"' in raw
        return pacsv.read_csv(
            pa.py_buffer(raw),
            read_options=pacsv.ReadOptions(column_names=self.columns, use_threads=True, block_size=1 << 20),
            parse_options=pacsv.ParseOptions(delimiter=self.dialect.delimiter, newlines_in_values=quoted),
            convert_options=pacsv.ConvertOptions(
                column_types=column_types,
                null_values=list(self.dialect.null_values),
                strings_can_be_null=column_types is None,
                quoted_strings_can_be_null=True,
                check_utf8=True,
            ),
        )

    def chunks(self, features: list[str]) -> Iterator[Chunk]:
        """Yield the data as chunks with ``features`` as float64, other columns as strings."""
        fset = set(features)
        types = {c: (pa.float64() if c in fset else pa.string()) for c in self.columns}
        row = 1
        raw = self._first_raw
        self._first_raw = None
        while raw is not None:
            try:
                table = self._parse(raw, types)
            except pa.ArrowInvalid as e:
                self._raise_parse_error(raw, row, e, types)
            if table.num_rows:
                yield Chunk(table, self.source, row)
            row += table.num_rows
            raw = self._next_raw()

    # -- errors ---------------------------------------------------------------------
    def _unterminated_quote(self, buf: bytes, header: bool = False):
        where = "in the header" if header else "in the last record"
        opened = _excerpt(buf[buf.rfind(b'"') :])
        raise DataError(
            f"{self.source}: unterminated quoted field {where}: the quote before {opened} is never closed",
            hint="the file may be truncated, or contain a stray quote character",
        )

    def _raise_parse_error(self, raw: bytes, first_row: int, exc: Exception, types=None):
        msg = str(exc)
        m = re.search(r"CSV column #(\d+): CSV conversion error to (\w+): invalid value '(.*)'$", msg, re.S)
        if m:
            col = self.columns[int(m.group(1))]
            value = m.group(3)
            row = self._find_bad_value(raw, col, m.group(2))
            hint = f"pass this column through unchanged with --exclude {col!r}" if m.group(2) == "double" else None
            raise DataError(
                f"{locate(self.source, None if row is None else first_row + row, col)}: "
                f"{_short(value)!r} is not a number",
                hint=hint,
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

    def _string_column(self, raw: bytes, col: str, type_=pa.string()) -> pa.Array | None:
        types = {c: (type_ if c == col else pa.binary()) for c in self.columns}
        try:
            t = pacsv.read_csv(
                pa.py_buffer(raw),
                read_options=pacsv.ReadOptions(column_names=self.columns, use_threads=False),
                parse_options=pacsv.ParseOptions(delimiter=self.dialect.delimiter, newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    column_types=types, null_values=list(self.dialect.null_values), strings_can_be_null=True
                ),
            )
        except pa.ArrowInvalid:
            return None
        return t.column(col).combine_chunks()

    def _find_bad_value(self, raw: bytes, col: str, target: str) -> int | None:
        """0-based row in ``raw`` of the first value of ``col`` that does not convert."""
        arr = self._string_column(raw, col)
        if arr is None:
            return None
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


def _record_boundary(buf: bytes, newline: bytes) -> int:
    """Offset just past the last newline of ``buf`` that lies outside quotes (0 if none).

    ``buf`` starts outside quotes.  Quote parity decides: with RFC 4180 quoting,
    an escaped quote is doubled, so a newline is a record boundary exactly when
    an even number of quote characters precede it.
    """
    p = buf.rfind(newline)
    if p < 0:
        return 0
    if b'"' not in buf:
        return p + 1
    odd = buf.count(b'"', 0, p) & 1
    while odd:
        q = buf.rfind(newline, 0, p)
        if q < 0:
            return 0
        odd ^= buf.count(b'"', q, p) & 1
        p = q
    return p + 1


def _first_record_end(buf: bytes, newline: bytes) -> int:
    """Offset just past the first newline outside quotes (-1 if none yet)."""
    start = 0
    odd = 0
    while True:
        p = buf.find(newline, start)
        if p < 0:
            return -1
        odd ^= buf.count(b'"', start, p) & 1
        if not odd:
            return p + 1
        start = p + 1


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
            spool = tempfile.NamedTemporaryFile(prefix="bncli-stdin-", suffix=".parquet", delete=False)
            self._spool = spool.name
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
        try:
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
            self._spool = None

    def chunks(self, features: list[str]) -> Iterator[Chunk]:
        fset = set(features)
        row = 1
        meta = self._pf.metadata
        for rg in range(self._pf.num_row_groups):
            try:
                batches = self._pf.iter_batches(batch_size=65536, row_groups=[rg], use_threads=True)
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
                    f"(rows from {row}): {_first_line(e)}"
                ) from None
            self.bytes_read = sum(meta.row_group(i).total_byte_size for i in range(rg + 1))
        del fset


def _to_float64(col: pa.ChunkedArray, source: str, name: str) -> pa.ChunkedArray:
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = t.value_type
    if not is_numeric_type(t):
        raise DataError(f"{locate(source, None, name)}: type {t} is not numeric", hint=f"drop it from --columns")
    try:
        return col.cast(pa.float64(), safe=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise DataError(f"{locate(source, None, name)}: cannot convert {t} to float64 ({_first_line(e)})") from None


def _first_line(e: Exception) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__
