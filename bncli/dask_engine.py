"""``--engine dask``: ``fit`` and ``transform`` on dask.distributed workers.

Same keyword arguments and the same results as :func:`bncli.pipeline.fit` and
:func:`bncli.pipeline.transform` (up to floating-point rounding), plus
``scheduler=`` (an address, an existing ``distributed.Client``, or None for a
local cluster of two worker processes on loopback).  See docs/dask.md.

How a fit runs
--------------
1. The client lists the input files as the local engine does
   (:func:`bncli.sources.expand`: sorted dataset directories, globs, hive
   keys), reads Parquet footers and cuts each file into *partitions* of whole
   row groups (about :data:`PARTITION_ROWS` rows); a CSV/TSV file is one
   partition whose rows a worker counts first.  Row counts give every partition its
   global first row, so batch ``k`` is rows ``[k*B, (k+1)*B)`` of the whole
   stream, exactly as in the local engine (a one-row tail joins the batch
   before it; with ``drop_last`` an incomplete tail updates nothing).
2. Pass 1, in parallel: each worker returns, for every batch that touches its
   partition, (count, mean, M2) per feature -- two-pass moments about a
   per-partition shift, NaN ignored -- plus min, max and its row count.
3. The client walks the partitions in order: a batch split between partitions
   is merged with Chan's formulas (:func:`bncli.norm.merge_moments`), then the
   whole-data moments are merged and the running statistics folded in batch
   order with :func:`bncli.norm.fold_running`, in the local engine's groups of
   batches (one small vector per batch crosses the network).
4. Pass 2 (only when rows are written): each partition is read again and every
   row is normalized with its batch's mean and biased variance: recomputed by
   the worker for batches inside its partition, sent by the client for the
   (at most two) batches it shares with its neighbours.  A partition's pass 2
   starts as soon as its batches are final.

``transform`` is one parallel pass (no batches are involved).  Workers write
part files; ``-o DIR/`` (or a path without extension) becomes a Parquet dataset
directory, ``-o FILE`` one file that the client concatenates from the parts.
Inputs and outputs must be on a filesystem that the workers and the client share.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io as _io
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
import warnings
from contextlib import ExitStack

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__, arrays, errors, files, norm, pipeline, readers, sources, writers
from .errors import BncliError, DataError, InputError, OutputError, UsageError
from .pipeline import IOOptions, RunSummary
from .report import Reporter
from .stats import Params, Stats

#: A Parquet file is cut into partitions of whole row groups of about this many rows.
PARTITION_ROWS = 1 << 19
#: Seconds to wait for a scheduler connection and for its first worker.
CONNECT_TIMEOUT = 30.0
#: The local cluster started when no --scheduler is given.
LOCAL_WORKERS = 2
#: Batches are folded in the local engine's groups of about this many rows.
_GROUP_ROWS = getattr(pipeline, "GROUP_ROWS", 1 << 14)

_PART_RE = re.compile(r"part-\d+\.(parquet|csv|tsv)$")


# -- plan: inputs, partitions, batches ----------------------------------------------


@dataclasses.dataclass(frozen=True)
class Part:
    """A unit of work: some row groups of one Parquet file, or one CSV/TSV file."""

    index: int  # position in input order
    file: int  # index of its input file
    path: str  # absolute path, as the workers open it
    source: str  # the path as the user gave it (messages, provenance)
    format: str  # csv | tsv | parquet
    row_groups: tuple | None  # Parquet row groups (None: the whole CSV file)
    first_row: int  # its first row's number within the file (from 1)
    rows: int | None  # None until a worker has counted a CSV file
    partition: tuple = ()  # hive (key, value) pairs, appended as string columns


@dataclasses.dataclass
class _InputPlan:
    parts: list
    sources: list  # per input file: its path (as named, for messages and provenance)
    formats: list
    schemas: list  # per input file: Parquet (names, types) from the footer, or None
    columns: list  # the first file's columns, then the partition keys
    file_columns: list  # the first file's own columns
    sample_types: dict
    format: str
    first_source: str


@dataclasses.dataclass(frozen=True)
class BatchPlan:
    """Batch ``k`` holds global rows ``[k*batch, (k+1)*batch)``; the last one ends at
    ``rows`` (it has ``batch + 1`` rows when a one-row tail was merged into it)."""

    batch: int
    rows: int
    count: int  # number of batches
    drop_tail: bool  # the last batch is an incomplete one that updates nothing

    @classmethod
    def make(cls, rows: int, batch: int, drop_last: bool) -> BatchPlan:
        full, tail = divmod(rows, batch)
        if tail == 1 and full and not drop_last:
            return cls(batch, rows, full, False)
        return cls(batch, rows, full + (tail > 0), drop_last and tail > 0)

    def bid(self, r):
        """Batch index of global row(s) ``r``."""
        return np.minimum(np.asarray(r) // self.batch, self.count - 1)

    def start(self, b: int) -> int:
        return b * self.batch

    def end(self, b: int) -> int:
        return self.rows if b == self.count - 1 else (b + 1) * self.batch


def _expand_inputs(inputs: list[str]) -> list:
    """Input files in the local engine's order (:func:`bncli.sources.expand`)."""
    items = sources.expand(list(inputs))
    if any(f.path == readers.STDIN for f in items):
        raise UsageError(
            "--engine dask reads files, not stdin",
            hint="name the input files (the workers open them), or use --engine local",
        )
    return items


def _dialect(io: IOOptions) -> readers.CsvDialect:
    return readers.CsvDialect(
        delimiter=io.delimiter or ",",
        encoding=io.encoding,
        null_values=readers.DEFAULT_NULL_VALUES + tuple(io.null_values),
    )


def _file_format(path: str, io: IOOptions) -> str:
    fh = readers.open_input(path)
    try:
        fmt, compression, _ = readers.detect_format(path, io.input_format, fh)
    finally:
        fh.close()
    if fmt == "parquet" and compression:
        raise InputError(f"{path}: Parquet files are not read {compression}-compressed")
    return fmt


