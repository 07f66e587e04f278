"""``bncli inspect``: a stats file as a table, and optionally its effect on data.

One report, three renderings.  :func:`build_report` turns a stats file (and,
with ``--data``, one streaming pass over a data file) into a plain dict; that
dict *is* the ``--json`` output, and the terminal view (:func:`render_terminal`,
rich) and the HTML page (:func:`render_html`, inline SVG) are drawn from it, so
the three always show the same numbers.

Conventions:

* Statistics are in the data's own units.  ``std`` is the square root of the
  whole-data *sample* variance (n - 1); ``running_std`` is ``sqrt(running_var)``.
  Undefined values (no data, fewer than two values) are NaN in numpy and
  ``null`` in JSON; the terminal and HTML show an em dash.
* Histograms (``--data``) use ``bins`` equal-width bins over a fixed range
  chosen *before* reading: the fitted whole-data ``[min, max]`` for raw values,
  and that range mapped through the transform for normalized values.  So one
  streaming pass suffices and nothing but the counts is held in memory.
  Missing values are counted, never binned.  Values outside the range (new
  data) are **not** folded into the edge bins: they are counted separately as
  ``below`` and ``above``.  The last bin includes its right edge.  A
  zero-width range (constant feature) is widened to ``[v - 0.5, v + 0.5]``,
  as numpy.histogram does.
"""

from __future__ import annotations

import datetime
import html as _html
import json
import math
import sys
from dataclasses import dataclass

import numpy as np

from . import __version__, files, norm
from .errors import DataError, UsageError
from .stats import Stats, load_stats

#: Flag shown for each kind returned by :meth:`Stats.diagnostics`, and what it means.
FLAGS = {
    "constant": ("constant", "variance 0: the normalized output is 0"),
    "eps_large": ("eps>1%var", "eps is more than 1% of the variance: outputs shrink toward 0"),
    "init_dominated": ("init-weighted", "running statistics still give >5% weight to their initial 0 and 1"),
    "all_missing": ("all-missing", "no values: statistics are undefined"),
    "many_missing": ("many-missing", "more than half of the values are missing"),
}

OUT_OF_RANGE_POLICY = "values outside the fitted range are not binned; they are counted in 'below' and 'above'"

MIN_BINS, MAX_BINS = 2, 200
#: Text rows of a terminal histogram (each row has 8 levels of block characters).
TERMINAL_ROWS = 8
_BLOCKS = " ▁▂▃▄▅▆▇█"


# -- entry point -----------------------------------------------------------------------


def run(
    stats_path: str,
    *,
    data: str | None = None,
    use: str = "running",
    bins: int = 30,
    as_json: bool = False,
    html: str | None = None,
    io=None,
    reporter=None,
) -> dict:
    """``bncli inspect``: print the report on stdout (rich table, or JSON with
    ``as_json``), write the HTML page to ``html`` if given, and return the report.

    ``data`` (a path, ``-`` for stdin) is read once, streaming, with ``io``.
    Errors are :mod:`bncli.errors` exceptions; the HTML file appears only if
    everything succeeded.
    """
    import time

    from .report import Reporter

    reporter = reporter or Reporter()
    _check_options(use, bins)
    if html == files.STDOUT:
        raise UsageError("--html needs a file name, not '-'", hint="e.g. --html report.html; --json prints to stdout")
    if html is not None:
        files.check_clobber([p for p in (stats_path, data) if p], html=html)
    started = time.perf_counter()
    stats = load_stats(stats_path)
    page = files.AtomicFile(html, what="HTML report") if html is not None else None
    try:
        scan = scan_data(stats, data, use=use, bins=bins, io=io, reporter=reporter) if data is not None else None
        report = build_report(stats, stats_path, use=use, scan=scan)
        if page is not None:
            page.write(render_html(report).encode("utf-8"))
        if as_json:
            sys.stdout.write(to_json(report))
            sys.stdout.flush()
        else:
            render_terminal(report)
        if page is not None:
            page.commit()
            page = None
    finally:
        if page is not None:
            page.discard()
    reporter.summary(_summary_line(report, html, time.perf_counter() - started))
    return report


def _check_options(use: str, bins: int) -> None:
    if use not in ("running", "global"):
        raise UsageError(f"--use {use!r}: must be 'running' or 'global'")
    if isinstance(bins, bool) or not isinstance(bins, int) or not MIN_BINS <= bins <= MAX_BINS:
        raise UsageError(f"--bins {bins!r}: must be an integer from {MIN_BINS} to {MAX_BINS}")


def _summary_line(report: dict, html: str | None, seconds: float) -> str:
    parts = [f"inspect: {len(report['features'])} features"]
    d = report["data"]
    if d is not None:
        rate = d["rows"] / seconds if seconds > 0 else float("inf")
        parts.append(f"{d['rows']:,} rows of {d['path']} in {seconds:.2f} s ({rate:,.0f} rows/s)")
    if html:
        parts.append(f"wrote {html}")
    return ", ".join(parts)


# -- the report --------------------------------------------------------------------------


@dataclass
class Scan:
    """What one pass over ``--data`` found: per-feature histograms and the row count."""

    path: str
    rows: int
    bins: int
    histograms: list  # of FeatureHistograms, in stats.columns order


def build_report(stats: Stats, stats_path: str, *, use: str = "running", scan: Scan | None = None) -> dict:
    """Everything ``inspect`` shows, as a strict-JSON-ready dict (NaN -> None).

    Deterministic (no timings), so ``--json`` output can be compared between runs.
    """
    diag = stats.diagnostics()
    flagged = {c: [k for k, names in diag.items() if c in names] for c in stats.columns}
    s = stats.state
    with np.errstate(invalid="ignore"):
        std = np.sqrt(stats.var_sample)
        running_std = np.sqrt(s.running_var)
    features = []
    for i, name in enumerate(stats.columns):
        features.append(
            {
                "name": name,
                "count": int(s.count[i]),
                "missing": int(s.nan_count[i]),
                "mean": _num(s.mean[i]),
                "std": _num(std[i]),
                "min": _num(s.min[i]),
                "max": _num(s.max[i]),
                "running_mean": _num(s.running_mean[i]),
                "running_std": _num(running_std[i]),
                "batches_tracked": int(s.tracked[i]),
                "weight": _num(stats.weight[i]),
                "bias": _num(stats.bias[i]),
                "flags": flagged[name],
                "histogram": scan.histograms[i].to_dict() if scan else None,
            }
        )
    return {
        "bncli_version": __version__,
        "stats_file": stats_path,
        "params": {
            "batch_size": stats.params.batch_size,
            "momentum": stats.params.momentum,
            "eps": stats.params.eps,
            "drop_last": stats.params.drop_last,
        },
        "provenance": stats.provenance,
        "use": use,
        "features": features,
        "diagnostics": diag,
        "data": None
        if scan is None
        else {"path": scan.path, "rows": scan.rows, "bins": scan.bins, "out_of_range": OUT_OF_RANGE_POLICY},
    }


def to_json(report: dict) -> str:
    """Strict JSON (``null`` for undefined values, never NaN)."""
    return json.dumps(report, indent=1, allow_nan=False, ensure_ascii=False) + "\n"


