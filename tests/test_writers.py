"""The CSV writer: exact float text, minimal quoting, output independent of chunking and threads."""

from __future__ import annotations

import datetime
import io

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bncli import arrays, writers


def encode(table: pa.Table, *, chunk_rows: int, threads: int, delimiter=",", precision=None) -> bytes:
    sink = io.BytesIO()
    w = writers.CsvWriter(sink, table.column_names, delimiter, precision, threads=threads)
    for start in range(0, table.num_rows, chunk_rows):
        w.write(table.slice(start, chunk_rows))
    w.close()
    return sink.getvalue()


def mixed_table(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n) * 10.0 ** rng.integers(-8, 9, size=n)
    y[::7] = np.nan
    text = [["plain", "a,b", 'say "hi"', "two\nlines", "", "  pad  ", "ünï"][i % 7] for i in range(n)]
    when = [datetime.datetime(2024, 1, 1) + datetime.timedelta(seconds=37 * i) for i in range(n)]
    return pa.table({"y": arrays.to_arrow(y), "text": text, "when": when, "k": list(range(n))})


@pytest.mark.parametrize("chunk_rows,threads", [(1000, 1), (1, 2), (3, 2), (64, 4)])
def test_bytes_do_not_depend_on_chunks_or_threads(chunk_rows, threads):
    table = mixed_table(400)
    assert encode(table, chunk_rows=chunk_rows, threads=threads) == encode(table, chunk_rows=400, threads=1)


def test_quoting_only_where_needed_and_values_round_trip():
    table = mixed_table(70)
    out = encode(table, chunk_rows=10, threads=2)
    back = pacsv.read_csv(
        io.BytesIO(out),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(column_types={"text": pa.string()}, strings_can_be_null=False),
    )
    assert back.column("text").to_pylist() == table.column("text").to_pylist()
    y, y_back = table.column("y").to_pylist(), back.column("y").to_pylist()
    assert y_back == y  # shortest round-trip text: every float reads back bit-identical
    lines = out.decode().split("\n")
    assert lines[0] == "y,text,when,k"
    assert ",plain," in lines[1] and ',"a,b",' in lines[2] and ',"say ""hi""",' in lines[3]
    assert ",  pad  ," in out.decode()


def test_header_is_quoted_only_where_needed():
    table = pa.table({"a,b": [1.0], "plain": [2.0], 'q"': [3.0]})
    assert encode(table, chunk_rows=1, threads=1).decode().splitlines()[0] == '"a,b",plain,"q"""'


def test_tab_delimiter():
    table = pa.table({"x": [1.5], "t": ["a\tb"], "u": ["a,b"]})
    assert encode(table, chunk_rows=1, threads=1, delimiter="\t").decode() == 'x\tt\tu\n1.5\t"a\tb"\ta,b\n'


@settings(max_examples=200, deadline=None)
@given(
    # Beyond 1e307, rounding up may not be representable (2e308 overflows): kept as is.
    value=st.floats(min_value=-1e307, max_value=1e307) | st.floats(min_value=-10, max_value=10),
    digits=st.integers(1, 15),
)
def test_round_significant(value, digits):
    got = float(writers.round_significant(np.array([value]), digits)[0])
    if value == 0:
        assert got == 0
        return
    exponent = int(np.floor(np.log10(abs(value))))
    unit = 10.0 ** (exponent - digits + 1)  # one unit in the last kept digit
    # Within half a unit of the value (a near-tie may go either way) ...
    assert abs(got - value) <= 0.5 * unit * (1 + 1e-9) + 2 * abs(np.spacing(value)), (value, digits, got)
    # ... and printed with at most `digits` significant digits.
    mantissa = repr(abs(got)).split("e")[0].replace(".", "").strip("0")
    assert len(mantissa) <= digits, (value, digits, got)