def _columns_mismatch(source, columns, types, plan: _InputPlan, features) -> DataError | None:
    """The local engine's message for an input whose columns differ from the first's."""
    missing = [c for c in features if c not in columns]
    if missing:
        return DataError(
            f"{source}: missing feature column(s) {', '.join(map(repr, missing))} found in {plan.first_source}",
            hint="all inputs must have the same feature columns",
        )
    if list(columns) != plan.file_columns:
        return DataError(
            f"{source}: columns differ from {plan.first_source} "
            f"({pipeline._list(list(columns))} vs {pipeline._list(plan.file_columns)})",
            hint="all inputs must have the same columns in the same order",
        )
    if types is not None:
        changed = [c for c in columns if types[c] != plan.sample_types[c] and c not in features]
        if changed:
            c = changed[0]
            return DataError(
                f"{source}: column {c!r} has type {types[c]}, but {plan.sample_types[c]} in {plan.first_source}",
                hint="all inputs must have the same column types",
            )
    return None


def _parquet_file(path: str, source: str) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise InputError(f"{source}: not a readable Parquet file ({readers._first_line(e)})") from None


def _plan_inputs(items: list, io: IOOptions, partition_rows: int) -> _InputPlan:
    """Columns from the first file; Parquet footers give row counts and the partitions."""
    paths = [f.path for f in items]
    fmts = [_file_format(p, io) for p in paths]
    if len({f == "parquet" for f in fmts}) > 1:
        i = next(i for i, f in enumerate(fmts) if (f == "parquet") != (fmts[0] == "parquet"))
        raise UsageError(
            f"{paths[i]} is {fmts[i]} but {paths[0]} is {fmts[0]}; --engine dask needs all inputs in one format",
            hint="convert them, or use --engine local",
        )
    first = readers.open_reader(paths[0], io.input_format, _dialect(io), io.chunk_bytes)
    try:
        file_columns, sample_types = list(first.columns), dict(first.sample_types)
        fmt, first_source = first.format, first.source
    finally:
        first.close()
    keys = list(items[0].partition)
    clash = [k for k in keys if k in file_columns]
    if clash:
        raise DataError(f"{first_source}: partition key(s) {clash} are also column names in the file")
    sample_types.update({k: pa.string() for k in keys})
    parts, schemas = [], []
    for i, (item, f) in enumerate(zip(items, fmts, strict=True)):
        apath = os.path.abspath(item.path)
        partition = tuple(item.partition.items())
        if f != "parquet":
            schemas.append(None)
            parts.append(Part(len(parts), i, apath, item.path, f, None, 1, None, partition))
            continue
        meta = _parquet_file(item.path, item.path).metadata
        arrow = meta.schema.to_arrow_schema()
        schemas.append((list(arrow.names), {fl.name: fl.type for fl in arrow}))
        row, groups, rows = 1, [], 0
        for rg in range(meta.num_row_groups):
            groups.append(rg)
            rows += meta.row_group(rg).num_rows
            if rows >= partition_rows or rg == meta.num_row_groups - 1:
                parts.append(Part(len(parts), i, apath, item.path, f, tuple(groups), row, rows, partition))
                row += rows
                groups, rows = [], 0
        if meta.num_row_groups == 0:
            parts.append(Part(len(parts), i, apath, item.path, f, (), 1, 0, partition))
    return _InputPlan(parts, paths, fmts, schemas, file_columns + keys, file_columns, sample_types, fmt, first_source)


def _check_parquet_inputs(plan: _InputPlan, features: list[str]) -> None:
    """Every Parquet file has the first one's columns and types (from the footers)."""
    for i, schema in enumerate(plan.schemas):
        if i and schema is not None:
            bad = _columns_mismatch(plan.sources[i], schema[0], schema[1], plan, features)
            if bad:
                raise bad


# -- worker side ----------------------------------------------------------------------


class RemoteError(Exception):
    """A bncli error raised on a worker, carried back to the client by name."""

    def __init__(self, kind: str, message: str, hint: str | None):
        super().__init__(kind, message, hint)


def _remote(fn):
    """Run a worker task with numpy warnings off, shipping bncli errors home intact."""

    @functools.wraps(fn)
    def task(*args, **kwargs):
        try:
            with np.errstate(all="ignore"):
                return fn(*args, **kwargs)
        except BncliError as e:
            raise RemoteError(type(e).__name__, e.message, e.hint) from None
        except MemoryError:
            hint = "use smaller partitions or bigger workers"
            raise RemoteError("BncliError", "a Dask worker ran out of memory", hint) from None

    return task


def _worker_version() -> str:
    return __version__


@dataclasses.dataclass(frozen=True)
class _Common:
    """What every task needs besides its partition."""

    features: list
    io: IOOptions
    plan: _InputPlan  # without parts (for column checks and messages)


def _chunks(part: Part, common: _Common):
    """The part's rows as :class:`bncli.readers.Chunk` objects (features float64),
    with the hive partition columns appended, as the local engine reads them."""
    for chunk in _file_chunks(part, common):
        for key, value in part.partition:
            chunk.table = chunk.table.append_column(key, arrays.repeat_string(value, chunk.table.num_rows))
        yield chunk


def _file_chunks(part: Part, common: _Common):
    features, io, plan = common.features, common.io, common.plan
    if part.format == "parquet":
        # The local engine's reader, limited to this part's row groups: same
        # conversions and the same checks (row counts, oversized nested columns).
        reader = readers.open_reader(part.path, "parquet")
        try:
            yield from reader.chunks(features, row_groups=part.row_groups, first_row=part.first_row)
        finally:
            reader.close()
        return
    reader = readers.open_reader(part.path, io.input_format, _dialect(io), io.chunk_bytes)
    try:
        if part.file:
            bad = _columns_mismatch(part.source, reader.columns, None, plan, features)
            if bad:
                raise bad
        yield from reader.chunks(features)
    finally:
        reader.close()


def _check_rows(part: Part, rows: int) -> None:
    if part.rows is not None and rows != part.rows:
        raise InputError(f"{part.source}: changed while being read ({part.rows} rows before, {rows} now)")


@_remote
def _count_task(part: Part, common: _Common) -> int:
    """Pass 0 for a CSV/TSV file: its number of data rows."""
    return sum(c.table.num_rows for c in _file_chunks(part, common))


def _runs(start: int, n: int, plan: BatchPlan):
    """The batch pieces of global rows ``[start, start + n)``, grouped in runs of equal
    length: ``(b0, bounds, runs)``; piece ``j`` is local rows ``bounds[j]:bounds[j+1]``
    of batch ``b0 + j``, and each run ``(s, e)`` is pieces ``s..e-1``, all one length."""
    b0, b1 = int(plan.bid(start)), int(plan.bid(start + n - 1))
    cuts = np.arange(b0 + 1, b1 + 1, dtype=np.int64) * plan.batch - start
    bounds = np.concatenate(([0], cuts, [n]))
    lens = np.diff(bounds)
    change = np.flatnonzero(lens[1:] != lens[:-1]) + 1
    k = len(lens)
    runs = list(zip(np.concatenate(([0], change)).tolist(), np.concatenate((change, [k])).tolist(), strict=True))
    return b0, bounds, runs