def _num(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


# -- histograms ---------------------------------------------------------------------------


@dataclass
class Histogram:
    """Counts of values in ``bins`` equal-width bins over ``[lo, hi]``.

    Bins are half-open ``[e_k, e_k+1)`` except the last, which includes ``hi``
    (numpy.histogram's rule).  Values below ``lo`` or above ``hi`` are counted
    in ``below`` / ``above``, not in the edge bins.  NaN must be removed first.
    """

    lo: float
    hi: float
    counts: np.ndarray
    below: int = 0
    above: int = 0

    @classmethod
    def over(cls, lo: float, hi: float, bins: int) -> Histogram | None:
        """An empty histogram over ``[lo, hi]``; None if the range is undefined
        (NaN or infinite).  A zero-width range is widened by 0.5 each side."""
        lo, hi = float(lo), float(hi)
        if not (math.isfinite(lo) and math.isfinite(hi) and math.isfinite(hi - lo)):
            return None
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        return cls(lo, hi, np.zeros(bins, dtype=np.int64))

    @property
    def edges(self) -> np.ndarray:
        """The ``bins + 1`` bin edges (the ones numpy.histogram uses)."""
        return np.linspace(self.lo, self.hi, len(self.counts) + 1)

    def add(self, values: np.ndarray) -> None:
        """Count a 1-D array of finite values."""
        if values.size == 0:
            return
        counts, _ = np.histogram(values, bins=len(self.counts), range=(self.lo, self.hi))
        self.counts += counts
        self.below += int(np.count_nonzero(values < self.lo))
        self.above += int(np.count_nonzero(values > self.hi))

    def to_dict(self) -> dict:
        return {
            "lo": self.lo,
            "hi": self.hi,
            "edges": [float(e) for e in self.edges],
            "counts": [int(c) for c in self.counts],
            "below": self.below,
            "above": self.above,
        }


@dataclass
class FeatureHistograms:
    """One feature's raw and normalized histograms, plus its value/missing counts."""

    raw: Histogram | None
    normalized: Histogram | None
    values: int = 0
    missing: int = 0

    def to_dict(self) -> dict:
        return {
            "values": self.values,
            "missing": self.missing,
            "raw": self.raw.to_dict() if self.raw else None,
            "normalized": self.normalized.to_dict() if self.normalized else None,
        }


def empty_histograms(stats: Stats, use: str, bins: int) -> list[FeatureHistograms]:
    """Histograms with the ranges fixed from the stats file, before any data is read.

    Raw: the fitted ``[min, max]``.  Normalized: those two values sent through
    the same :func:`bncli.norm.normalize` call as the data, so training data
    maps exactly onto the range (none of it falls ``below`` or ``above`` by
    rounding).  A negative weight flips the mapped ends; they are sorted.
    """
    s = stats.state
    mean, var = stats.location_scale(use)
    ends = np.stack([s.min, s.max], axis=1)  # (features, 2)
    with np.errstate(all="ignore"):
        mapped = norm.normalize(ends, mean, var, stats.params.eps, stats.weight, stats.bias)
    out = []
    for i in range(len(stats.columns)):
        raw = Histogram.over(s.min[i], s.max[i], bins)
        lo, hi = np.sort(mapped[i])
        out.append(FeatureHistograms(raw, Histogram.over(lo, hi, bins) if raw else None))
    return out


def scan_data(stats: Stats, path: str, *, use="running", bins=30, io=None, reporter=None) -> Scan:
    """Stream ``path`` once and histogram every feature before and after transform.

    The data are normalized exactly as
    ``bncli transform --use USE`` would (missing values stay missing and are
    counted, ``--inf missing`` turns infinities into missing values).
    """
    from . import pipeline
    from .report import Reporter

    io = io or pipeline.IOOptions()
    reporter = reporter or Reporter()
    hists = empty_histograms(stats, use, bins)
    mean, var = stats.location_scale(use)
    features = list(stats.columns)
    rows = 0
    src = pipeline._Inputs([path], io)  # also expands globs and dataset directories
    try:
        missing = [c for c in features if c not in src.columns]
        if missing:
            raise DataError(
                f"{src.first.source}: fitted feature column(s) missing from the data: {', '.join(map(repr, missing))}",
                hint="--data needs every column named in the stats file",
            )
        # e.g. a Parquet feature column that is not numeric
        pipeline._check_transform_input(src.columns, src.sample_types, src.format, src.first.source, features)
        with np.errstate(all="ignore"), reporter.progress("inspect", src.total_bytes) as bar:
            for chunk in pipeline._prefetch(src.chunks(features)):
                x = pipeline._features_array(chunk, features, io.inf)
                y = norm.normalize(x, mean, var, stats.params.eps, stats.weight, stats.bias)
                for h, xi, yi in zip(hists, x, y, strict=True):
                    _count(h, xi, yi)
                rows += chunk.table.num_rows
                bar.update(rows, src.bytes_read)
    finally:
        src.close()
    return Scan(path="<stdin>" if path == "-" else path, rows=rows, bins=bins, histograms=hists)


def _count(h: FeatureHistograms, x: np.ndarray, y: np.ndarray) -> None:
    present = ~np.isnan(x)
    n = int(np.count_nonzero(present))
    h.values += n
    h.missing += x.size - n
    if h.raw is not None:
        h.raw.add(x[present])
    if h.normalized is not None:
        h.normalized.add(y[present])


# -- number formatting -------------------------------------------------------------------

DASH = "—"


def fmt(v, digits: int = 6) -> str:
    """A float in ``digits`` significant digits; None/NaN as an em dash."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return DASH
    if isinstance(v, int):
        return f"{v:,}"
    text = f"{v:.{digits}g}"
    return "0" if text == "-0" else text


def fmt_label(v: float, digits: int = 6) -> str:
    """An axis label: ``digits`` significant digits, thousands separators and no
    exponent for magnitudes from 0.001 to 1e9 (206,537 rather than 2.06537e+05)."""
    if v is None or not math.isfinite(v):
        return DASH
    if v == 0:
        return "0"
    if not 1e-3 <= abs(v) < 1e9:
        return f"{v:.{digits}g}"
    decimals = digits - 1 - math.floor(math.log10(abs(v)))
    r = round(v, decimals)
    if decimals <= 0:
        return f"{r:,.0f}"
    text = f"{r:,.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def fmt_count(n: int) -> str:
    return f"{n:,}"


def fmt_bytes(n) -> str:
    if n is None:
        return "?"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def param_lines(report: dict) -> list[tuple[str, str]]:
    """(label, value) pairs for the fit parameters."""
    p = report["params"]
    momentum = "cumulative" if p["momentum"] is None else fmt(p["momentum"])
    return [
        ("batch size", fmt_count(p["batch_size"])),
        ("momentum", momentum),
        ("eps", fmt(p["eps"])),
        ("drop last", "yes" if p["drop_last"] else "no"),
    ]


def provenance_lines(report: dict) -> list[tuple[str, str]]:
    """(label, value) pairs for where the stats came from (what the file records)."""
    p = report["provenance"] or {}
    out = [("bncli version", str(p.get("bncli_version", DASH))), ("created", _created(p.get("created")))]
    inputs = p.get("inputs") or []
    descr = [
        f"{i.get('path', '?')} ({i.get('format', '?')}, {fmt_count(i.get('rows', 0))} rows, "
        f"{fmt_bytes(i.get('bytes'))})"
        for i in inputs
        if isinstance(i, dict)
    ]
    out.append(("inputs", "; ".join(descr) if descr else DASH))
    out.append(("rows", fmt_count(p["rows"]) if isinstance(p.get("rows"), int) else DASH))
    if p.get("resumed_from"):
        out.append(("rows in all", fmt_count(p.get("rows_total", 0)) + " (resumed from an earlier fit)"))
    return out


def _created(value) -> str:
    if not isinstance(value, str):
        return DASH
    try:
        return datetime.datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    except ValueError:
        return value


TABLE_COLUMNS = (
    # key, heading
    ("count", "count"),
    ("missing", "missing"),
    ("mean", "mean"),
    ("std", "std"),
    ("min", "min"),
    ("max", "max"),
    ("running_mean", "running mean"),
    ("running_std", "running std"),
    ("batches_tracked", "batches"),
)


def _affine_shown(report: dict) -> bool:
    """Show weight/bias columns only when some feature is not the identity (1, 0)."""
    return any(f["weight"] != 1.0 or f["bias"] != 0.0 for f in report["features"])


def table_columns(report: dict) -> list[tuple[str, str]]:
    cols = list(TABLE_COLUMNS)
    if _affine_shown(report):
        cols += [("weight", "weight"), ("bias", "bias")]
    return cols


def flag_labels(feature: dict) -> list[str]:
    return [FLAGS[k][0] for k in feature["flags"]]


# -- terminal ---------------------------------------------------------------------------------


def render_terminal(report: dict, file=None) -> None:
    """Print the report with rich on ``file`` (default stdout).

    Nothing is ever truncated.  On a terminal the layout adapts to its width:
    long feature names fold onto more lines, the table splits in two (whole-data
    and running statistics) when it cannot fit, the two histograms of a feature
    stack when they cannot sit side by side, and more than a screen's width of
    bins is drawn with neighbouring bins merged.  Elsewhere (a pipe, a file)
    the text is laid out as wide as its widest line and written without
    styles, escape codes or trailing blanks.
    """
    import io as _io

    from rich.console import Console
    from rich.text import Text

    out = file or sys.stdout
    console = Console(file=out, highlight=False)
    if console.is_terminal:
        for part in terminal_renderables(report, console.width):
            console.print(part)
        return
    parts = terminal_renderables(report, None)
    wide = console.options.update(max_width=100_000)
    # Tables and charts set the width; prose (Text) wraps to it.
    width = max([80] + [console.measure(p, options=wide).maximum for p in parts if not isinstance(p, Text)])
    buffer = _io.StringIO()
    plain = Console(file=buffer, width=width, highlight=False, force_terminal=False, color_system=None)
    for part in parts:
        plain.print(part)
    out.write("\n".join(line.rstrip() for line in buffer.getvalue().split("\n")))
    out.flush()


def terminal_renderables(report: dict, width: int | None) -> list:
    """The rich renderables of the terminal view, top to bottom, laid out for
    ``width`` columns (None: as wide as they need)."""
    from rich.text import Text

    parts = [_rich_header(report), *_rich_tables(report, width)]
    legend = _legend(report)
    if legend:
        parts.append(Text(legend, style="dim"))
    if report["data"] is not None:
        d = report["data"]
        parts.append(
            Text.assemble(
                ("\nDistributions of ", "bold"),
                (d["path"], "bold"),
                (
                    f" ({fmt_count(d['rows'])} rows, {d['bins']} bins): raw values, and after transform "
                    f"with the {report['use']} statistics.  The ranges are the fitted min..max and its image "
                    "under the transform; values outside them are counted as below/above, not binned.",
                    "",
                ),
            )
        )
        parts += [_rich_feature_chart(report, f, width) for f in report["features"]]
    return parts


def _used_mean(report: dict, feature: dict):
    """The mean that transform subtracts (running or global, per ``--use``)."""
    return feature["mean"] if report["use"] == "global" else feature["running_mean"]


def _rich_header(report: dict):
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row(Text("bncli stats", style="bold cyan"), Text(report["stats_file"], style="bold"))
    grid.add_row("parameters", "   ".join(f"{k} {v}" for k, v in param_lines(report)))
    for label, value in provenance_lines(report):
        grid.add_row(label, value)
    return grid


#: The table's columns split here (whole-data | running) when a terminal is too narrow.
_SPLIT_AT = "running_mean"
_NAME_MIN = 16  # a feature-name column narrower than this folds


def _rich_tables(report: dict, width: int | None) -> list:
    """One table, or two (whole-data, then running statistics) if one cannot fit ``width``."""
    cols = table_columns(report)
    if width is None or _table_width(report, cols, True) <= width:
        return [_rich_table(report, cols, flags=True)]
    cut = [k for k, _ in cols].index(_SPLIT_AT)
    return [
        _rich_table(report, cols[:cut], flags=False, title="whole-data statistics"),
        _rich_table(report, cols[cut:], flags=True, title="running statistics (PyTorch)"),
    ]


def _table_width(report: dict, cols, flags: bool) -> int:
    """Narrowest the table can be without folding a number: names folded to
    ``_NAME_MIN``, numbers kept whole, flags one per line; 3 columns of padding each."""
    names = max(len(f["name"]) for f in report["features"]) if report["features"] else 7
    width = min(max(names, 7), _NAME_MIN)
    for key, heading in cols:
        width += 3 + max([len(heading)] + [len(fmt(f[key])) for f in report["features"]])
    if flags:
        width += 3 + max([5] + [len(x) for f in report["features"] for x in flag_labels(f)])
    return width


def _rich_table(report: dict, cols, *, flags: bool, title: str | None = None):
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(
        box=box.SIMPLE_HEAD,
        header_style="bold",
        pad_edge=False,
        title=title,
        title_justify="left",
        title_style="bold dim",
    )
    table.add_column("feature", style="bold", overflow="fold", min_width=min(_NAME_MIN, 7))
    for _, heading in cols:
        table.add_column(heading, justify="right", no_wrap=True, overflow="fold")
    if flags:
        table.add_column("flags", style="yellow", overflow="fold")
    for f in report["features"]:
        row = [Text(f["name"])] + [fmt(f[key]) for key, _ in cols]
        if flags:
            row.append(" ".join(flag_labels(f)))
        table.add_row(*row)
    return table


def _legend(report: dict) -> str:
    used = [k for k in FLAGS if report["diagnostics"].get(k)]
    return "  ".join(f"{FLAGS[k][0]}: {FLAGS[k][1]}." for k in used)


def _rich_feature_chart(report: dict, feature: dict, width: int | None):
    """A feature's title line and its two histograms, side by side if they fit ``width``."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    h = feature["histogram"]
    title = Text.assemble(
        ("\n" + feature["name"], "bold"),
        (f"   {fmt_count(h['values'])} values, {fmt_count(h['missing'])} missing", "dim"),
        overflow="fold",
    )
    mean = _used_mean(report, feature)
    charts = [
        (h["raw"], "raw", "cyan", mean, f"┴ mean {fmt(mean)}"),
        (
            h["normalized"],
            f"after transform ({report['use']})",
            "magenta",
            feature["bias"],
            f"┴ mean → {fmt(feature['bias'])}",
        ),
    ]
    gap = 4
    columns = None
    if width is not None:
        per_chart = max(
            len(c) for c in [(h["raw"] or {}).get("counts", [])] + [(h["normalized"] or {}).get("counts", [])]
        )
        label = 12  # room for the y-axis label and the axis line
        side_by_side = 2 * (per_chart + label) + gap <= width
        columns = per_chart if side_by_side or per_chart + label <= width else max(8, width - label)
        if not side_by_side:
            return Group(title, *[_text_chart(*c, columns=columns) for c in charts])
    pair = Table.grid(padding=(0, gap))
    pair.add_column(no_wrap=True)
    pair.add_column(no_wrap=True)
    pair.add_row(*[_text_chart(*c, columns=columns) for c in charts])
    return Group(title, pair)


def merge_bins(hist: dict, columns: int | None) -> dict:
    """``hist`` with neighbouring bins summed so that at most ``columns`` remain
    (groups of ``ceil(bins / columns)`` bins; the last group may be smaller)."""
    n = len(hist["counts"])
    if columns is None or n <= columns:
        return hist
    k = -(-n // columns)
    counts = [sum(hist["counts"][i : i + k]) for i in range(0, n, k)]
    edges = hist["edges"][::k] + ([hist["edges"][-1]] if n % k else [])
    return {**hist, "counts": counts, "edges": edges, "merged": k}


def chart_lines(hist: dict | None, rows: int = TERMINAL_ROWS, marker: float | None = None) -> list[str]:
    """A histogram as plain text: ``rows`` lines of block characters (one
    column per bin, 8 levels per line, any non-empty bin at least one level),
    a y axis labelled with the largest count and 0, an x axis with a ``┴`` at
    ``marker`` (the mean, or 0 after transform) and the range ends below it,
    then the number of values out of range, if any."""
    if hist is None:
        return ["(undefined: no fitted range)"]
    counts = hist["counts"]
    top = max(counts) or 1
    levels = [0 if c == 0 else max(1, round(c / top * rows * 8)) for c in counts]
    ylab = fmt_count(max(counts))
    pad = len(ylab)
    lines = []
    for r in range(rows):
        base = (rows - 1 - r) * 8
        bar = "".join(_BLOCKS[min(8, max(0, lv - base))] for lv in levels)
        label = ylab if r == 0 else ""
        lines.append(f"{label:>{pad}} {'┤' if r == 0 else '│'}{bar}")
    axis = ["─"] * len(counts)
    k = _bin_of(hist, marker)
    if k is not None:
        axis[k] = "┴"
    lines.append(f"{'0':>{pad}} └{''.join(axis)}")
    lo, hi = fmt(hist["lo"]), fmt(hist["hi"])
    gap = max(1, len(counts) + 1 - len(lo) - len(hi))
    lines.append(" " * (pad + 1) + lo + " " * gap + hi)
    extra = []
    if hist["below"]:
        extra.append(f"{fmt_count(hist['below'])} below {lo}")
    if hist["above"]:
        extra.append(f"{fmt_count(hist['above'])} above {hi}")
    if extra:
        lines.append(" " * (pad + 1) + "out of range: " + ", ".join(extra))
    return lines


def _bin_of(hist: dict, value) -> int | None:
    if value is None or not (hist["lo"] <= value <= hist["hi"]):
        return None
    n = len(hist["counts"])
    return min(n - 1, int((value - hist["lo"]) / (hist["hi"] - hist["lo"]) * n))


def _text_chart(hist, title: str, color: str, marker, marker_note: str, columns: int | None = None):
    from rich.text import Text

    if hist is not None:
        hist = merge_bins(hist, columns)
    text = Text()
    text.append(title, style="bold " + color)
    if hist is not None and _bin_of(hist, marker) is not None:
        text.append("   " + marker_note, style="dim")
    if hist is not None and hist.get("merged"):
        text.append(f"   ({hist['merged']} bins per column)", style="dim")
    text.append("\n")
    lines = chart_lines(hist, marker=marker)
    for i, line in enumerate(lines):
        if i < TERMINAL_ROWS and hist is not None:
            cut = line.index("┤" if i == 0 else "│") + 1
            text.append(line[:cut], style="dim")
            text.append(line[cut:], style=color)
        elif hist is not None and i > TERMINAL_ROWS + 1:
            text.append(line, style="yellow")  # the out-of-range note
        else:
            text.append(line, style="dim")
        if i < len(lines) - 1:
            text.append("\n")
    return text


# -- HTML ---------------------------------------------------------------------------------------

SVG_W, SVG_H = 440, 216
_M_LEFT, _M_RIGHT, _M_TOP, _M_BOTTOM = 58, 16, 30, 38
RAW_COLOR, NORM_COLOR = "#3b6ea8", "#d9822b"


def render_html(report: dict) -> str:
    """A self-contained page (inline CSS and SVG, no scripts or external assets)."""
    e = _html.escape
    title = f"bncli inspect — {report['stats_file']}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        f'<header><h1>bncli inspect</h1><p class="file">{e(report["stats_file"])}</p></header>',
        '<section class="meta">',
        _html_dl("Parameters", param_lines(report)),
        _html_dl("Provenance", provenance_lines(report)),
        "</section>",
        "<section><h2>Features</h2>",
        _html_table(report),
    ]
    legend = [k for k in FLAGS if report["diagnostics"].get(k)]
    if legend:
        parts.append('<ul class="legend">')
        parts += [f'<li><span class="flag">{e(FLAGS[k][0])}</span> {e(FLAGS[k][1])}</li>' for k in legend]
        parts.append("</ul>")
    parts.append("</section>")
    if report["data"] is not None:
        parts.append(_html_distributions(report))
    else:
        parts.append(
            '<section><p class="note">No histograms: run <code>bncli inspect STATS.json --data FILE --html '
            "FILE.html</code> to draw each feature before and after transform.</p></section>"
        )
    parts.append(f"<footer>Generated by bncli {e(__version__)}.</footer></main></body></html>\n")
    return "\n".join(parts)


def _html_dl(heading: str, rows) -> str:
    e = _html.escape
    items = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in rows)
    return f'<div class="card"><h2>{e(heading)}</h2><dl>{items}</dl></div>'


