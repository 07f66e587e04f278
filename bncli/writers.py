"""Table writers: CSV/TSV and Parquet to a binary stream.  No math here.

The CSV writer formats chunks on a small thread pool (pyarrow releases the
GIL while it formats numbers, the dominant cost) and writes them strictly in
order, so the bytes never depend on thread count or chunk size.  Text columns
are quoted only where they must be (a delimiter, quote or line break inside),
so pass-through text comes out as it went in.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import queue
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from . import arrays, files
from .errors import DataError, OutputError

if TYPE_CHECKING:
    import pyarrow.parquet as pq


def round_significant(y: np.ndarray, digits: int) -> np.ndarray:
    """Round to ``digits`` (1 to 15) significant decimal digits (NaN, 0 and inf unchanged).

    The result is the float64 nearest the rounded decimal, so its shortest repr
    (what the writer prints) has at most ``digits`` significant digits.  Up to
    15 digits the scaled value stays below 2**53, where rounding it is exact.
    """
    if not 1 <= digits <= 15:
        raise ValueError(f"digits must be 1 to 15, not {digits}")
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mag = np.floor(np.log10(np.abs(y)))
    exp = digits - 1 - np.where(np.isfinite(mag), mag, 0.0)
    # Multiply or divide by an exact power of ten (10**k is exact up to k = 22),
    # so that the quotient is the double nearest the rounded decimal.
    p = np.power(10.0, np.minimum(np.abs(exp), 22))
    with np.errstate(invalid="ignore", over="ignore"):
        out = np.where(exp >= 0, np.round(y * p) / p, np.round(y / p) * p)
    out = np.where(np.isfinite(out), out, y)
    rare = np.flatnonzero((np.abs(exp) > 22) & np.isfinite(y) & (y != 0))
    for i in rare:  # far from 1: let Python's correctly rounded formatting do it
        rounded = float(f"{y[i]:.{digits - 1}e}")
        out[i] = rounded if np.isfinite(rounded) else y[i]  # 1.5e308 -> 2e308 would overflow
    return out


def quote_field(text: str, delimiter: str) -> str:
    """RFC 4180 quoting, applied only when the text needs it."""
    if any(ch in text for ch in (delimiter, '"', "\n", "\r")):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_compatible(schema: pa.Schema) -> None:
    """Raise DataError naming the first column a CSV file cannot hold."""
    for f in schema:
        t = f.type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if (
            pa.types.is_nested(t)
            or pa.types.is_binary(t)
            or pa.types.is_large_binary(t)
            or pa.types.is_fixed_size_binary(t)
        ):
            raise DataError(
                f"column {f.name!r} has type {f.type}, which CSV output cannot hold",
                hint="write Parquet instead (e.g. -o out.parquet or --output-format parquet)",
            )


class CsvWriter:
    """Write Arrow tables as CSV text to ``stream`` (a binary file object)."""

    def __init__(
        self,
        stream,
        columns: list[str],
        delimiter: str = ",",
        precision: int | None = None,
        threads: int | None = None,
        round_columns=None,
    ):
        """``precision`` rounds the float64 columns named in ``round_columns`` (the
        normalized features; None: every float64 column) to that many significant digits."""
        self._stream = stream
        self._delimiter = delimiter
        self._precision = precision
        self._round = None if round_columns is None else frozenset(round_columns)
        self._options = pacsv.WriteOptions(include_header=False, delimiter=delimiter, quoting_style="none")
        threads = threads or min(2, os.cpu_count() or 1)
        self._pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="bncli-csv")
        self._pending: collections.deque = collections.deque()
        self._depth = threads + 1
        # Output buffers are reused: a fresh one per chunk would cost page faults
        # (and copies, if grown as it fills) comparable to formatting the text.
        self._spare: queue.SimpleQueue = queue.SimpleQueue()
        header = delimiter.join(quote_field(c, delimiter) for c in columns) + "\n"
        self._write(header.encode("utf-8"))

    def write(self, table: pa.Table) -> None:
        self._pending.append(self._pool.submit(self._encode, table))
        while len(self._pending) > self._depth:
            self._write_encoded(self._pending.popleft().result())

    def close(self) -> None:
        try:
            while self._pending:
                self._write_encoded(self._pending.popleft().result())
        finally:
            self.abort()

    def abort(self) -> None:
        for f in self._pending:
            f.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _write(self, data) -> None:
        files.write_in_pieces(self._stream, data)

    def _write_encoded(self, encoded) -> None:
        data, buffer = encoded
        self._write(data)
        if buffer is not None:
            self._spare.put(buffer)

    def _encode(self, table: pa.Table):
        """(text, reusable buffer holding it or None) for ``table``."""
        table = self._prepare(table)
        if table.num_columns == 1 and _has_empty(table.column(0)):
            # A lone empty value would make an empty line, which readers skip.
            return self._encode_quoted(table), None
        bound = csv_size_bound(table)
        buffer = None
        if bound is not None:
            try:
                buffer = self._spare.get_nowait()
            except queue.Empty:
                pass
            if buffer is None or buffer.size < bound:
                buffer = pa.allocate_buffer(max(bound, buffer.size if buffer else 0) * 5 // 4)
            sink = pa.FixedSizeBufferWriter(buffer)
        else:
            sink = pa.BufferOutputStream()
        try:
            pacsv.write_csv(table, sink, write_options=self._options)
        except (pa.ArrowInvalid, OSError) as e:
            if buffer is not None:
                self._spare.put(buffer)
            if isinstance(e, pa.ArrowInvalid):
                # Some text needs quotes; quote just those values.
                return self._encode_quoted(table), None
            # The buffer was too small after all (cannot happen): grow as it fills.
            sink, buffer = pa.BufferOutputStream(), None
            pacsv.write_csv(table, sink, write_options=self._options)
        if buffer is None:
            return sink.getvalue(), None
        return buffer.slice(0, sink.tell()), buffer

    def _prepare(self, table: pa.Table) -> pa.Table:
        cols = []
        for name, col in zip(table.column_names, table.columns, strict=True):
            if pa.types.is_dictionary(col.type):
                col = col.cast(col.type.value_type)
            if (
                self._precision is not None
                and col.type == pa.float64()
                and (self._round is None or name in self._round)
            ):
                parts = [round_significant(arrays.to_numpy(c), self._precision) for c in col.chunks]
                col = pa.chunked_array([arrays.to_arrow(p) for p in parts], type=pa.float64())
            cols.append(col)
        return pa.table(cols, names=table.column_names)

    def _encode_quoted(self, table: pa.Table):
        import pyarrow.compute as pc  # here, not at the top: it costs start-up time

        d = self._delimiter
        parts = []
        for col in table.columns:
            text = col.cast(pa.string()) if not pa.types.is_string(col.type) else col
            if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                pattern = "[" + "".join("\\" + ch if ch in "\\]^-[" else ch for ch in (d, '"', "\n", "\r")) + "]"
                needs = pc.match_substring_regex(text, pattern)
                quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
                text = pc.if_else(needs, quoted, text)
            parts.append(pc.fill_null(text, ""))
        if len(parts) == 1:
            parts[0] = pc.if_else(pc.equal(parts[0], ""), '""', parts[0])
        lines = pc.binary_join_element_wise(*parts, d) if len(parts) > 1 else parts[0]
        lines = pc.binary_join_element_wise(lines, "", "\n")  # each line + "\n"
        chunks = lines.chunks if isinstance(lines, pa.ChunkedArray) else [lines]
        return b"".join(_string_bytes(chunk) for chunk in chunks)


#: Longest text of one value, e.g. -0.0000014184329249383349 (float64 and float16,
#: which pyarrow prints as its float64 value), -0.0000011156094, false.
_WIDTHS = {pa.float64(): 25, pa.float32(): 16, pa.float16(): 25, pa.bool_(): 5}


def csv_size_bound(table: pa.Table) -> int | None:
    """An upper bound of the unquoted CSV text of ``table`` in bytes (None when
    a column's type has no simple bound, e.g. timestamps)."""
    n = table.num_rows
    total = n * table.num_columns  # a delimiter or line break after each value
    for col in table.columns:
        t = col.type
        if t in _WIDTHS:
            total += n * _WIDTHS[t]
        elif pa.types.is_integer(t):
            total += n * 20
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            total += sum(_string_data_size(c) for c in col.chunks)
        elif pa.types.is_null(t):
            pass
        else:
            return None
    return total


def _string_data_size(arr: pa.Array) -> int:
    offsets = arr.buffers()[1]
    if offsets is None or len(arr) == 0:
        return 0
    width = 8 if pa.types.is_large_string(arr.type) else 4
    off = np.frombuffer(
        offsets, dtype=np.int64 if width == 8 else np.int32, count=len(arr) + 1, offset=arr.offset * width
    )
    return int(off[-1] - off[0])


def _has_empty(col: pa.ChunkedArray) -> bool:
    """Whether some value of ``col`` prints as an empty field."""
    if col.null_count:
        return True
    import pyarrow.compute as pc

    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return pc.any(pc.equal(pc.utf8_length(col), 0)).as_py() or False
    return False


def _string_bytes(arr: pa.Array) -> bytes:
    """The concatenated values of a null-free string array, straight from its buffers."""
    _, offsets, data = arr.buffers()
    off = np.frombuffer(offsets, dtype=np.int32, count=len(arr) + 1, offset=arr.offset * 4)
    return memoryview(data)[off[0] : off[-1]] if len(arr) else b""


class ParquetWriter:
    """Write Arrow tables to Parquet in row groups of exactly ``row_group_rows`` rows.

    Tables arrive in pieces of any size from the stream; they are gathered and
    cut so that every row group but the last has ``row_group_rows`` rows: the
    file reads as fast as one written whole, and its bytes do not depend on how
    the stream was chunked.

    Each float column's encoding is chosen from the first row group: dictionary
    encoding where values repeat (at most one distinct value in 8 rows, e.g.
    normalized prices in cents or counts), which makes such a column several
    times smaller; plain elsewhere, where dictionary encoding would cost half the
    write time and make the file larger.  Other types keep pyarrow's default
    (dictionary).
    """

    def __init__(self, stream, schema: pa.Schema, row_group_rows: int = 1 << 17):
        if row_group_rows < 1:
            raise ValueError(f"row_group_rows must be at least 1, not {row_group_rows}")
        self._stream = stream
        self._schema = schema
        self._row_group_rows = row_group_rows
        self._writer: pq.ParquetWriter | None = None
        self._held: list[pa.Table] = []
        self._held_rows = 0

    def write(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        self._held.append(table.cast(self._schema) if table.schema != self._schema else table)
        self._held_rows += table.num_rows
        while self._held_rows >= self._row_group_rows:
            held = pa.concat_tables(self._held)
            self._write_group(held.slice(0, self._row_group_rows))
            rest = held.slice(self._row_group_rows)
            self._held, self._held_rows = ([rest] if rest.num_rows else []), rest.num_rows

    def _write_group(self, table: pa.Table) -> None:
        if self._writer is None:
            self._start(table)
        self._writer.write_table(table, row_group_size=max(table.num_rows, 1))

    def _start(self, first: pa.Table) -> None:
        import pyarrow.parquet as pq  # here: CSV runs start faster without it

        dictionary = [f.name for f in self._schema if not pa.types.is_floating(f.type) or _repeats(first[f.name])]
        try:
            self._writer = pq.ParquetWriter(
                self._stream, self._schema, use_dictionary=dictionary or False, compression="snappy"
            )
        except (pa.ArrowException, OSError) as e:
            raise OutputError(f"cannot start Parquet output: {e}") from None

    def close(self) -> None:
        if self._held:
            self._write_group(pa.concat_tables(self._held))
            self._held, self._held_rows = [], 0
        if self._writer is None:
            self._start(self._schema.empty_table())
        self._writer.close()

    def abort(self) -> None:
        self._held, self._held_rows = [], 0
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:
                pass


def _repeats(column: pa.ChunkedArray) -> bool:
    """Whether a column holds at most one distinct value per 8 non-missing values."""
    import pyarrow.compute as pc

    n = len(column) - column.null_count
    return n > 0 and pc.count_distinct(column).as_py() * 8 <= n


class NullWriter:
    """``-o /dev/null``: writes nothing, so fit computes statistics only."""

    def write(self, table) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass
