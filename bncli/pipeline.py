"""``fit`` and ``transform``: readers -> math -> writers, streaming.

This is the library entry point (the CLI is a thin layer over it).  Rows flow
in chunks; mini-batches are consecutive rows in input order, also across
chunk and file boundaries; memory is bounded by the chunk and batch size.
"""

from __future__ import annotations

import datetime
import io
import os
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from . import __version__, arrays, files, norm, readers, sources, writers
from .errors import DataError, UsageError, locate
from .readers import CsvDialect
from .report import Reporter
from .stats import Params, Stats
from .training import Trainer

#: fit hands rows to the math in groups of whole batches of about this many rows.
GROUP_ROWS = 1 << 14
#: transform processes at most this many rows at a time by default.
TRANSFORM_BATCH_ROWS = 65536


@dataclass
class IOOptions:
    """How inputs are read and outputs written (formats are None = detect)."""

    input_format: str | None = None
    output_format: str | None = None
    delimiter: str | None = None
    encoding: str = "utf-8"
    null_values: tuple[str, ...] = ()
    precision: int | None = None
    inf: str = "error"  # or "missing"
    chunk_bytes: int = readers.CHUNK_BYTES


@dataclass
class RunSummary:
    rows: int = 0
    batches: int = 0
    features: list[str] = field(default_factory=list)
    passthrough: list[str] = field(default_factory=list)
    seconds: float = 0.0
    inputs: list[dict] = field(default_factory=list)

    def line(self, verb: str) -> str:
        rate = self.rows / self.seconds if self.seconds > 0 else float("inf")
        batches = f"{self.batches:,} batches, " if self.batches else ""
        return (
            f"{verb} {self.rows:,} rows, {batches}{len(self.features)} features, "
            f"{len(self.passthrough)} pass-through columns in {self.seconds:.2f} s ({rate:,.0f} rows/s)"
        )


# -- shared plumbing ----------------------------------------------------------------


class _Inputs:
    """Several inputs read as one stream, in the documented order (see
    :mod:`bncli.sources`); opened one at a time.  Hive partition values are
    appended as pass-through string columns."""

    def __init__(self, paths: list[str], io: IOOptions):
        self.files = sources.expand(list(paths))
        self.paths = [f.path for f in self.files]
        self.io = io
        self.dialect = CsvDialect(
            delimiter=io.delimiter or ",",
            encoding=io.encoding,
            null_values=readers.DEFAULT_NULL_VALUES + tuple(io.null_values),
        )
        self.first = self._open(self.paths[0])
        self.partition_keys = list(self.files[0].partition)
        clash = [k for k in self.partition_keys if k in self.first.columns]
        if clash:
            raise DataError(f"{self.first.source}: partition key(s) {clash} are also column names in the file")
        self.columns = self.first.columns + self.partition_keys
        self.sample_types = dict(self.first.sample_types, **{k: pa.string() for k in self.partition_keys})
        self.format = self.first.format
        self.rows_by_input: list[dict] = []
        self.current = self.first

    def _open(self, path):
        return readers.open_reader(path, self.io.input_format, self.dialect, self.io.chunk_bytes)

    @property
    def total_bytes(self) -> int | None:
        sizes = [readers._file_size(p) for p in self.paths]
        return None if None in sizes else sum(sizes)

    @property
    def bytes_read(self) -> int:
        done = sum(d["bytes"] or 0 for d in self.rows_by_input)
        return done + (self.current.bytes_read or 0)

    def chunks(self, features: list[str], only: int | None = None, only_features: bool = False):
        """Chunks of every input in order (or of input number ``only``); with
        ``only_features`` the chunks hold the feature columns alone."""
        for i, item in enumerate(self.files):
            if only is not None and i != only:
                continue
            reader = self.first if i == 0 else self._open(item.path)
            self.current = reader
            try:
                if i:
                    self._check_same_columns(reader, features)
                rows = 0
                for chunk in reader.chunks(features, only_features):
                    rows += chunk.table.num_rows
                    for key, value in item.partition.items() if not only_features else ():
                        chunk.table = chunk.table.append_column(key, arrays.repeat_string(value, chunk.table.num_rows))
                    yield chunk
                self.rows_by_input.append(
                    {
                        "path": reader.source,
                        "format": reader.format,
                        "rows": rows,
                        "bytes": readers._file_size(item.path),
                    }
                )
            finally:
                reader.close()

    def close(self):
        self.first.close()
        if self.current is not self.first:
            self.current.close()

    def _check_same_columns(self, reader, features):
        missing = [c for c in features if c not in reader.columns]
        if missing:
            raise DataError(
                f"{reader.source}: missing feature column(s) {', '.join(map(repr, missing))} "
                f"found in {self.first.source}",
                hint="all inputs must have the same feature columns",
            )
        if reader.columns != self.first.columns:
            raise DataError(
                f"{reader.source}: columns differ from {self.first.source} "
                f"({_list(reader.columns)} vs {_list(self.first.columns)})",
                hint="all inputs must have the same columns in the same order",
            )
        if reader.format == "parquet":
            changed = [c for c in reader.columns if reader.sample_types[c] != self.first.sample_types[c]
                       and c not in features]  # fmt: skip
            if changed:
                c = changed[0]
                raise DataError(
                    f"{reader.source}: column {c!r} has type {reader.sample_types[c]}, "
                    f"but {self.first.sample_types[c]} in {self.first.source}",
                    hint="all inputs must have the same column types",
                )