def _html_table(report: dict) -> str:
    e = _html.escape
    cols = table_columns(report)
    head = "<th>feature</th>" + "".join(f'<th class="num">{e(h)}</th>' for _, h in cols) + "<th>flags</th>"
    rows = []
    for f in report["features"]:
        cells = "".join(f'<td class="num">{e(fmt(f[k]))}</td>' for k, _ in cols)
        flags = " ".join(f'<span class="flag">{e(x)}</span>' for x in flag_labels(f))
        rows.append(f'<tr><td class="name">{e(f["name"])}</td>{cells}<td class="flags">{flags}</td></tr>')
    body = "".join(rows)
    return f'<div class="scroll"><table class="stats"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _html_distributions(report: dict) -> str:
    e = _html.escape
    d = report["data"]
    out = [
        "<section><h2>Distributions before and after transform</h2>",
        f'<p class="note">{e(d["path"])}: {fmt_count(d["rows"])} rows, {d["bins"]} equal-width bins. '
        f"Left, the raw values over the fitted [min, max]; right, the same values after "
        f"<code>bncli transform --use {e(report['use'])}</code>, over the image of that range. "
        "The dashed line marks the mean used by transform (left) and where it lands (right). "
        "Values outside the range are not binned but counted as below/above.</p>",
    ]
    for f in report["features"]:
        h = f["histogram"]
        marker = _used_mean(report, f)
        out.append('<div class="feature">')
        out.append(
            f'<h3>{e(f["name"])} <span class="facts">{fmt_count(h["values"])} values, '
            f'{fmt_count(h["missing"])} missing</span></h3><div class="pair">'
        )
        out.append(svg_histogram(h["raw"], "raw values", RAW_COLOR, marker))
        out.append(svg_histogram(h["normalized"], f"after transform ({report['use']})", NORM_COLOR, f["bias"]))
        out.append("</div></div>")
    out.append("</section>")
    return "\n".join(out)


