"""Every command-line option, defined once and shared by the commands.

Only click is imported here: ``bncli --help`` must stay fast.
"""

from __future__ import annotations

import codecs
import math

import click


class Momentum(click.ParamType):
    """``cumulative`` (PyTorch momentum=None) or a float in [0, 1]."""

    name = "cumulative|FLOAT"

    def convert(self, value, param, ctx):
        if value is None or (isinstance(value, float) and 0 <= value <= 1):
            return value
        text = str(value).strip().lower()
        if text in ("cumulative", "none", "null"):
            return None
        try:
            m = float(text)
        except ValueError:
            self.fail(f"{value!r} is neither 'cumulative' nor a number", param, ctx)
        if not 0 <= m <= 1:
            self.fail(f"{value!r} is not in [0, 1] (PyTorch convention: new = (1-m)*old + m*batch)", param, ctx)
        return m


class Delimiter(click.ParamType):
    """One character; ``\\t`` or ``tab`` for a tab."""

    name = "CHAR"

    def convert(self, value, param, ctx):
        if value in ("\\t", "tab", "TAB"):
            return "\t"
        if len(value) != 1:
            self.fail(f"{value!r} is not a single character", param, ctx)
        if value in ('"', "\n", "\r"):
            self.fail(f"{value!r} cannot be a delimiter", param, ctx)
        return value


class ColumnList(click.ParamType):
    """Comma-separated column names; the option may be repeated."""

    name = "A,B,..."

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        names = [v.strip() for v in value.split(",")]
        if not all(names):
            self.fail(f"{value!r} has an empty column name", param, ctx)
        return names


def _check_encoding(ctx, param, value):
    try:
        codecs.lookup(value)
    except LookupError:
        raise click.BadParameter(f"unknown encoding {value!r}", ctx, param) from None
    return value


def _flatten(ctx, param, value):
    return [name for group in value for name in group] or None


inputs = click.argument("inputs", nargs=-1, metavar="[INPUT]...")
stats_out = click.option(
    "-s", "--stats", "stats_path", required=True, metavar="STATS.json", help="Stats file to write (JSON)."
)
stats_in = click.option(
    "-s", "--stats", "stats_path", required=True, metavar="STATS.json", help="Stats file written by 'bncli fit'."
)
output = click.option(
    "-o",
    "--output",
    default="-",
    show_default=True,
    metavar="OUTPUT",
    help="Where the rows go; '-' is stdout, /dev/null skips writing.",
)
columns = click.option(
    "-c",
    "--columns",
    type=ColumnList(),
    multiple=True,
    callback=_flatten,
    help="Feature columns to normalize.  [default: every numeric column]",
)
exclude = click.option(
    "-C", "--exclude", type=ColumnList(), multiple=True, callback=_flatten, help="Columns to pass through unchanged."
)
fit_batch_size = click.option(
    "-b",
    "--batch-size",
    type=click.IntRange(min=2),
    default=256,
    show_default=True,
    help="Rows per mini-batch.",
)
transform_batch_size = click.option(
    "-b",
    "--batch-size",
    type=click.IntRange(min=1),
    default=65536,
    show_default=True,
    help="Rows processed at a time (bounds memory only; output does not depend on it).",
)
momentum = click.option(
    "--momentum",
    type=Momentum(),
    default="cumulative",
    show_default=True,
    help="Running-statistics momentum, PyTorch convention new = (1-m)*old + m*batch; "
    "'cumulative' is PyTorch's momentum=None (equal-weight average of batches).",
)


def _finite(ctx, param, value):
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value!r} is not a finite number", ctx, param)
    return value


eps = click.option(
    "--eps",
    type=click.FloatRange(min=0, min_open=True),
    callback=_finite,
    default=1e-5,
    show_default=True,
    help="Added to the variance before the square root.",
)
drop_last = click.option(
    "--drop-last", is_flag=True, help="An incomplete last batch updates no statistics (its rows are still written)."
)
use = click.option(
    "--use",
    type=click.Choice(["running", "global"]),
    default="running",
    show_default=True,
    help="Running statistics (PyTorch eval mode) or the exact whole-data mean and sample variance.",
)
inverse = click.option("--inverse", is_flag=True, help="Undo the normalization: map normalized values back.")
input_format = click.option(
    "--input-format",
    type=click.Choice(["csv", "tsv", "parquet"]),
    help="Input format.  [default: from the extension, else sniffed]",
)
output_format = click.option(
    "--output-format",
    type=click.Choice(["csv", "tsv", "parquet"]),
    help="Output format.  [default: from the -o extension, else the input's]",
)
delimiter = click.option(
    "-d", "--delimiter", type=Delimiter(), help="Input field delimiter ('\\t' for tab).  [default: ',' ; tab for .tsv]"
)
encoding = click.option(
    "--encoding",
    default="utf-8",
    show_default=True,
    callback=_check_encoding,
    help="Input text encoding, e.g. latin-1, utf-16.",
)
null_value = click.option(
    "--null-value",
    multiple=True,
    metavar="TOKEN",
    help="Extra text read as missing in feature columns (repeatable); empty, NA, NaN, null ... always are.",
)
inf = click.option(
    "--inf",
    "inf_policy",
    type=click.Choice(["error", "missing"]),
    default="error",
    show_default=True,
    help="What to do with inf/-inf in a feature: stop with an error, or treat as missing.",
)
precision = click.option(
    "--precision",
    type=click.IntRange(1, 15),
    help="Significant digits of normalized values in CSV output.  [default: all, exact round trip]",
)
verbose = click.option("-v", "--verbose", count=True, help="Print a summary line (and more with -vv).")
quiet = click.option("-q", "--quiet", count=True, help="Print errors only (no warnings).")
progress = click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar on stderr.  [default: when stderr is a terminal]",
)
engine = click.option(
    "--engine",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="Run in this process, or on a Dask cluster (needs the bncli[dask] extra). With dask: -o DIR/ writes "
    "a Parquet dataset; CSV output only as one file (-o FILE.csv); no stdin input.",
)
scheduler = click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="With --engine dask: address of an existing Dask scheduler.  [default: start a local cluster]",
)
debug = click.option("--debug", is_flag=True, help="On failure, print the Python traceback too.")


def io_options(f):
    """The options every data-reading command shares, in help order."""
    for option in reversed(
        [input_format, output_format, delimiter, encoding, null_value, inf, precision, verbose, quiet, progress, debug]
    ):
        f = option(f)
    return f
