"""The stats file: what ``bncli fit`` learns and ``bncli transform`` applies.

Strict JSON (undefined values are ``null``, never NaN or Infinity), floats
written with ``repr`` so they read back bit-identical, feature lists in
``columns`` order.  ``state_dict`` loads with ``strict=True`` into
``torch.nn.BatchNorm1d(len(columns), eps=params.eps, momentum=params.momentum,
dtype=torch.float64)``.  The schema is documented in docs/stats-format.md.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from . import norm
from .errors import StatsFileError
from .training import TrainState

FORMAT = "bncli-stats"
VERSION = 1

#: A float momentum that still leaves more than this weight on the initial
#: running values (0 and 1) triggers a warning.
INIT_WEIGHT_WARN = 0.05
#: eps larger than this fraction of a feature's variance triggers a warning.
EPS_WARN_FRACTION = 0.01
#: more than this fraction of missing values triggers a warning.
MISSING_WARN_FRACTION = 0.5


@dataclass
class Params:
    """Fit parameters.  ``momentum`` None means the cumulative average."""

    batch_size: int = 256
    momentum: float | None = None
    eps: float = 1e-5
    drop_last: bool = False

    def to_dict(self) -> dict:
        return {
            "batch_size": self.batch_size,
            "momentum": self.momentum,
            "eps": self.eps,
            "drop_last": self.drop_last,
            "affine": True,
            "track_running_stats": True,
            "singleton": "merge",
            "nan": "ignore",
        }


@dataclass
class Stats:
    """Fitted statistics of ``columns`` (the features), in that order."""

    columns: list[str]
    params: Params
    weight: np.ndarray
    bias: np.ndarray
    state: TrainState
    provenance: dict = field(default_factory=dict)

    @classmethod
    def initial(cls, columns: list[str], params: Params) -> Stats:
        f = len(columns)
        return cls(list(columns), params, np.ones(f), np.zeros(f), TrainState.initial(f))

    # -- what transform applies -------------------------------------------------
    def location_scale(self, use: str = "running") -> tuple[np.ndarray, np.ndarray]:
        """(mean, variance) for inference: running statistics or exact whole-data
        ones (mean and sample variance; NaN where undefined)."""
        if use == "running":
            return self.state.running_mean, self.state.running_var
        if use == "global":
            return self.state.mean, self.var_sample
        raise ValueError(f"unknown statistics {use!r}")

    @property
    def var(self) -> np.ndarray:
        """Whole-data population variance (NaN where no value was seen)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.state.count > 0, self.state.m2 / self.state.count, np.nan)

    @property
    def var_sample(self) -> np.ndarray:
        """Whole-data sample variance (NaN with fewer than two values)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.state.count > 1, self.state.m2 / (self.state.count - 1), np.nan)

    # -- diagnostics --------------------------------------------------------------
    def diagnostics(self) -> dict[str, list[str]]:
        """Features to warn about, by kind: ``constant``, ``eps_large``,
        ``init_dominated``, ``all_missing``, ``many_missing``."""
        s = self.state
        var = self.var
        total = s.count + s.nan_count
        with np.errstate(invalid="ignore", divide="ignore"):
            kinds = {
                "all_missing": s.count == 0,
                "constant": (s.count > 0) & (var == 0),
                "eps_large": (var > 0) & (self.params.eps > EPS_WARN_FRACTION * var),
                "init_dominated": (s.count > 0) & (s.init_weight > INIT_WEIGHT_WARN),
                "many_missing": (s.count > 0) & (s.nan_count > MISSING_WARN_FRACTION * total),
            }
        return {k: [c for c, flag in zip(self.columns, mask, strict=True) if flag] for k, mask in kinds.items()}

    # -- JSON ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        s = self.state
        return {
            "format": FORMAT,
            "version": VERSION,
            "columns": list(self.columns),
            "num_features": len(self.columns),
            "dtype": "float64",
            "params": self.params.to_dict(),
            "state_dict": {
                "weight": _floats(self.weight),
                "bias": _floats(self.bias),
                "running_mean": _floats(s.running_mean),
                "running_var": _floats(s.running_var),
                "num_batches_tracked": int(s.num_batches_tracked),
            },
            "column_batches_tracked": [int(v) for v in s.tracked],
            "init_weight": _floats(s.init_weight),
            "global": {
                "count": [int(v) for v in s.count],
                "nan_count": [int(v) for v in s.nan_count],
                "mean": _floats(s.mean),
                "m2": _floats(s.m2),
                "var": _floats(self.var),
                "var_sample": _floats(self.var_sample),
                "min": _floats(s.min),
                "max": _floats(s.max),
            },
            "provenance": self.provenance,
        }

    def to_json(self) -> str:
        """Strict JSON, one key per line with each list on a single line (diff-friendly)."""
        return _dumps(self.to_dict()) + "\n"

    @classmethod
    def from_dict(cls, d, source: str = "stats file") -> Stats:
        """Validate and load a parsed stats file; errors name ``source`` and the key."""
        r = _Reader(d, source)
        fmt = r.get(d, "format", str)
        if fmt != FORMAT:
            raise StatsFileError(f"{source}: not a bncli stats file (format is {fmt!r})")
        version = r.get(d, "version", int)
        if version > VERSION:
            raise StatsFileError(
                f"{source}: stats file version {version} is newer than this bncli understands ({VERSION})",
                hint="upgrade bncli",
            )
        columns = r.get(d, "columns", list)
        if not all(isinstance(c, str) for c in columns) or len(set(columns)) != len(columns):
            raise StatsFileError(f"{source}: 'columns' must be a list of distinct names")
        f = len(columns)
        p = r.get(d, "params", dict)
        momentum = p.get("momentum")
        if momentum is not None and not (_is_number(momentum) and 0 <= momentum <= 1):
            raise StatsFileError(f"{source}: params.momentum must be null or a number in [0, 1]")
        eps = r.get(p, "eps", float, "params.eps")
        if not eps > 0:
            raise StatsFileError(f"{source}: params.eps must be positive")
        params = Params(
            batch_size=int(r.get(p, "batch_size", int, "params.batch_size")),
            momentum=None if momentum is None else float(momentum),
            eps=float(eps),
            drop_last=bool(p.get("drop_last", False)),
        )
        sd = r.get(d, "state_dict", dict)
        g = r.get(d, "global", dict)
        state = TrainState.initial(f)
        state.running_mean = r.vector(sd, "running_mean", f, "state_dict.running_mean")
        state.running_var = r.vector(sd, "running_var", f, "state_dict.running_var")
        state.num_batches_tracked = int(r.get(sd, "num_batches_tracked", int, "state_dict.num_batches_tracked"))
        state.tracked = r.vector(d, "column_batches_tracked", f, integer=True, default=state.num_batches_tracked)
        state.init_weight = r.vector(d, "init_weight", f, default=np.nan)
        state.count = r.vector(g, "count", f, "global.count", integer=True)
        state.nan_count = r.vector(g, "nan_count", f, "global.nan_count", integer=True)
        mean = r.vector(g, "mean", f, "global.mean")
        state.shift = np.where(np.isnan(mean), 0.0, mean)
        state.mean_shifted = np.where(state.count > 0, 0.0, np.nan)
        m2 = r.vector(g, "m2", f, "global.m2", default=np.nan)
        if np.isnan(m2[state.count > 0]).any():
            # Older or hand-made files: rebuild M2 from the sample variance.
            var_sample = r.vector(g, "var_sample", f, "global.var_sample")
            m2 = np.where(np.isnan(m2), var_sample * (state.count - 1), m2)
            m2 = np.where(state.count == 1, 0.0, m2)
        state.m2 = m2
        state.min = r.vector(g, "min", f, "global.min")
        state.max = r.vector(g, "max", f, "global.max")
        if np.isnan(state.init_weight).any():
            state.init_weight = (
                np.where(state.tracked > 0, 0.0, 1.0)
                if momentum is None
                else ((1.0 - params.momentum) ** state.tracked)
            )
        return cls(
            columns=list(columns),
            params=params,
            weight=r.vector(sd, "weight", f, "state_dict.weight"),
            bias=r.vector(sd, "bias", f, "state_dict.bias"),
            state=state,
            provenance=d.get("provenance") or {},
        )


def merge_stats(parts: list[Stats], sources: list[str]) -> Stats:
    """Combine stats files of shards fitted separately, in the order given.

    Whole-data statistics merge exactly (Chan et al.).  Running statistics are
    those of one fit over the shards one after another, exactly so when every
    shard but the last filled whole batches (see :func:`norm.merge_running`).
    Features, eps, momentum, batch size and weight/bias must agree.
    """
    first = parts[0]
    for part, src in zip(parts[1:], sources[1:], strict=True):
        what = None
        if part.columns != first.columns:
            what = f"features differ ({', '.join(part.columns)} vs {', '.join(first.columns)})"
        elif part.params.eps != first.params.eps:
            what = f"eps differs ({part.params.eps!r} vs {first.params.eps!r})"
        elif part.params.momentum != first.params.momentum:
            what = f"momentum differs ({part.params.momentum!r} vs {first.params.momentum!r})"
        elif part.params.batch_size != first.params.batch_size:
            what = f"batch size differs ({part.params.batch_size} vs {first.params.batch_size})"
        elif not (np.array_equal(part.weight, first.weight) and np.array_equal(part.bias, first.bias)):
            what = "weight or bias differ"
        if what:
            raise StatsFileError(f"stats file {src}: cannot merge with {sources[0]}: {what}")
    state = TrainState.initial(len(first.columns))
    state.shift = np.where(first.state.count > 0, first.state.mean, 0.0)
    for part in parts:
        s = part.state
        state.running_mean, state.running_var, state.tracked, state.init_weight = norm.merge_running(
            state.running_mean, state.running_var, state.tracked, state.init_weight,
            s.running_mean, s.running_var, s.tracked, s.init_weight, first.params.momentum,
        )  # fmt: skip
        state.num_batches_tracked += s.num_batches_tracked
        # Means about the common shift keep their digits when the data sit far from 0.
        mean_b = np.where(s.count > 0, s.mean - state.shift, np.nan)
        state.count, state.mean_shifted, state.m2 = norm.merge_moments(
            state.count, state.mean_shifted, state.m2, s.count, mean_b, s.m2
        )
        state.nan_count = state.nan_count + s.nan_count
        state.min = np.fmin(state.min, s.min)
        state.max = np.fmax(state.max, s.max)
    merged = Stats(list(first.columns), first.params, first.weight.copy(), first.bias.copy(), state)
    merged.provenance = {"merged_from": [dict(p.provenance, file=src) for p, src in zip(parts, sources, strict=True)],
                         "rows": sum(int(p.provenance.get("rows", 0) or 0) for p in parts)}  # fmt: skip
    return merged


def load_stats(path: str) -> Stats:
    """Read and validate a stats file; every failure is a :class:`StatsFileError`."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise StatsFileError(
            f"stats file {path}: no such file", hint="create it with 'bncli fit ... -s FILE'"
        ) from None
    except IsADirectoryError:
        raise StatsFileError(f"stats file {path}: is a directory") from None
    except OSError as e:
        raise StatsFileError(f"stats file {path}: cannot read: {e.strerror}") from None
    try:
        d = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise StatsFileError(f"stats file {path}: not UTF-8 text, so not a bncli stats file") from None
    except ValueError as e:
        where = f" at line {e.lineno}, column {e.colno}" if hasattr(e, "lineno") else ""
        raise StatsFileError(
            f"stats file {path}: not valid JSON{where} ({getattr(e, 'msg', e)})",
            hint="the file may be truncated; fit again to recreate it",
        ) from None
    if not isinstance(d, dict):
        raise StatsFileError(f"stats file {path}: not a bncli stats file (JSON {type(d).__name__}, not an object)")
    return Stats.from_dict(d, f"stats file {path}")