def _run_blocks(xs: np.ndarray, bounds, s: int, e: int) -> np.ndarray:
    """Pieces ``s..e-1`` of ``xs`` (all of one length) as a (features, pieces, rows) view."""
    size, off = int(bounds[s + 1] - bounds[s]), int(bounds[s])
    return xs[:, off : off + (e - s) * size].reshape(xs.shape[0], e - s, size)


def _block_moments(xs: np.ndarray, start: int, plan: BatchPlan):
    """(first batch, count, mean, M2, bounds) of every batch piece of ``xs`` (shifted
    values of the rows from global row ``start``), each run of equal pieces at once
    as the local engine does them; piece ``j`` is rows ``bounds[j]:bounds[j+1]``."""
    b0, bounds, runs = _runs(start, xs.shape[1], plan)
    k = len(bounds) - 1
    count = np.empty((xs.shape[0], k), dtype=np.int64)
    mean = np.empty((xs.shape[0], k))
    m2 = np.empty((xs.shape[0], k))
    for s, e in runs:
        count[:, s:e], mean[:, s:e], m2[:, s:e] = norm.batch_moments(_run_blocks(xs, bounds, s, e))
    return b0, count, mean, m2, bounds


def _nanmean_quiet(x: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=-1)


def _blocks(part: Part, start: int, plan: BatchPlan, common, on_chunk=None, tables: bool = False):
    """The partition (first row: global row ``start``) as blocks ``(pos, x, table)``
    that end where a batch ends or where the partition ends.

    Rows are held back until their batch is complete, as in the local engine,
    so every batch inside the partition is seen whole; only the pieces at the
    partition's two ends can be parts of batches shared with a neighbour.
    """
    features, io = common.features, common.io
    carry_x: list[np.ndarray] = []
    carry_t: list[pa.Table] = []
    pending, pos, rows = 0, start, 0

    def take(n: int):
        nonlocal pending, pos
        x = carry_x[0] if len(carry_x) == 1 else np.concatenate(carry_x, axis=1)
        t = None
        if tables:
            t = carry_t[0] if len(carry_t) == 1 else pa.concat_tables(carry_t)
            carry_t[:] = [t.slice(n)] if x.shape[1] > n else []
            t = t.slice(0, n)
        carry_x[:] = [x[:, n:]] if x.shape[1] > n else []
        block = (pos, x[:, :n], t)
        pending -= n
        pos += n
        return block

    for chunk in _chunks(part, common):
        x = pipeline._features_array(chunk, features, io.inf)
        rows += x.shape[1]
        if on_chunk is not None:
            on_chunk(x)
        carry_x.append(x)
        if tables:
            carry_t.append(chunk.table)
        pending += x.shape[1]
        end = pos + pending
        last = int(plan.bid(end - 1))
        cut = end if plan.end(last) == end else plan.start(last)
        while cut > pos:
            yield take(_step(pos, cut, plan))
    while pending:
        yield take(_step(pos, pos + pending, plan))
    _check_rows(part, rows)


def _step(pos: int, cut: int, plan: BatchPlan) -> int:
    """Rows to take from ``pos`` towards ``cut``: about the local engine's group size
    (small arrays stay in cache), ending where a batch ends (or at ``cut``)."""
    limit = pos + max(_GROUP_ROWS, plan.batch)
    if limit >= cut:
        return cut - pos
    stop = plan.start(int(plan.bid(limit)))
    return (stop if stop > pos else plan.end(int(plan.bid(pos)))) - pos


@_remote
def _moments_task(part: Part, start: int, plan: BatchPlan, common) -> dict:
    """Pass 1: (count, mean, M2) of every batch (piece) of one partition, about a
    per-feature shift (the mean of the partition's first values), with min/max.

    Also, per feature, the plain mean of the first piece holding a value of it
    and that piece's batch: the local engine's shift, when that batch is whole here.
    """
    f = len(common.features)
    shift = np.zeros(f)
    shift_set = np.zeros(f, dtype=bool)
    extremes = [np.full(f, np.nan), np.full(f, np.nan)]
    first_mean = np.full(f, np.nan)
    first_bid = np.full(f, -1, dtype=np.int64)

    def on_chunk(x):
        extremes[0] = np.fmin(extremes[0], np.fmin.reduce(x, axis=1))
        extremes[1] = np.fmax(extremes[1], np.fmax.reduce(x, axis=1))
        todo = ~shift_set
        if todo.any():
            first = _nanmean_quiet(x[todo])
            found = ~np.isnan(first)
            idx = np.flatnonzero(todo)[found]
            shift[idx] = first[found]
            shift_set[idx] = True

    pieces = []
    for pos, x, _ in _blocks(part, start, plan, common, on_chunk):
        b0, count, mean, m2, bounds = _block_moments(x - shift[:, None], pos, plan)
        pieces.append((b0, count, mean, m2))
        for i in np.flatnonzero(first_bid < 0):
            has = count[i] > 0
            if has.any():
                j = int(np.argmax(has))
                first_bid[i] = b0 + j
                first_mean[i] = _nanmean_quiet(x[i, bounds[j] : bounds[j + 1]])
    if not pieces:
        return {"rows": 0}
    return {
        "rows": part.rows,
        "b0": pieces[0][0],
        "count": np.concatenate([p[1] for p in pieces], axis=1),
        "mean": np.concatenate([p[2] for p in pieces], axis=1),
        "m2": np.concatenate([p[3] for p in pieces], axis=1),
        "shift": shift,
        "min": extremes[0],
        "max": extremes[1],
        "first_bid": first_bid,
        "first_mean": first_mean,
    }


@dataclasses.dataclass(frozen=True)
class _OutSpec:
    """What a worker writes: a part file in ``format`` with ``schema``."""

    format: str  # parquet | csv | tsv | null
    schema: pa.Schema
    delimiter: str | None
    precision: int | None
    features: tuple[str, ...] = ()  # the columns --precision rounds