def nice_step(span: float, target: int = 4) -> float:
    """A round tick step (1, 2, 2.5 or 5 times a power of ten) giving about ``target`` intervals."""
    if not span > 0:
        return 1.0
    raw = span / target
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * magnitude >= raw * (1 - 1e-9):
            return m * magnitude
    return 10 * magnitude


def _count_axis(top: int) -> tuple[int, int]:
    """(axis maximum, tick step) for counts: whole numbers, the maximum a round multiple of the step."""
    step = max(1, int(nice_step(max(top, 1), 4)))
    return max(step, -(-top // step) * step), step


_CHAR_PX = 6.6  # approximate advance of one character of the 11 px axis labels


def _span(x: float, text: str, anchor: str) -> tuple[float, float]:
    """Approximate horizontal extent of an SVG label at ``x`` with ``text-anchor``."""
    width = len(text) * _CHAR_PX
    start = {"start": x, "middle": x - width / 2, "end": x - width}[anchor]
    return start, start + width


def _overlaps(span, spans, gap: float = 8.0) -> bool:
    return any(span[0] < b + gap and a < span[1] + gap for a, b in spans)


def svg_histogram(hist: dict | None, title: str, color: str, marker=None) -> str:
    """One histogram as an inline SVG.

    A ``rect.bar`` per bin whose height is proportional to its count
    (``data-count`` holds it) on a count axis from 0 to a round maximum; the x
    axis labelled with the range ends (``text.xlabel.lo`` / ``.hi``) and round
    values between; a dashed line at ``marker`` (the mean); and the below/above
    counts when some values fell outside the range.
    """
    e = _html.escape
    w, h = SVG_W, SVG_H
    x0, x1 = _M_LEFT, w - _M_RIGHT
    y0, y1 = h - _M_BOTTOM, _M_TOP  # y0: the baseline, y1: the top of the count axis
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="hist" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" role="img" aria-label="{e(title)}">',
        f'<text class="title" x="{x0}" y="16">{e(title)}</text>',
    ]
    if hist is None:
        out.append(
            f'<text class="empty" x="{(x0 + x1) / 2}" y="{(y0 + y1) / 2}" text-anchor="middle">'
            "undefined: no fitted range</text></svg>"
        )
        return "".join(out)
    counts, lo, hi = hist["counts"], hist["lo"], hist["hi"]
    n = len(counts)
    ymax, ystep = _count_axis(max(counts))
    to_x = lambda v: x0 + (v - lo) / (hi - lo) * (x1 - x0)  # noqa: E731
    to_y = lambda c: y0 - c / ymax * (y0 - y1)  # noqa: E731
    out.append('<g class="grid">')
    for c in range(ystep, ymax + 1, ystep):
        out.append(f'<line x1="{x0}" x2="{x1}" y1="{to_y(c):.2f}" y2="{to_y(c):.2f}"/>')
    out.append("</g>")
    out.append('<g class="yticks">')
    for c in range(0, ymax + 1, ystep):
        out.append(f'<text class="ylabel" x="{x0 - 6}" y="{to_y(c) + 4:.2f}" text-anchor="end">{fmt_count(c)}</text>')
    out.append("</g>")
    bw = (x1 - x0) / n
    out.append(f'<g class="bars" fill="{color}">')
    for k, c in enumerate(counts):
        top = to_y(c)
        close = "]" if k == n - 1 else ")"
        out.append(
            f'<rect class="bar" x="{x0 + k * bw + 0.5:.3f}" y="{top:.3f}" width="{max(bw - 1, 0.5):.3f}" '
            f'height="{y0 - top:.3f}" data-count="{c}"><title>[{e(fmt(hist["edges"][k]))}, '
            f"{e(fmt(hist['edges'][k + 1]))}{close}: {fmt_count(c)}</title></rect>"
        )
    out.append("</g>")
    out.append(f'<line class="axis" x1="{x0}" x2="{x1}" y1="{y0}" y2="{y0}"/>')
    out.append(f'<line class="axis" x1="{x0}" x2="{x0}" y1="{y0}" y2="{y1}"/>')
    lo_text, hi_text = fmt_label(lo), fmt_label(hi)
    taken = [_span(x0, lo_text, "start"), _span(x1, hi_text, "end")]  # label extents on the first row
    for cls, x, text, anchor in (("lo", x0, lo_text, "start"), ("hi", x1, hi_text, "end")):
        out.append(f'<line class="tick" x1="{x}" x2="{x}" y1="{y0}" y2="{y0 + 4}"/>')
        out.append(f'<text class="xlabel {cls}" x="{x}" y="{y0 + 16}" text-anchor="{anchor}">{e(text)}</text>')
    if marker is not None and lo <= marker <= hi:
        mx = to_x(marker)
        label = "mean " + fmt_label(marker, 4)
        span = _span(mx, label, "middle")
        row = 16
        if _overlaps(span, taken):
            row = 30  # next row down, clear of the range labels
        else:
            taken.append(span)
        out.append(f'<line class="marker" x1="{mx:.2f}" x2="{mx:.2f}" y1="{y0}" y2="{y1}"/>')
        out.append(f'<text class="mlabel" x="{mx:.2f}" y="{y0 + row}" text-anchor="middle">{e(label)}</text>')
    out.append('<g class="xticks">')
    step = nice_step(hi - lo, 5)
    for k in range(math.ceil(lo / step), math.floor(hi / step) + 1):
        x, text = to_x(k * step), fmt_label(k * step)
        span = _span(x, text, "middle")
        if _overlaps(span, taken):
            continue
        taken.append(span)
        out.append(f'<line class="tick" x1="{x:.2f}" x2="{x:.2f}" y1="{y0}" y2="{y0 + 4}"/>')
        out.append(f'<text class="xtick" x="{x:.2f}" y="{y0 + 16}" text-anchor="middle">{e(text)}</text>')
    out.append("</g>")
    notes = []
    if hist["below"]:
        notes.append(f"{fmt_count(hist['below'])} below range")
    if hist["above"]:
        notes.append(f"{fmt_count(hist['above'])} above range")
    if notes:
        out.append(f'<text class="outside" x="{x1}" y="16" text-anchor="end">{e(", ".join(notes))}</text>')
    out.append("</svg>")
    return "".join(out)


_CSS = """
:root{--fg:#1f2328;--muted:#656d76;--line:#d0d7de;--bg:#ffffff;--panel:#f6f8fa;--warn:#9a6700;--warnbg:#fff8c5}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",
Helvetica,Arial,sans-serif}
main{max-width:1000px;margin:0 auto;padding:28px 24px 40px}
header{border-bottom:1px solid var(--line);margin-bottom:18px;padding-bottom:10px}
h1{font-size:22px;margin:0}
h2{font-size:16px;margin:22px 0 10px}
h3{font-size:15px;margin:0 0 6px;overflow-wrap:anywhere}
.file{margin:2px 0 0;color:var(--muted);font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
overflow-wrap:anywhere}
.meta{display:grid;grid-template-columns:1fr 1fr;gap:16px}
.card{background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:2px 14px 10px}
.card h2{margin:10px 0 6px;font-size:13px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
dl{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;margin:0}
dt{color:var(--muted)}dd{margin:0;overflow-wrap:anywhere}
.scroll{overflow-x:auto}
table.stats{border-collapse:collapse;width:100%;font-size:13px}
table.stats th,table.stats td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
table.stats th{background:var(--panel);font-weight:600}
table.stats td.name{font-weight:600;white-space:normal;overflow-wrap:anywhere;min-width:9em}
table.stats td.flags{white-space:normal;min-width:8em}
.num{text-align:right!important;font-variant-numeric:tabular-nums}
.flag{display:inline-block;background:var(--warnbg);color:var(--warn);border:1px solid #eac54f;border-radius:10px;
padding:0 7px;font-size:12px;margin-right:4px}
.legend{list-style:none;padding:0;margin:8px 0 0;color:var(--muted);font-size:12.5px}
.legend li{margin:3px 0}
.note{color:var(--muted)}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px;background:var(--panel);
padding:1px 4px;border-radius:4px}
.feature{border:1px solid var(--line);border-radius:6px;padding:12px 14px 6px;margin:14px 0}
.facts{font-weight:400;color:var(--muted);font-size:13px;margin-left:8px}
.pair{display:flex;flex-wrap:wrap;gap:12px 24px}
svg.hist{font-size:11px;fill:var(--fg)}
svg.hist .title{font-weight:600;font-size:12px}
svg.hist .grid line{stroke:#eaeef2}
svg.hist .axis{stroke:#8c959f}
svg.hist .ylabel,svg.hist .xlabel,svg.hist .xtick{fill:var(--muted)}
svg.hist .tick{stroke:#8c959f}
svg.hist .marker{stroke:var(--fg);stroke-dasharray:4 3;stroke-width:1}
svg.hist .mlabel{fill:var(--fg);font-weight:600}
svg.hist .outside{fill:var(--warn)}
footer{margin-top:28px;color:var(--muted);font-size:12px;border-top:1px solid var(--line);padding-top:10px}
@media (max-width:720px){.meta{grid-template-columns:1fr}}
"""