# -- helpers ----------------------------------------------------------------------


def _dumps(obj, indent: str = "") -> str:
    """``json.dumps`` with nested objects indented and lists kept on one line."""
    if isinstance(obj, dict) and obj:
        inner = indent + "  "
        items = [f"{inner}{json.dumps(k)}: {_dumps(v, inner)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    return json.dumps(obj, allow_nan=False, ensure_ascii=False)


def _floats(a) -> list:
    """float64 values as JSON numbers, with NaN and +-inf as null."""
    return [float(v) if math.isfinite(v) else None for v in np.asarray(a, dtype=np.float64).tolist()]


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _reject_constant(name: str):
    raise ValueError(f"bare {name} is not valid JSON")


class _Reader:
    """Typed access to the parsed JSON with errors that name the key."""

    _MISSING = object()

    def __init__(self, root, source: str):
        self.source = source

    def _fail(self, what: str):
        raise StatsFileError(f"{self.source}: {what}", hint="is this file from 'bncli fit'?")

    def get(self, obj, key: str, kind, name: str | None = None):
        name = name or key
        if not isinstance(obj, dict) or key not in obj:
            self._fail(f"missing key {name!r}")
        v = obj[key]
        ok = _is_number(v) if kind is float else (isinstance(v, kind) and not (kind is int and isinstance(v, bool)))
        if not ok:
            self._fail(f"{name!r} should be a {kind.__name__}, not {type(v).__name__}")
        return v

    def vector(self, obj, key, length, name=None, *, integer=False, default=_MISSING):
        name = name or key
        if not isinstance(obj, dict) or key not in obj:
            if default is self._MISSING:
                self._fail(f"missing key {name!r}")
            return np.full(length, default, dtype=np.int64 if integer else np.float64)
        v = obj[key]
        if not isinstance(v, list) or len(v) != length:
            self._fail(f"{name!r} should be a list of {length} values (one per column)")
        if integer:
            if not all(isinstance(e, int) and not isinstance(e, bool) and e >= 0 for e in v):
                self._fail(f"{name!r} should hold non-negative integers")
            return np.array(v, dtype=np.int64)
        if not all(e is None or _is_number(e) for e in v):
            self._fail(f"{name!r} should hold numbers or null")
        return np.array([np.nan if e is None else float(e) for e in v], dtype=np.float64)