class _PartWriter:
    """One part file, opened on the first non-empty table (an empty part writes nothing)."""

    def __init__(self, spec: _OutSpec, path: str | None):
        self.spec, self.path = spec, path
        self.fh = self.writer = None
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        if self.spec.format == "null" or not table.num_rows:
            return
        try:
            if self.writer is None:
                self.fh = open(self.path, "wb", buffering=1 << 20)  # noqa: SIM115 (closed in close/abort)
                spec = self.spec
                if spec.format == "parquet":
                    self.writer = writers.ParquetWriter(self.fh, spec.schema)
                else:
                    self.writer = writers.CsvWriter(
                        self.fh, spec.schema.names, spec.delimiter, spec.precision, round_columns=spec.features
                    )
            self.writer.write(table)
        except OSError as e:
            raise files.write_error("output part", self.path, e) from None

    def close(self) -> bool:
        """Finish the file; True if one was written."""
        if self.writer is None:
            return False
        try:
            self.writer.close()
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
        except OSError as e:
            raise files.write_error("output part", self.path, e) from None
        return True

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
        if self.fh is not None:
            self.fh.close()
            with contextlib.suppress(OSError):
                os.unlink(self.path)


def _write_part(spec: _OutSpec, path: str | None, tables) -> tuple[int, bool]:
    """Write the tables of an iterator to one part file: (rows, whether a file was made)."""
    out = _PartWriter(spec, path)
    try:
        for table in tables:
            out.write(table)
        return out.rows, out.close()
    except BaseException:
        out.abort()
        raise


@_remote
def _fit_write_task(part, start, plan, common, spec, path, shift, shared, eps, weight, bias):
    """Pass 2 of fit: each row normalized with its batch's mean and biased variance.

    ``shift`` is the fit's (the local engine's), so a batch inside the partition
    is recomputed here with the local engine's very arithmetic; ``shared`` maps
    each batch shared with a neighbouring partition to its merged (mean about
    ``shift``, biased variance) from the client.
    """
    features = common.features
    weight = np.asarray(weight)[:, None]
    bias = np.asarray(bias)[:, None]

    def tables():
        for pos, x, table in _blocks(part, start, plan, common, tables=True):
            xs = x - shift[:, None]
            b0, bounds, runs = _runs(pos, x.shape[1], plan)
            y = np.empty_like(xs)
            for s, e in runs:
                blocks = _run_blocks(xs, bounds, s, e)
                count, mean, m2 = norm.batch_moments(blocks)
                var = m2 / count
                for b, (m, v) in shared.items():
                    if s <= b - b0 < e:
                        mean[:, b - b0 - s], var[:, b - b0 - s] = m, v
                # As Trainer.train: whole batches with their mean and biased variance.
                out = norm.normalize(blocks, mean, var, eps, weight, bias)
                y[:, bounds[s] : bounds[e]] = out.reshape(out.shape[0], -1)
            yield pipeline._with_features(table, features, y)

    return _write_part(spec, path, tables())


@_remote
def _transform_task(part, common, spec, path, mean, var, eps, weight, bias, inverse, batch_size):
    """transform of one partition, with exactly the local engine's arithmetic."""
    features, io = common.features, common.io
    op = norm.denormalize if inverse else norm.normalize

    def tables():
        rows = 0
        for chunk in _chunks(part, common):
            rows += chunk.table.num_rows
            for s in range(0, chunk.table.num_rows, batch_size):
                sub = readers.Chunk(chunk.table.slice(s, batch_size), chunk.source, chunk.first_row + s)
                x = pipeline._features_array(sub, features, io.inf)
                yield pipeline._with_features(sub.table, features, op(x, mean, var, eps, weight, bias))
        _check_rows(part, rows)

    return _write_part(spec, path, tables())


# -- client side: cluster, futures, errors ------------------------------------------


@contextlib.contextmanager
def _connect(scheduler):
    """A ``distributed.Client``: to ``scheduler`` (address or Client), or to a new local
    cluster that is closed afterwards.  Checks that workers can run bncli."""
    try:
        import dask
        import distributed
    except ImportError:
        raise UsageError(
            "--engine dask needs dask.distributed, which is not installed", hint="pip install 'bncli[dask]'"
        ) from None
    log = logging.getLogger("distributed")
    level = log.level
    log.setLevel(logging.CRITICAL)  # failures come back as task errors
    cluster = client = None
    own = True
    try:
        if isinstance(scheduler, distributed.Client):
            client, own = scheduler, False
        elif scheduler:
            try:
                _probe(scheduler)
                client = _new_client(distributed, scheduler)
            except (OSError, TimeoutError, ValueError, TypeError) as e:
                raise UsageError(
                    f"cannot connect to the Dask scheduler at {scheduler}: {_first_line(e)}",
                    hint="check --scheduler (e.g. tcp://HOST:8786) and that the scheduler is running",
                ) from None
        else:
            try:
                # Dask sets MALLOC_TRIM_THRESHOLD_ in its workers to hand memory back
                # promptly; glibc then maps and unmaps every large numpy temporary
                # (page faults: about 2x the CPU time of pass 2).  Not for our own cluster.
                unset_trim = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
                with dask.config.set(unset_trim):
                    cluster = distributed.LocalCluster(
                        n_workers=LOCAL_WORKERS,
                        threads_per_worker=1,
                        processes=True,
                        host="127.0.0.1",
                        dashboard_address=":0",  # an ephemeral port: 8787 may be taken
                        silence_logs=logging.CRITICAL,  # failures come back as task errors
                    )
                client = distributed.Client(cluster, set_as_default=False)
            except Exception as e:
                raise BncliError(
                    f"cannot start a local Dask cluster: {_first_line(e)}",
                    hint="pass --scheduler ADDRESS; in a script, call bncli under `if __name__ == '__main__':`",
                ) from None
        where = "the local cluster" if cluster is not None else (scheduler if own else client.scheduler.address)
        _check_workers(client, where)
        yield client
    finally:
        if own and client is not None:
            with contextlib.suppress(Exception):
                client.close()
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()
        log.setLevel(level)


def _probe(address: str) -> None:
    """Fail fast (OSError) when nothing listens at a tcp:// scheduler address."""
    import socket

    from distributed.comm.addressing import parse_address, parse_host_port

    scheme, loc = parse_address(address)
    if scheme == "tcp":
        host, port = parse_host_port(loc)
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()


