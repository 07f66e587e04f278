"""The CSV reader cuts its input into runs of whole records itself (quote parity).

The fast path (one regular-expression pass that proves the quoting plain: RFC
4180, no line break inside quotes) must cut where the general path cuts and
be taken for what CSV writers write, and the
records must come out the same whatever the chunk size: checked against
pyarrow reading the whole document at once, and against Python's csv module.
"""

from __future__ import annotations

import csv
import io

import pyarrow as pa
import pyarrow.csv as pacsv
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bncli import readers

DELIMITERS = [b",", b";", b"\t"]
texts = st.text(alphabet=st.sampled_from(list('ab ,;\t"\n\r')), max_size=8)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(DELIMITERS), st.lists(st.sampled_from([b"a", b"1", b'"', b"\n", b"\r", b"X"]), max_size=40))
def test_plain_fast_path_agrees_with_the_general_rules(delimiter, parts):
    buf = b"".join(delimiter if p == b"X" else p for p in parts)
    rules = readers._quote_rules(delimiter)
    plain = rules.plain.match(buf).end() == len(buf)
    literal = readers._literal_quotes(buf, rules)
    if plain:  # then the general rules find nothing special, and cut in the same place
        assert literal == [] and not readers._line_break_in_quotes(buf, literal), buf
        assert readers._last_line_break(buf, 0, len(buf)) + 1 == readers._record_boundary(buf, literal)


@given(st.lists(st.tuples(st.integers(), texts.filter(lambda t: "\n" not in t and "\r" not in t)), max_size=30))
def test_what_csv_writers_write_takes_the_fast_path(rows):
    buf = io.StringIO(newline="")
    csv.writer(buf, quoting=csv.QUOTE_ALL).writerows(rows)
    data = buf.getvalue().encode()
    assert readers._quote_rules(b",").plain.match(data).end() == len(data)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from([",", ";", "\t"]),
    st.sampled_from(["\n", "\r\n"]),
    st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
    st.lists(st.tuples(st.integers(-999, 999), texts), min_size=1, max_size=60),
    st.sampled_from([16, 50, 333, 1 << 20]),
)
def test_records_do_not_depend_on_the_chunk_size(tmp_path_factory, delimiter, newline, quoting, rows, chunk_bytes):
    # Python's csv module quotes a lone CR only when the line terminator holds one.
    assume(quoting != csv.QUOTE_MINIMAL or newline == "\r\n" or not any("\r" in t for _, t in rows))
    buf = io.StringIO(newline="")
    w = csv.writer(buf, delimiter=delimiter, lineterminator=newline, quoting=quoting)
    w.writerow(["x", "t"])
    w.writerows(rows)
    data = buf.getvalue().encode()
    src = tmp_path_factory.mktemp("cut") / "doc.csv"
    src.write_bytes(data)

    reader = readers.open_reader(str(src), dialect=readers.CsvDialect(delimiter), chunk_bytes=chunk_bytes)
    try:
        tables = [c.table for c in reader.chunks(["x"])]
    finally:
        reader.close()
    got = pa.concat_tables(tables) if tables else None

    expected = list(csv.reader(io.StringIO(data.decode(), newline=""), delimiter=delimiter))[1:]
    expected = [r for r in expected if r]  # blank lines are skipped
    whole = pacsv.read_csv(
        pa.py_buffer(data),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={"x": pa.float64(), "t": pa.string()}, strings_can_be_null=False
        ),
    )
    assert got.num_rows == whole.num_rows == len(expected)
    assert got.column("x").to_pylist() == whole.column("x").to_pylist() == [float(r[0]) for r in expected]
    assert got.column("t").to_pylist() == whole.column("t").to_pylist()
