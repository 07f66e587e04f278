"""Independent reference implementations used by the tests.

Written plainly (a Python loop over batches and features, ``math.fsum`` and
exact fractions), deliberately sharing no code with bncli.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np


def batch_bounds(n_rows: int, batch_size: int, drop_last: bool) -> list[tuple[int, int, bool]]:
    """(start, stop, updates_statistics) for each batch, by the documented rules."""
    bounds = [(a, min(a + batch_size, n_rows)) for a in range(0, n_rows, batch_size)]
    last_partial = bounds and bounds[-1][1] - bounds[-1][0] < batch_size
    if drop_last:
        return [(a, b, not (last_partial and i == len(bounds) - 1)) for i, (a, b) in enumerate(bounds)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        (a, _), (_, b) = bounds[-2], bounds[-1]
        bounds = bounds[:-2] + [(a, b)]
    return [(a, b, True) for a, b in bounds]


def fit_reference(x: np.ndarray, batch_size: int, momentum, eps: float, drop_last: bool = False) -> dict:
    """Training-mode BatchNorm1d, NaN-aware, as specified: a loop over batches.

    ``x`` is (rows, features) with NaN for missing values.
    """
    n, f = x.shape
    y = np.full_like(x, np.nan)
    running_mean = np.zeros(f)
    running_var = np.ones(f)
    tracked = np.zeros(f, dtype=int)
    batches_fed = 0
    for a, b, update in batch_bounds(n, batch_size, drop_last):
        batches_fed += update
        for j in range(f):
            col = x[a:b, j]
            present = ~np.isnan(col)
            vals = col[present]
            m = len(vals)
            if m == 0:
                continue
            mean = math.fsum(vals) / m
            var = math.fsum((vals - mean) ** 2) / m
            out = y[a:b, j]
            out[present] = (vals - mean) / math.sqrt(var + eps)
            y[a:b, j] = out
            if update and m >= 2:
                tracked[j] += 1
                factor = 1.0 / tracked[j] if momentum is None else momentum
                running_mean[j] = (1 - factor) * running_mean[j] + factor * mean
                running_var[j] = (1 - factor) * running_var[j] + factor * var * m / (m - 1)
    return {
        "y": y,
        "running_mean": running_mean,
        "running_var": running_var,
        "num_batches_tracked": batches_fed,
        "column_batches_tracked": tracked,
        **global_reference(x),
    }


def global_reference(x: np.ndarray) -> dict:
    """Exact whole-data statistics per column, in rational arithmetic, rounded once."""
    out = {k: [] for k in ("count", "nan_count", "mean", "var", "var_sample", "min", "max")}
    for j in range(x.shape[1]):
        col = x[:, j]
        vals = [Fraction(float(v)) for v in col[~np.isnan(col)]]
        m = len(vals)
        out["count"].append(m)
        out["nan_count"].append(len(col) - m)
        if m == 0:
            for k in ("mean", "var", "var_sample", "min", "max"):
                out[k].append(None)
            continue
        mean = sum(vals) / m
        m2 = sum((v - mean) ** 2 for v in vals)
        out["mean"].append(float(mean))
        out["var"].append(float(m2 / m))
        out["var_sample"].append(float(m2 / (m - 1)) if m > 1 else None)
        out["min"].append(float(min(vals)))
        out["max"].append(float(max(vals)))
    return out


def output_tolerance(x: np.ndarray, batch_size: int) -> np.ndarray:
    """Absolute tolerance per column for normalized outputs.

    Any float64 evaluation of ``x - mean`` carries an error of about
    ``ulp(|mean|)``, so outputs can only agree to ``eps64 * |mean| / std``: the
    bound the reference implementations themselves obey (torch included).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        mag = np.fmax.reduce(np.abs(x), axis=0)
        spread = np.array([_smallest_batch_std(x[:, j], batch_size) for j in range(x.shape[1])])
        tol = 1e-9 + 64 * np.finfo(float).eps * np.where(spread > 0, mag / spread, 0.0)
    return np.where(np.isfinite(tol), tol, 1e-9)


def _smallest_batch_std(col: np.ndarray, batch_size: int) -> float:
    stds = []
    for a in range(0, len(col), batch_size):
        v = col[a : a + 2 * batch_size]
        v = v[~np.isnan(v)]
        if len(v) > 1 and np.std(v) > 0:
            stds.append(np.std(v))
    return min(stds) if stds else 0.0