def _new_client(distributed, address: str):
    """``distributed.Client(address)``; one that fails to connect is shut down at once
    (left to the garbage collector, it would block and print a traceback at exit)."""

    class Client(distributed.Client):
        def __init__(self, *args, **kwargs):
            try:
                super().__init__(*args, **kwargs)
            except BaseException:
                self.status = "closed"
                with contextlib.suppress(Exception):
                    self._loop_runner.stop()
                raise

    # Something that accepts connections but never answers (not a Dask
    # scheduler) would block the handshake for ever: give it a deadline.
    import threading

    box: dict = {}

    def start():
        try:
            box["client"] = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except BaseException as e:  # handed to the caller
            box["error"] = e

    t = threading.Thread(target=start, name="bncli-dask-connect", daemon=True)
    t.start()
    t.join(CONNECT_TIMEOUT + 5)
    if t.is_alive():
        raise TimeoutError(f"no answer from a Dask scheduler within {CONNECT_TIMEOUT + 5:g} s")
    if "error" in box:
        raise box["error"]
    return box["client"]


def _check_workers(client, where) -> None:
    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
    except (TimeoutError, OSError) as e:
        raise BncliError(f"no Dask worker joined {where} within {CONNECT_TIMEOUT:g} s ({_first_line(e)})") from None
    try:
        versions = client.run(_worker_version)
    except Exception as e:
        raise UsageError(
            f"the Dask workers of {where} cannot run bncli ({type(e).__name__}: {_first_line(e)})",
            hint=f"install bncli {__version__} on every worker",
        ) from None
    other = sorted({v for v in versions.values() if v != __version__})
    if other:
        raise UsageError(
            f"the Dask workers of {where} run bncli {', '.join(other)}, this client {__version__}",
            hint="install the same bncli version everywhere",
        )


def _first_line(e: BaseException) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__


class _Tasks:
    """Submit tasks; fetch results as bncli errors; cancel whatever is left on exit."""

    def __init__(self, client):
        self.client = client
        self.token = uuid.uuid4().hex[:8]
        self.futures: list = []
        self.submitted = 0

    def submit(self, name: str, fn, *args):
        self.submitted += 1
        fut = self.client.submit(fn, *args, pure=False, key=f"bncli-{name}-{self.token}-{self.submitted}")
        self.futures.append(fut)
        return fut

    def result(self, fut):
        from distributed import KilledWorker

        try:
            value = fut.result()
            # The value lives on here only: let the worker drop its copy.
            self.futures.remove(fut)
            fut.release()
            return value
        except RemoteError as e:
            kind, message, hint = e.args
            cls = getattr(errors, kind, BncliError)
            if not (isinstance(cls, type) and issubclass(cls, BncliError)):
                cls = BncliError
            raise cls(message, hint) from None
        except KilledWorker as e:
            raise BncliError(
                f"a Dask worker died while running {_first_line(e)}",
                hint="check the worker logs (memory limits); smaller partitions need less memory",
            ) from None
        except (OSError, TimeoutError) as e:
            what = f"{type(e).__name__}: {_first_line(e)}"
            raise BncliError(f"lost the connection to the Dask cluster ({what})") from None

    def cancel(self) -> None:
        live = [f for f in self.futures if not f.done()]
        if live:
            with contextlib.suppress(Exception):
                self.client.cancel(live)
        self.futures.clear()


# -- client side: outputs -----------------------------------------------------------