def test_precision_option_in_output():
    table = pa.table({"y": arrays.to_arrow(np.array([1.23456789, -0.000123456789, 98765.4321, np.nan]))})
    # A lone missing value is written as "" (an empty line would be skipped by readers).
    assert encode(table, chunk_rows=2, threads=2, precision=3).decode() == 'y\n1.23\n-0.000123\n98800\n""\n'


finite_doubles = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.none(), finite_doubles), min_size=1, max_size=40),
    st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=1, max_size=40),
    st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=40),
    st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=40),
    st.lists(st.one_of(st.none(), st.booleans()), min_size=1, max_size=40),
    st.lists(st.text(alphabet="abé😀 ", max_size=6), min_size=1, max_size=40),
)
def test_csv_size_bound_is_an_upper_bound(f64, f32, i64, u64, flags, texts):
    n = min(map(len, (f64, f32, i64, u64, flags, texts)))
    table = pa.table({
        "f64": pa.array(f64[:n], pa.float64()),
        "f32": pa.array(f32[:n], pa.float32()),
        "i64": pa.array(i64[:n], pa.int64()),
        "u64": pa.array(u64[:n], pa.uint64()),
        "flag": pa.array(flags[:n], pa.bool_()),
        "text": pa.array(texts[:n], pa.string()),
        "none": pa.nulls(n),
    })  # fmt: skip
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    assert len(sink.getvalue()) <= writers.csv_size_bound(table)
    assert writers.csv_size_bound(pa.table({"t": [datetime.datetime(2024, 1, 1)]})) is None


def _csv_text_size(table: pa.Table) -> int:
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    return len(sink.getvalue())


@pytest.mark.parametrize(
    "array",
    [
        pa.array([-0.0000014184329249383349], pa.float64()),
        pa.array([-0.0000011156094], pa.float32()),
        pa.array(np.array([-0.0000017881393432617188], dtype=np.float16), pa.float16()),
        pa.array([-(2**63)], pa.int64()),
        pa.array([2**64 - 1], pa.uint64()),
        pa.array([False], pa.bool_()),
    ],
    ids=lambda a: str(a.type),
)
def test_csv_size_bound_is_reached_by_the_widest_value_of_each_type(array):
    """Each type on its own, so that no other column's slack can hide an undercount."""
    table = pa.table({"x": array})
    assert _csv_text_size(table) == writers.csv_size_bound(table)


def test_csv_size_bound_of_sliced_large_and_chunked_strings():
    words = ["", "é", "😀x", "plain text", "a b"] * 7
    for col in (
        pa.array(words, pa.string()).slice(3, 20),
        pa.array(words, pa.large_string()).slice(5, 11),
        pa.chunked_array([pa.array(words[:9]), pa.array(words[9:]).slice(2)]),
    ):
        table = pa.table({"s": col})
        assert _csv_text_size(table) == writers.csv_size_bound(table)  # text plus one line break per row


def test_precision_rounds_only_the_normalized_columns():
    table = pa.table({
        "y": arrays.to_arrow(np.array([1.23456789, -2.5e-7])),
        "kept": arrays.to_arrow(np.array([1.23456789, 98765.4321])),
        "kept32": pa.array([1.2345678, 2.5], pa.float32()),
    })  # fmt: skip
    sink = io.BytesIO()
    w = writers.CsvWriter(sink, table.column_names, precision=3, round_columns=["y"])
    w.write(table)
    w.close()
    assert sink.getvalue().decode() == "y,kept,kept32\n1.23,1.23456789,1.2345678\n-2.5e-7,98765.4321,2.5\n"