def _list(names, limit=8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _is_numeric(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return readers.is_numeric_type(t)


def select_features(columns, types, include, exclude, source) -> list[str]:
    """The feature columns, in input order: ``include`` if given, else every
    numeric column; minus ``exclude``.  Unknown or non-numeric names are errors."""
    for option, names in (("--columns", include), ("--exclude", exclude)):
        unknown = [c for c in names or () if c not in columns]
        if unknown:
            raise DataError(
                f"{source}: {option} names column(s) not in the input: {', '.join(map(repr, unknown))}",
                hint=f"the columns are: {_list(columns, 20)}",
            )
    if include:
        bad = [c for c in include if not _is_numeric(types[c])]
        if bad:
            kinds = ", ".join(f"{c!r} ({types[c]})" for c in bad)
            raise DataError(
                f"{source}: --columns names non-numeric column(s): {kinds}",
                hint="only numeric columns can be normalized",
            )
        wanted = set(include)
        features = [c for c in columns if c in wanted]
    else:
        features = [c for c in columns if _is_numeric(types[c])]
    features = [c for c in features if c not in set(exclude or ())]
    if not features:
        raise DataError(
            f"{source}: no numeric columns to normalize",
            hint="name them with --columns (columns seen: " + _list(columns, 20) + ")",
        )
    return features


def _features_array(chunk: readers.Chunk, features: list[str], inf_policy: str) -> np.ndarray:
    """The chunk's feature columns as one (features, rows) float64 array, nulls as NaN."""
    t = chunk.table
    x = np.empty((len(features), t.num_rows))
    for i, name in enumerate(features):
        start = 0
        for part in t.column(name).chunks:
            x[i, start : start + len(part)] = arrays.to_numpy(part)  # nulls -> NaN
            start += len(part)
    inf = np.isinf(x)
    if inf.any():
        if inf_policy == "missing":
            x[inf] = np.nan
        else:
            f, r = np.argwhere(inf)[np.argmin(np.argwhere(inf)[:, 1])]
            raise DataError(
                f"{locate(chunk.source, chunk.first_row + int(r), features[f])}: infinite value ({x[f, r]})",
                hint="use --inf missing to treat infinities as missing values",
            )
    return x


def _with_features(table: pa.Table, features: list[str], y: np.ndarray | None) -> pa.Table:
    """``table`` with its feature columns replaced by the rows of ``y`` (NaN -> null)."""
    if y is None:
        return table
    for i, name in enumerate(features):
        table = table.set_column(table.schema.get_field_index(name), name, arrays.to_arrow(y[i]))
    return table


def _output_plan(output: str, io: IOOptions, input_format: str):
    """(format, delimiter) of the output: explicit, else -o extension, else the input's."""
    fmt = io.output_format
    if fmt is None and output not in (files.STDOUT,) and not files.is_null_device(output):
        fmt = readers.formats.from_path(output)[0]
    fmt = fmt or input_format
    if fmt == "parquet":
        return fmt, None
    if fmt == input_format and io.delimiter:
        return fmt, io.delimiter
    return fmt, readers.formats.DELIMITERS[fmt]


def _output_compression(output: str) -> str | None:
    if output == files.STDOUT or files.is_null_device(output):
        return None
    return readers.formats.from_path(output)[1]


class _Output:
    """The data output: sink (atomic file or stdout) plus a format writer."""

    def __init__(
        self, output: str, fmt: str, delimiter: str | None, schema: pa.Schema, io: IOOptions, features: list[str]
    ):
        self.sink = None
        self._compressed = None
        if files.is_null_device(output):
            self.writer = writers.NullWriter()
            return
        if output == files.STDOUT:
            if fmt == "parquet" and _isatty(sys.stdout):
                raise UsageError(
                    "refusing to write Parquet to a terminal",
                    hint="use -o FILE.parquet, redirect stdout, or --output-format csv",
                )
            self.sink = files.StdoutFile()
        else:
            self.sink = files.AtomicFile(output)
        target = self.sink
        compression = _output_compression(output)
        if compression and fmt != "parquet":
            raw = pa.PythonFile(_KeepOpen(self.sink.file), mode="w")
            self._compressed = pa.CompressedOutputStream(raw, compression)
            target = self._compressed
        try:
            if fmt == "parquet":
                self.writer = writers.ParquetWriter(self.sink.file, schema)
            else:
                writers.csv_compatible(schema)
                self.writer = writers.CsvWriter(target, schema.names, delimiter, io.precision, round_columns=features)
        except BaseException:
            self.sink.discard()
            raise

    def write(self, table: pa.Table) -> None:
        try:
            self.writer.write(table)
        except OSError as e:
            raise files.write_error("output", getattr(self.sink, "path", "?"), e) from None

    def commit(self) -> None:
        try:
            self.writer.close()
            if self._compressed is not None:
                self._compressed.close()
        except OSError as e:
            raise files.write_error("output", getattr(self.sink, "path", "?"), e) from None
        if self.sink is not None:
            self.sink.commit()

    def discard(self) -> None:
        if hasattr(self, "writer"):
            self.writer.abort()
        if self._compressed is not None:
            try:  # close it now: left open, Arrow complains when it is collected at exit
                self._compressed.close()
            except (OSError, pa.ArrowException, ValueError):
                pass
            self._compressed = None
        if self.sink is not None:
            self.sink.discard()


class _KeepOpen(io.RawIOBase):
    """A write-only view of a file whose close() only flushes: the compressor
    closes its stream at the end, but the sink still has to commit the file."""

    def __init__(self, file):
        self._file = file

    def writable(self):
        return True

    def write(self, data):
        return self._file.write(data)

    def flush(self):
        self._file.flush()

    def close(self):
        if not self.closed:
            self._file.flush()
        super().close()


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _output_schema(columns, sample_types, features, input_format) -> pa.Schema:
    fset = set(features)
    fields = []
    for c in columns:
        if c in fset:
            fields.append(pa.field(c, pa.float64()))
        elif input_format == "parquet":
            fields.append(pa.field(c, sample_types[c]))
        else:
            fields.append(pa.field(c, pa.string()))
    return pa.schema(fields)


def _prefetch(iterable, depth: int = 2):
    """Run an iterator on a background thread, ``depth`` items ahead (pyarrow
    parses with the GIL released, so reading overlaps the math and writing).

    Built on lock-free SimpleQueues (items, and slot tokens for back-pressure),
    so that an interrupt can never leave a queue lock held.
    """
    import queue
    import threading

    items: queue.SimpleQueue = queue.SimpleQueue()
    slots: queue.SimpleQueue = queue.SimpleQueue()
    for _ in range(depth):
        slots.put(None)
    stop = threading.Event()
    done = object()

    def run():
        try:
            for item in iterable:
                while not stop.is_set():
                    try:
                        slots.get(timeout=0.1)
                        break
                    except queue.Empty:
                        continue
                if stop.is_set():
                    return
                items.put((item, None))
            items.put((done, None))
        except BaseException as e:  # handed to the consumer
            items.put((done, e))

    t = threading.Thread(target=run, name="bncli-read", daemon=True)
    t.start()
    try:
        while True:
            item, err = items.get()
            if item is done:
                if err is not None:
                    raise err
                return
            slots.put(None)
            yield item
    finally:
        stop.set()
        t.join(timeout=5)


# -- fit ------------------------------------------------------------------------------


def fit(
    inputs: list[str],
    stats_path: str,
    output: str = files.STDOUT,
    *,
    columns: list[str] | None = None,
    exclude: list[str] | None = None,
    params: Params | None = None,
    io: IOOptions | None = None,
    resume: Stats | None = None,
    reporter: Reporter | None = None,
) -> tuple[Stats, RunSummary]:
    """Batch-normalize ``inputs`` in training mode; write outputs and the stats file.

    Each batch of ``params.batch_size`` consecutive rows is normalized with its
    own mean and biased variance (NaN ignored); running statistics follow
    ``torch.nn.BatchNorm1d``; exact whole-data statistics are kept alongside.
    A last batch of one row is merged into the batch before it; with
    ``drop_last`` an incomplete last batch updates no statistics.
    """
    io = io or IOOptions()
    params = params or Params()
    reporter = reporter or Reporter()
    inputs = list(inputs) or [readers.STDIN]
    files.check_clobber(inputs, output=output, stats=stats_path)
    started = time.perf_counter()
    with ExitStack() as stack:
        src = _Inputs(inputs, io)
        stack.callback(src.close)
        if resume is not None and not columns:
            columns = [c for c in resume.columns]
        features = select_features(src.columns, src.sample_types, columns, exclude, src.first.source)
        if resume is not None:
            _check_resume(resume, features, params)
        stats = resume if resume is not None else Stats.initial(features, params)
        stats.params = params
        trainer = Trainer(stats.state, params.momentum, params.eps, stats.weight, stats.bias)
        fmt, delimiter = _output_plan(output, io, src.format)
        schema = _output_schema(src.columns, src.sample_types, features, src.format)
        stats_file = files.AtomicFile(stats_path, what="stats file")
        stack.callback(stats_file.discard)
        out = _Output(output, fmt, delimiter, schema, io, features)
        stack.callback(out.discard)
        want_output = not isinstance(out.writer, writers.NullWriter)
        summary = RunSummary(features=features, passthrough=[c for c in src.columns if c not in set(features)])

        batch = params.batch_size
        group = batch * max(1, GROUP_ROWS // batch)
        carry_x: list[np.ndarray] = []
        carry_t: list[pa.Table] = []

        def emit(n_rows: int, size: int, update: bool = True) -> None:
            """Train on the first ``n_rows`` carried rows as batches of ``size``."""
            if n_rows == 0:
                return
            x = carry_x[0] if len(carry_x) == 1 else np.concatenate(carry_x, axis=1)
            t = carry_t[0] if len(carry_t) == 1 else pa.concat_tables(carry_t)
            y = trainer.train(x[:, :n_rows], size, update=update, want_output=want_output)
            summary.batches += n_rows // size
            if want_output:
                out.write(_with_features(t.slice(0, n_rows), features, y))
            carry_x[:] = [x[:, n_rows:]] if x.shape[1] > n_rows else []
            carry_t[:] = [t.slice(n_rows)] if x.shape[1] > n_rows else []

        with np.errstate(all="ignore"), reporter.progress("fit", src.total_bytes) as bar:
            for chunk in _prefetch(src.chunks(features, only_features=not want_output)):
                carry_x.append(_features_array(chunk, features, io.inf))
                carry_t.append(chunk.table)
                summary.rows += chunk.table.num_rows
                pending = sum(x.shape[1] for x in carry_x)
                # Hold back the last full batch plus one row: a one-row tail at
                # the end of the data is merged into the batch before it.  Rows
                # go to the math in whole groups of batches, counted from the
                # start of the data, so that the rounding (and so every output
                # and statistic bit) does not depend on how the input was chunked.
                for _ in range(max(0, (pending - batch - 1) // group)):
                    emit(group, batch)
                bar.update(summary.rows, src.bytes_read)
            if summary.rows < 2:
                what = "no data rows" if summary.rows == 0 else "only one data row"
                raise DataError(f"{src.first.source}: {what}; fit needs at least two rows")
            pending = sum(x.shape[1] for x in carry_x)
            full, tail = divmod(pending, batch)
            if tail == 1 and full and not params.drop_last:
                full, last = full - 1, batch + 1
            else:
                last = tail
            for _ in range(full * batch // group):
                emit(group, batch)
            emit(full * batch % group, batch)
            emit(last, last, update=not (params.drop_last and tail))
        with np.errstate(all="ignore"):
            _check_finite(stats, src.first.source)
        summary.inputs = src.rows_by_input
        stats.provenance = _provenance(summary, stats.provenance if resume is not None else None)
        stats_file.write(stats.to_json().encode("utf-8"))
        out.commit()
        stats_file.commit()
    summary.seconds = time.perf_counter() - started
    _warn_fit(stats, reporter)
    return stats, summary


def _check_resume(old: Stats, features: list[str], params: Params) -> None:
    if old.columns != features:
        raise UsageError(
            f"--resume: the stats file has features {_list(old.columns)}, this fit has {_list(features)}",
            hint="resume with the same feature columns",
        )
    if old.params.eps != params.eps:
        raise UsageError(f"--resume: eps differs (file {old.params.eps!r}, option {params.eps!r})")


def _check_finite(stats: Stats, source: str) -> None:
    s = stats.state
    defined = s.count > 0
    bad = defined & ~(
        np.isfinite(s.mean) & np.isfinite(s.m2) & np.isfinite(s.running_mean) & np.isfinite(s.running_var)
    )
    if bad.any():
        names = [c for c, b in zip(stats.columns, bad, strict=True) if b]
        raise DataError(
            f"{source}: column(s) {', '.join(map(repr, names))}: values too large, their variance overflows float64",
            hint="rescale the column(s), or pass them through with --exclude",
        )


def _provenance(summary: RunSummary, previous: dict | None) -> dict:
    p = {
        "bncli_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "inputs": summary.inputs,
        "rows": summary.rows,
    }
    if previous:
        p["resumed_from"] = previous
        p["rows_total"] = previous.get("rows_total", previous.get("rows", 0)) + summary.rows
    return p


def _warn_fit(stats: Stats, reporter: Reporter) -> None:
    d = stats.diagnostics()
    names = lambda cols: ", ".join(map(repr, cols))  # noqa: E731
    if d["constant"]:
        reporter.warn(f"constant feature(s) {names(d['constant'])}: variance 0, normalized output is 0")
    if d["all_missing"]:
        reporter.warn(f"feature(s) {names(d['all_missing'])} hold no values; their statistics are null")
    if d["eps_large"]:
        reporter.warn(
            f"eps {stats.params.eps:g} is more than 1% of the variance of {names(d['eps_large'])}; "
            "outputs are shrunk toward 0 (consider a smaller --eps)"
        )
    if d["init_dominated"] and stats.params.momentum is not None:
        worst = float(np.nanmax(stats.state.init_weight))
        reporter.warn(
            f"with --momentum {stats.params.momentum:g}, the running statistics of {names(d['init_dominated'])} "
            f"still give up to {worst:.0%} weight to their initial values (0 and 1); "
            "use more batches or --momentum cumulative"
        )
    if d["many_missing"]:
        reporter.warn(f"feature(s) {names(d['many_missing'])} are more than half missing")


# -- transform ------------------------------------------------------------------------


def transform(
    inputs: list[str],
    stats: Stats,
    output: str = files.STDOUT,
    *,
    use: str = "running",
    inverse: bool = False,
    batch_size: int | None = None,
    io: IOOptions | None = None,
    reporter: Reporter | None = None,
    stats_path: str | None = None,
    output_dir: str | None = None,
) -> RunSummary:
    """Apply saved statistics (inference mode): ``y = w * (x - mu) / sqrt(var + eps) + b``
    with (mu, var) the running statistics or, with ``use="global"``, the exact
    mean and sample variance.  ``inverse`` maps normalized values back.  Output
    does not depend on ``batch_size``, which only bounds memory.

    With ``output_dir``, each input gets its own output there under the same
    relative name; all appear together at the end, or none on failure.
    """
    io = io or IOOptions()
    reporter = reporter or Reporter()
    inputs = list(inputs) or [readers.STDIN]
    if output_dir is not None and output != files.STDOUT:
        raise UsageError("-o/--output and --output-dir cannot be used together")
    files.check_clobber(inputs, output=None if output_dir else output, stats=stats_path)
    started = time.perf_counter()
    batch_size = batch_size or TRANSFORM_BATCH_ROWS
    mean, var = stats.location_scale(use)
    eps, weight, bias = stats.params.eps, stats.weight, stats.bias
    defined = np.isfinite(mean) & np.isfinite(var)
    undefined = [c for c, ok in zip(stats.columns, defined, strict=True) if not ok]
    if undefined:
        reporter.warn(f"no {use} statistics for {', '.join(map(repr, undefined))}; their output is missing")
    if inverse and (weight == 0).any():
        zero = [c for c, w in zip(stats.columns, weight, strict=True) if w == 0]
        raise DataError(f"cannot invert: weight is 0 for {', '.join(map(repr, zero))}")
    op = norm.denormalize if inverse else norm.normalize
    with ExitStack() as stack:
        src = _Inputs(inputs, io)
        stack.callback(src.close)
        features = list(stats.columns)
        _check_transform_input(src.columns, src.sample_types, src.format, src.first.source, features)
        schema = _output_schema(src.columns, src.sample_types, features, src.format)
        drop: list[str] = []
        if output_dir is None:
            fmt, delimiter = _output_plan(output, io, src.format)
            plan = [(None, _Output(output, fmt, delimiter, schema, io, features))]
            stack.callback(plan[0][1].discard)
        else:
            # The key=value folders are recreated under output_dir, so the
            # partition columns stay in the paths, not in the files.
            drop = src.partition_keys
            schema = pa.schema([f for f in schema if f.name not in drop])
            plan = []
            for i, target in enumerate(_output_dir_targets(src, output_dir, io, inputs, stats_path)):
                fmt, delimiter = _output_plan(target, io, src.format)
                os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
                out = _Output(target, fmt, delimiter, schema, io, features)
                stack.callback(out.discard)
                plan.append((i, out))
        summary = RunSummary(features=features, passthrough=[c for c in src.columns if c not in set(features)])
        with np.errstate(all="ignore"), reporter.progress("transform", src.total_bytes) as bar:
            for only, out in plan:
                for chunk in _prefetch(src.chunks(features, only=only)):
                    for start in range(0, chunk.table.num_rows, batch_size):
                        part = readers.Chunk(
                            chunk.table.slice(start, batch_size), chunk.source, chunk.first_row + start
                        )
                        x = _features_array(part, features, io.inf)
                        table = _with_features(part.table, features, op(x, mean, var, eps, weight, bias, out=x))
                        out.write(table.drop_columns(drop) if drop else table)
                    summary.rows += chunk.table.num_rows
                    bar.update(summary.rows, src.bytes_read)
        for _, out in plan:
            out.commit()
    summary.inputs = src.rows_by_input
    summary.seconds = time.perf_counter() - started
    return summary


def _check_transform_input(columns: list[str], types: dict, fmt: str, source: str, features: list[str]) -> None:
    """Every fitted feature must be in the input, and numeric where the format says so."""
    missing = [c for c in features if c not in columns]
    if missing:
        raise DataError(
            f"{source}: fitted feature column(s) missing from the input: {', '.join(map(repr, missing))}",
            hint="transform needs every column named in the stats file",
        )
    bad = [c for c in features if fmt == "parquet" and not _is_numeric(types[c])]
    if bad:
        raise DataError(
            f"{source}: feature column(s) are not numeric here: " + ", ".join(f"{c!r} ({types[c]})" for c in bad)
        )


def _output_dir_targets(src: _Inputs, output_dir: str, io: IOOptions, inputs, stats_path) -> list[str]:
    """One output path per input: same relative name, extension changed only by --output-format."""
    if readers.STDIN in src.paths:
        raise UsageError("--output-dir needs named input files, not stdin")
    targets = []
    for item in src.files:
        rel = item.relative
        if io.output_format:
            fmt, comp = readers.formats.from_path(rel)
            if fmt != io.output_format:
                base = rel
                for _ in range(2 if comp else 1):
                    base = os.path.splitext(base)[0]
                rel = base + ("." + io.output_format)
        targets.append(os.path.join(output_dir, rel))
    if len(set(targets)) != len(targets):
        raise UsageError("--output-dir: two inputs have the same name; pass their folder instead")
    for t in targets:
        files.check_clobber(list(src.paths), output=t, stats=stats_path)
    return targets