class _Output:
    """Where the rows go: ``null`` (/dev/null), ``dir`` (a Parquet dataset directory),
    ``file`` or ``stdout`` (one file, concatenated from part files by the client).

    Part files are written by the workers into a temporary directory beside the
    target (or under $TMPDIR for stdout); nothing appears at the target until
    :meth:`commit`, and :meth:`discard` removes every trace.
    """

    def __init__(
        self, output, io: IOOptions, input_format, schema: pa.Schema, inputs: list[str], stats_path=None, features=()
    ):
        self.output, self.schema = output, schema
        self.precision = io.precision
        self.features = tuple(features)
        self.sink = None
        self.parts_dir = None
        self.delimiter = None
        self.compression = None
        if files.is_null_device(output):
            self.kind, self.format = "null", "null"
            return
        if output != files.STDOUT and (
            output.endswith(("/", os.sep)) or os.path.isdir(output) or not os.path.splitext(output.rstrip("/"))[1]
        ):
            self.kind, self.format = "dir", "parquet"
            if io.output_format not in (None, "parquet"):
                raise UsageError(
                    f"-o {output}: --engine dask writes a directory only as a Parquet dataset, not {io.output_format}",
                    hint="give a file name (-o OUT.csv) for one CSV file, or drop --output-format",
                )
            self.target = os.path.abspath(output.rstrip("/") or "/")
            inside = os.path.realpath(self.target) + os.sep
            for src in inputs:
                if os.path.realpath(src).startswith(inside):
                    raise UsageError(
                        f"--output {output} holds the input file {src}; bncli never overwrites an input",
                        hint="choose another output directory",
                    )
            if stats_path and os.path.realpath(stats_path).startswith(inside):
                raise UsageError(
                    f"--stats {stats_path} is inside the output directory {output}, which is replaced as a whole",
                    hint="write the stats file elsewhere",
                )
            self._check_dir_target()
            parent = os.path.dirname(self.target)
            self.parts_dir = self._mkdtemp(parent, os.path.basename(self.target))
            return
        self.format, self.delimiter = pipeline._output_plan(output, io, input_format)
        if self.format != "parquet":
            writers.csv_compatible(schema)
        if output == files.STDOUT:
            self.kind = "stdout"
            if self.format == "parquet" and pipeline._isatty(__import__("sys").stdout):
                raise UsageError(
                    "refusing to write Parquet to a terminal",
                    hint="use -o FILE.parquet, redirect stdout, or --output-format csv",
                )
            self.parts_dir = tempfile.mkdtemp(prefix="bncli-parts-", suffix=".bncli-tmp")
        else:
            self.kind = "file"
            self.compression = pipeline._output_compression(output)
            self.sink = files.AtomicFile(output)
            try:
                self.parts_dir = self._mkdtemp(os.path.dirname(os.path.abspath(output)), os.path.basename(output))
            except BaseException:
                self.sink.discard()
                raise

    @staticmethod
    def _mkdtemp(parent: str, name: str) -> str:
        if not os.path.isdir(parent):
            raise OutputError(f"output {name}: directory {parent} does not exist")
        try:
            return tempfile.mkdtemp(dir=parent, prefix=f".{name}.", suffix=".bncli-tmp")
        except PermissionError:
            raise OutputError(f"output {name}: permission denied (cannot write in {parent})") from None
        except OSError as e:
            raise OutputError(f"output {name}: cannot create a directory in {parent}: {e.strerror}") from None

    def _check_dir_target(self) -> bool:
        """True if the target exists (as an empty directory or an earlier bncli dataset)."""
        t = self.target
        if not os.path.lexists(t):
            return False
        if not os.path.isdir(t) or os.path.islink(t):
            raise OutputError(
                f"output {self.output}: exists and is not a directory",
                hint="give -o FILE.parquet for one file, or another directory name",
            )
        other = [n for n in os.listdir(t) if not _PART_RE.match(n)]
        if other:
            raise OutputError(
                f"output directory {self.output} exists and holds other files (e.g. {other[0]!r})",
                hint="remove it or choose another -o; bncli replaces only a directory of part-*.parquet files",
            )
        return True

    @property
    def wants_rows(self) -> bool:
        return self.kind != "null"

    @property
    def spec(self) -> _OutSpec:
        fmt = "null" if self.kind == "null" else ("parquet" if self.kind == "dir" else self.format)
        return _OutSpec(fmt, self.schema, self.delimiter, self.precision, self.features)

    def part_path(self, index: int) -> str | None:
        if self.parts_dir is None:
            return None
        ext = "parquet" if self.spec.format == "parquet" else self.spec.format
        return os.path.join(self.parts_dir, f"part-{index:05d}.{ext}")

    def commit(self, written: list[str]) -> None:
        """Publish the part files ``written`` (in input order)."""
        if self.kind == "null":
            return
        if self.kind == "dir":
            self._commit_dir(written)
        else:
            self._concatenate(written)
        self.discard()

    def _commit_dir(self, written: list[str]) -> None:
        width = max(5, len(str(max(len(written) - 1, 0))))
        try:
            if not written:
                empty = os.path.join(self.parts_dir, f"part-{0:0{width}d}.parquet")
                with open(empty, "wb") as fh:
                    w = writers.ParquetWriter(fh, self.schema)
                    w.close()
            for i, path in enumerate(written):
                os.rename(path, os.path.join(self.parts_dir, f"part-{i:0{width}d}.parquet.tmp"))
            for name in os.listdir(self.parts_dir):
                if name.endswith(".tmp"):
                    os.rename(os.path.join(self.parts_dir, name), os.path.join(self.parts_dir, name[:-4]))
            _fsync_dir(self.parts_dir)
            old = None
            if self._check_dir_target():
                old = self._mkdtemp(os.path.dirname(self.target), os.path.basename(self.target) + ".old")
                os.rename(self.target, os.path.join(old, "d"))
            os.rename(self.parts_dir, self.target)
            self.parts_dir = None
            _fsync_dir(os.path.dirname(self.target))
            if old:
                shutil.rmtree(old, ignore_errors=True)
        except OSError as e:
            raise files.write_error("output", self.output, e) from None

    def _concatenate(self, written: list[str]) -> None:
        sink = self.sink if self.kind == "file" else files.StdoutFile()
        target = sink
        compressed = None
        try:
            if self.compression and self.format != "parquet":
                compressed = pa.CompressedOutputStream(pa.PythonFile(_KeepOpen(sink.file), mode="w"), self.compression)
                target = compressed
            if self.format == "parquet":
                w = writers.ParquetWriter(sink.file, self.schema)
                for path in written:
                    pf = pq.ParquetFile(path)
                    for rg in range(pf.num_row_groups):
                        w.write(pf.read_row_group(rg))
                w.close()
            else:
                # The header a part starts with, made by the same writer.
                buf = _io.BytesIO()
                writers.CsvWriter(buf, self.schema.names, self.delimiter, self.precision, threads=1).close()
                header = buf.getvalue()
                target.write(header)
                for path in written:
                    with open(path, "rb") as fh:
                        if fh.read(len(header)) != header:
                            raise OutputError(f"output part {path}: unexpected header")
                        shutil.copyfileobj(fh, target, 1 << 20)
            if compressed is not None:
                compressed.close()
        except OSError as e:
            raise files.write_error("output", getattr(sink, "path", "?"), e) from None
        sink.commit()

    def discard(self) -> None:
        if self.sink is not None:
            self.sink.discard()
        if self.parts_dir is not None:
            shutil.rmtree(self.parts_dir, ignore_errors=True)
            self.parts_dir = None


class _KeepOpen(_io.RawIOBase):
    """A write-only view of a file whose close() only flushes (the compressor closes
    its stream, but the sink still has to commit the file)."""

    def __init__(self, file):
        self._file = file

    def writable(self):
        return True

    def write(self, data):
        return self._file.write(data)

    def close(self):
        if not self.closed:
            self._file.flush()
        super().close()