def test_reused_output_buffers_give_pyarrows_bytes():
    """Chunks of growing and shrinking size go through reused buffers (grown when
    too small); the bytes are pyarrow's own text for each chunk, in order."""
    rng = np.random.default_rng(3)
    n = 20000
    table = pa.table({"y": arrays.to_arrow(rng.normal(size=n) * 1e3), "k": rng.integers(-(10**9), 10**9, size=n),
                      "s": pa.array([f"w{i % 97}" for i in range(n)])})  # fmt: skip
    sizes = [10, 5000, 200, 9000, 1, 3000, 2788, 1]
    assert sum(sizes) == n
    sink = io.BytesIO()
    w = writers.CsvWriter(sink, table.column_names, threads=2)
    start, expected = 0, [b"y,k,s\n"]
    for size in sizes:
        part = table.slice(start, size)
        w.write(part)
        out = pa.BufferOutputStream()
        pacsv.write_csv(part, out, pacsv.WriteOptions(include_header=False, quoting_style="none"))
        expected.append(out.getvalue().to_pybytes())
        start += size
    w.close()
    assert sink.getvalue() == b"".join(expected)


def test_large_writes_reach_the_file_in_pieces(tmp_path):
    """Outputs go to the OS in writes of at most files.WRITE_PIECE bytes (large
    single writes are slow in Linux's page cache), with every byte in order."""
    from bncli import files

    class Recorder(io.BytesIO):
        sizes: list[int] = []

        def write(self, data):
            self.sizes.append(len(memoryview(data)))
            return super().write(data)

    rng = np.random.default_rng(1)
    payload = rng.integers(0, 256, size=3 * files.WRITE_PIECE + 12345, dtype=np.uint8).tobytes()
    for data in (payload, pa.py_buffer(payload), memoryview(payload), b"", b"tiny"):
        sink = Recorder()
        Recorder.sizes = []
        assert files.write_in_pieces(sink, data) == len(memoryview(data))
        assert sink.getvalue() == bytes(data)
        assert max(Recorder.sizes, default=0) <= files.WRITE_PIECE
    out = tmp_path / "o.bin"
    f = files.AtomicFile(str(out))
    f.write(pa.py_buffer(payload))
    f.commit()
    assert out.read_bytes() == payload


def _parquet_bytes(table: pa.Table, piece_rows: list[int], row_group_rows: int) -> bytes:
    sink = io.BytesIO()
    w = writers.ParquetWriter(sink, table.schema, row_group_rows=row_group_rows)
    start = 0
    for n in piece_rows:
        w.write(table.slice(start, n))
        start += n
    w.close()
    return sink.getvalue()


def test_parquet_row_groups_and_bytes_do_not_depend_on_chunking():
    rng = np.random.default_rng(5)
    n = 10_000
    table = pa.table({
        "distinct": arrays.to_arrow(rng.normal(size=n)),
        "cents": arrays.to_arrow(rng.integers(0, 500, size=n) / 100),  # repeats: 500 values
        "k": pa.array(rng.integers(0, 9, size=n)),
        "s": pa.array([f"c{i % 7}" for i in range(n)]),
    })  # fmt: skip
    one = _parquet_bytes(table, [n], 4096)
    assert _parquet_bytes(table, [1, 4095, 3000, 2903, 1], 4096) == one
    assert _parquet_bytes(table, [333] * 30 + [10], 4096) == one
    assert _parquet_bytes(table, [4096, 0, 0, 5904], 4096) == one  # empty pieces add no row group
    f = pq.ParquetFile(io.BytesIO(one))
    assert [f.metadata.row_group(i).num_rows for i in range(f.num_row_groups)] == [4096, 4096, 1808]
    assert f.read().equals(table)
    encodings = {f.schema_arrow.names[i]: f.metadata.row_group(0).column(i).encodings for i in range(4)}
    assert not any("DICTIONARY" in e for e in encodings["distinct"])
    assert any("DICTIONARY" in e for e in encodings["cents"])
    assert any("DICTIONARY" in e for e in encodings["s"])


def test_parquet_with_no_rows_still_has_the_schema():
    schema = pa.schema([("y", pa.float64()), ("s", pa.string())])
    sink = io.BytesIO()
    w = writers.ParquetWriter(sink, schema)
    w.close()
    back = pq.read_table(io.BytesIO(sink.getvalue()))
    assert back.schema == schema and back.num_rows == 0