def _fsync_dir(path: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- client side: folding pass-1 results in batch order -------------------------------


class _Folder:
    """Merge the partitions' per-batch moments, in batch order, into ``state`` (a TrainState).

    A partition's moments are about its own shift.  A batch split between
    partitions is merged (Chan) about the shift of the partition where it
    ends.  Complete batches are then moved to the state's shift -- per
    feature, the mean of the first batch holding a value of it, as in
    :class:`bncli.training.Trainer` (or the resumed mean) -- and folded in the
    local engine's groups (``group`` batches counted from the first one, then
    the rest, then a last batch of other size alone), so that the arithmetic
    is the same as the local engine's up to the rounding of the moments.
    The (mean, biased variance) of the batches in ``watch`` -- those shared by
    two partitions -- are kept for pass 2.
    """

    def __init__(self, state, momentum, plan: BatchPlan, watch: set, group: int):
        self.s = state
        self.momentum = momentum
        self.plan = plan
        self.watch = watch
        self.group = group
        last_regular = plan.rows - plan.start(plan.count - 1) == plan.batch
        self.regular = plan.count if last_regular else plan.count - 1  # batches of exactly ``batch`` rows
        self.shared: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # about state.shift
        self.shift_set = state.count > 0
        self.open = None  # (bid, count, mean, m2, shift): a batch that may go on in the next partition
        self.first: dict[tuple[int, int], float] = {}  # (feature, batch) -> plain mean of its values
        self.final = 0  # batches complete so far
        self.buf: list[tuple] = []  # complete batches not folded yet (about state.shift)
        self.folded = 0

    def add(self, res: dict) -> None:
        s = self.s
        c, m, q, shift = res["count"], res["mean"], res["m2"], res["shift"]
        s.nan_count = s.nan_count + (res["rows"] - c.sum(axis=1))
        s.min = np.fmin(s.min, res["min"])
        s.max = np.fmax(s.max, res["max"])
        b0 = res["b0"]
        for f in np.flatnonzero((res["first_bid"] >= 0) & ~self.shift_set):
            self.first[(int(f), int(res["first_bid"][f]))] = float(res["first_mean"][f])
        if self.open is not None:
            ob, oc, om, oq, oshift = self.open
            if ob == b0:  # a batch split between partitions: Chan's merge, about this partition's shift
                c, m, q = c.copy(), m.copy(), q.copy()
                c[:, 0], m[:, 0], q[:, 0] = norm.merge_moments(oc, om + (oshift - shift), oq, c[:, 0], m[:, 0], q[:, 0])
            else:
                self._complete(ob, oc[:, None], om[:, None], oq[:, None], oshift)
        if b0 != self.final:
            raise AssertionError(f"partition starts at batch {b0}, {self.final} batches complete")
        k = c.shape[1]
        if k > 1:
            self._complete(b0, c[:, :-1], m[:, :-1], q[:, :-1], shift)
        self.open = (b0 + k - 1, c[:, -1], m[:, -1], q[:, -1], shift)

    def finish(self) -> None:
        if self.open is not None:
            ob, oc, om, oq, oshift = self.open
            self._complete(ob, oc[:, None], om[:, None], oq[:, None], oshift)
            self.open = None
        self._flush()
        if self.folded != self.plan.count:
            raise AssertionError(f"{self.folded} batches folded, {self.plan.count} planned")

    def _complete(self, b0: int, c, m, q, shift) -> None:
        """Batches ``b0 ..``, complete, with means about ``shift``."""
        s = self.s
        k = c.shape[1]
        todo = ~self.shift_set & (c > 0).any(axis=1)
        for f in np.flatnonzero(todo):
            # The state's shift: the mean of the first batch holding a value, as the
            # local engine takes it (the worker's plain mean) when the batch is whole.
            b = b0 + int(np.argmax(c[f] > 0))
            exact = self.first.get((f, b))
            s.shift[f] = exact if exact is not None and b not in self.watch else m[f, b - b0] + shift[f]
            self.shift_set[f] = True
        m = m + (shift - s.shift)[:, None]
        for b in self.watch.intersection(range(b0, b0 + k)):
            with np.errstate(invalid="ignore", divide="ignore"):
                self.shared[b] = (m[:, b - b0].copy(), q[:, b - b0] / c[:, b - b0])
        self.buf.append((c, m, q))
        self.final = b0 + k
        self._flush()

    def _group_end(self, b: int) -> int:
        if b >= self.regular:
            return self.plan.count
        return min((b // self.group + 1) * self.group, self.regular)

    def _flush(self) -> None:
        while self.folded < self.final:
            end = self._group_end(self.folded)
            if end > self.final:
                return
            c, m, q = (np.concatenate(a, axis=1) for a in zip(*self.buf, strict=True))
            n = end - self.folded
            self._fold(self.folded, c[:, :n], m[:, :n], q[:, :n])
            self.buf = [(c[:, n:], m[:, n:], q[:, n:])] if c.shape[1] > n else []
            self.folded = end

    def _fold(self, b0: int, c, m, q) -> None:
        """Fold batches ``b0 .. b0+k-1`` into the whole-data and running statistics,
        as :meth:`bncli.training.Trainer.train` does with one group."""
        s = self.s
        k = c.shape[1]
        n, mean, m2 = norm.combine_moments(c, m, q)
        s.count, s.mean_shifted, s.m2 = norm.merge_moments(s.count, s.mean_shifted, s.m2, n, mean, m2)
        if self.plan.drop_tail and b0 + k == self.plan.count:
            return  # drop_last: the incomplete last batch updates nothing
        s.fold_batches(c, m, q, self.momentum)


# -- fit ------------------------------------------------------------------------------


def _file_rows(plan: _InputPlan, rows_by_part: dict) -> list[dict]:
    out = []
    for i, (src, fmt) in enumerate(zip(plan.sources, plan.formats, strict=True)):
        rows = sum(rows_by_part.get(p.index, 0) for p in plan.parts if p.file == i)
        out.append({"path": src, "format": fmt, "rows": rows, "bytes": readers._file_size(src)})
    return out


def _count_rows(plan: _InputPlan, tasks: _Tasks, common) -> list[Part]:
    """Parts with row counts: from Parquet footers, or counted by the workers (CSV)."""
    todo = [p for p in plan.parts if p.rows is None]
    futs = [tasks.submit("count", _count_task, p, common) for p in todo]
    counted = {p.index: tasks.result(f) for p, f in zip(todo, futs, strict=True)}
    return [p if p.rows is not None else dataclasses.replace(p, rows=counted[p.index]) for p in plan.parts]


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
    scheduler=None,
    partition_rows: int = PARTITION_ROWS,
) -> tuple[Stats, RunSummary]:
    """:func:`bncli.pipeline.fit` on a Dask cluster; the same results up to rounding.

    ``scheduler`` is a scheduler address, a ``distributed.Client``, or None to
    start a local cluster of :data:`LOCAL_WORKERS` processes for this call.
    """
    io = io or IOOptions()
    params = params or Params()
    reporter = reporter or Reporter()
    started = time.perf_counter()
    items = _expand_inputs(list(inputs))
    paths = [f.path for f in items]
    files.check_clobber(paths, output=output, stats=stats_path)
    plan = _plan_inputs(items, io, partition_rows)
    if resume is not None and not columns:
        columns = list(resume.columns)
    features = pipeline.select_features(plan.columns, plan.sample_types, columns, exclude, plan.first_source)
    _check_parquet_inputs(plan, features)
    if resume is not None:
        pipeline._check_resume(resume, features, params)
    stats = resume if resume is not None else Stats.initial(features, params)
    stats.params = params
    schema = pipeline._output_schema(plan.columns, plan.sample_types, features, plan.format)
    summary = RunSummary(features=features, passthrough=[c for c in plan.columns if c not in set(features)])
    common = _Common(features, io, dataclasses.replace(plan, parts=[]))
    with ExitStack() as stack, np.errstate(all="ignore"):
        stats_file = files.AtomicFile(stats_path, what="stats file")
        stack.callback(stats_file.discard)
        out = _Output(output, io, plan.format, schema, paths, stats_path, features)
        stack.callback(out.discard)
        client = stack.enter_context(_connect(scheduler))
        tasks = _Tasks(client)
        stack.callback(tasks.cancel)
        parts = _count_rows(plan, tasks, common)
        total = sum(p.rows for p in parts)
        if total < 2:
            what = "no data rows" if total == 0 else "only one data row"
            raise DataError(f"{plan.first_source}: {what}; fit needs at least two rows")
        bplan = BatchPlan.make(total, params.batch_size, params.drop_last)
        # Global first row, first and last batch of each non-empty partition.
        work, g = [], 0
        for p in parts:
            if p.rows:
                work.append((p, g, int(bplan.bid(g)), int(bplan.bid(g + p.rows - 1))))
            g += p.rows
        shared = set()
        for p, g, b0, b1 in work:
            shared.update(b for b in {b0, b1} if bplan.start(b) < g or bplan.end(b) > g + p.rows)
        futs = [tasks.submit("moments", _moments_task, p, g, bplan, common) for p, g, _, _ in work]
        batch = params.batch_size
        folder = _Folder(stats.state, params.momentum, bplan, shared, max(1, _GROUP_ROWS // batch))
        writes, waiting = [], []

        def submit_writes() -> None:
            # A partition's pass 2 starts once its last batch is final.
            while waiting and waiting[0][0] < folder.final:
                b1, b0, p, g = waiting.pop(0)
                shared = {b: folder.shared[b] for b in {b0, b1} if b in folder.shared}
                path = out.part_path(p.index)
                fut = tasks.submit(
                    "write", _fit_write_task, p, g, bplan, common, out.spec, path, stats.state.shift.copy(), shared,
                    params.eps, stats.weight, stats.bias,
                )  # fmt: skip
                writes.append((path, fut))

        with reporter.progress("fit (dask)", None) as bar:
            for (p, g, b0, b1), fut in zip(work, futs, strict=True):
                res = tasks.result(fut)
                folder.add(res)
                summary.rows += res["rows"]
                bar.update(summary.rows, None)
                if out.wants_rows:
                    waiting.append((b1, b0, p, g))  # last batch first: the readiness test
                    submit_writes()
            folder.finish()
            submit_writes()
            written = [path for path, fut in writes if tasks.result(fut)[1]]
        summary.batches = bplan.count
        pipeline._check_finite(stats, plan.first_source)
        summary.inputs = _file_rows(plan, {p.index: p.rows for p in parts})
        stats.provenance = pipeline._provenance(summary, stats.provenance if resume is not None else None)
        stats_file.write(stats.to_json().encode("utf-8"))
        out.commit(written)
        stats_file.commit()
    summary.seconds = time.perf_counter() - started
    pipeline._warn_fit(stats, reporter)
    return stats, summary


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
    scheduler=None,
    partition_rows: int = PARTITION_ROWS,
) -> RunSummary:
    """:func:`bncli.pipeline.transform` on a Dask cluster, partitions in parallel;
    the values are exactly the local engine's (the same arithmetic per row)."""
    io = io or IOOptions()
    reporter = reporter or Reporter()
    started = time.perf_counter()
    batch_size = batch_size or pipeline.TRANSFORM_BATCH_ROWS
    if output_dir is not None:
        raise UsageError("--output-dir works with the local engine; with --engine dask use -o DIR/")
    items = _expand_inputs(list(inputs))
    paths = [f.path for f in items]
    files.check_clobber(paths, output=output, stats=stats_path)
    mean, var = stats.location_scale(use)
    eps, weight, bias = stats.params.eps, stats.weight, stats.bias
    defined = np.isfinite(mean) & np.isfinite(var)
    undefined = [c for c, ok in zip(stats.columns, defined, strict=True) if not ok]
    if undefined:
        reporter.warn(f"no {use} statistics for {', '.join(map(repr, undefined))}; their output is missing")
    if inverse and (weight == 0).any():
        zero = [c for c, w in zip(stats.columns, weight, strict=True) if w == 0]
        raise DataError(f"cannot invert: weight is 0 for {', '.join(map(repr, zero))}")
    plan = _plan_inputs(items, io, partition_rows)
    missing = [c for c in stats.columns if c not in plan.columns]
    if missing:
        raise DataError(
            f"{plan.first_source}: fitted feature column(s) missing from the input: {', '.join(map(repr, missing))}",
            hint="transform needs every column named in the stats file",
        )
    features = list(stats.columns)
    bad = [c for c in features if plan.format == "parquet" and not pipeline._is_numeric(plan.sample_types[c])]
    if bad:
        raise DataError(
            f"{plan.first_source}: feature column(s) are not numeric here: "
            + ", ".join(f"{c!r} ({plan.sample_types[c]})" for c in bad)
        )
    _check_parquet_inputs(plan, features)
    schema = pipeline._output_schema(plan.columns, plan.sample_types, features, plan.format)
    summary = RunSummary(features=features, passthrough=[c for c in plan.columns if c not in set(features)])
    common = _Common(features, io, dataclasses.replace(plan, parts=[]))
    rows_by_part = {}
    with ExitStack() as stack, np.errstate(all="ignore"):
        out = _Output(output, io, plan.format, schema, paths, features=features)
        stack.callback(out.discard)
        client = stack.enter_context(_connect(scheduler))
        tasks = _Tasks(client)
        stack.callback(tasks.cancel)
        work = [p for p in plan.parts if p.rows != 0]
        futs = [
            tasks.submit(
                "transform", _transform_task, p, common, out.spec, out.part_path(p.index),
                mean, var, eps, weight, bias, inverse, batch_size,
            )
            for p in work
        ]  # fmt: skip
        written = []
        with reporter.progress("transform (dask)", None) as bar:
            for p, fut in zip(work, futs, strict=True):
                rows, made = tasks.result(fut)
                rows_by_part[p.index] = rows
                if made:
                    written.append(out.part_path(p.index))
                summary.rows += rows
                bar.update(summary.rows, None)
        out.commit(written)
    summary.inputs = _file_rows(plan, rows_by_part)
    summary.seconds = time.perf_counter() - started
    return summary
