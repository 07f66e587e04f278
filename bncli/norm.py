"""Batch-normalization arithmetic: pure numpy, no I/O.

Conventions for every function here:

* Data blocks are float64 arrays whose *last* axis runs over rows; leading axes
  are (features,) or (features, batches).  Per-batch statistics therefore have
  the data's shape without its last axis.
* NaN marks a missing value.  Every statistic ignores it (NaN-aware, per
  feature), and every output keeps it as NaN.
* All arithmetic and accumulation is float64.  Moments are two-pass
  (mean first, then centred sums); they are merged with Chan, Golub &
  LeVeque's formulas; ``E[x^2] - E[x]^2`` is never used.

The momentum convention is PyTorch's: ``new = (1 - m) * old + m * batch``;
``momentum=None`` is PyTorch's cumulative moving average (factor ``1/k``).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "batch_moments",
    "combine_moments",
    "merge_moments",
    "normalize",
    "denormalize",
    "fold_running",
]


def batch_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count, mean and M2 = sum((x - mean)^2) over the last axis, ignoring NaN.

    M2 uses the corrected two-pass form ``sum(d^2) - sum(d)^2 / n`` with
    ``d = x - mean``, which cancels most of the rounding error of the mean.
    A slice with no values has count 0 and mean/M2 NaN; one value gives M2 0.
    """
    rows = x.shape[-1]
    total = x.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if not np.isnan(total).any():
            # Fast path: no missing value anywhere in this block.
            count = np.full(total.shape, rows, dtype=np.int64)
            mean = total / rows if rows else total * np.nan
            d = x - mean[..., None]
        else:
            present = ~np.isnan(x)
            count = present.sum(axis=-1)
            mean = np.where(present, x, 0.0).sum(axis=-1) / count
            d = np.where(present, x - mean[..., None], 0.0)
        m2 = np.einsum("...i,...i->...", d, d) - np.square(d.sum(axis=-1)) / count
    # The correction can leave a tiny negative value when every d is ~0.
    m2 = np.where(count > 0, np.maximum(m2, 0.0), np.nan)
    return count, mean, m2


def combine_moments(count: np.ndarray, mean: np.ndarray, m2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge per-part (count, mean, M2) along the last axis into one set (Chan et al.).

    ``M2 = sum(M2_j) + sum(n_j * (mean_j - mean)^2)``: the exact multi-way form of
    the pairwise merge.  Parts with count 0 are ignored; if all are empty the
    result is count 0 with NaN mean and M2.
    """
    n = count.sum(axis=-1)
    has = count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_all = np.where(has, mean * count, 0.0).sum(axis=-1) / n
        spread = np.where(has, count * np.square(mean - mean_all[..., None]), 0.0)
        m2_all = np.where(has, m2, 0.0).sum(axis=-1) + spread.sum(axis=-1)
    m2_all = np.where(n > 0, m2_all, np.nan)
    return n, mean_all, m2_all


def merge_moments(
    count_a: np.ndarray,
    mean_a: np.ndarray,
    m2_a: np.ndarray,
    count_b: np.ndarray,
    mean_b: np.ndarray,
    m2_b: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chan, Golub & LeVeque's pairwise merge of two (count, mean, M2) sets.

    An empty side (count 0, NaN mean) leaves the other unchanged.  For full
    precision on data like 1e9 + small noise, pass means taken about a common
    shift (see :class:`bncli.training.Trainer`).
    """
    count_a = np.asarray(count_a)
    count_b = np.asarray(count_b)
    n = count_a + count_b
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = mean_b - mean_a
        frac_b = count_b / n
        mean = mean_a + delta * frac_b
        m2 = m2_a + m2_b + np.square(delta) * count_a * frac_b
    mean = np.where(count_b == 0, mean_a, np.where(count_a == 0, mean_b, mean))
    m2 = np.where(count_b == 0, m2_a, np.where(count_a == 0, m2_b, m2))
    return n, mean, m2


def normalize(x, mean, var, eps, weight, bias, out=None) -> np.ndarray:
    """``weight * (x - mean) / sqrt(var + eps) + bias``.

    Statistics have the shape of ``x`` without its last (row) axis, or
    broadcast to it; NaN inputs stay NaN.  ``out`` (may be ``x``) receives
    the result; the arithmetic is the same either way, so are the bits.
    """
    scale = weight / np.sqrt(var + eps)
    # In place after the first step: a large block costs one array, not three.
    out = np.subtract(x, mean[..., None], out=out)
    out *= scale[..., None]
    out += np.asarray(bias)[..., None]
    return out


def denormalize(y, mean, var, eps, weight, bias, out=None) -> np.ndarray:
    """Inverse of :func:`normalize`: ``(y - bias) / weight * sqrt(var + eps) + mean``."""
    scale = np.sqrt(var + eps) / weight
    out = np.subtract(y, np.asarray(bias)[..., None], out=out)
    out *= scale[..., None]
    out += mean[..., None]
    return out


def fold_running(
    running_mean: np.ndarray,
    running_var: np.ndarray,
    tracked: np.ndarray,
    init_weight: np.ndarray,
    batch_mean: np.ndarray,
    batch_var: np.ndarray,
    updates: np.ndarray,
    momentum: float | None,
):
    """Apply a sequence of running-statistic updates in batch order, vectorized.

    Per feature (leading axis) and batch (last axis) where ``updates`` is true:
    ``running = (1 - f) * running + f * batch`` with ``f = momentum``, or
    ``f = 1/k`` (k = that feature's count of updating batches so far) when
    ``momentum`` is None.  ``batch_var`` must be the unbiased batch variance.

    The closed forms used here equal that recurrence exactly in real
    arithmetic and to a few ulps in float64.  ``tracked`` counts updating
    batches per feature; ``init_weight`` is the weight the running statistics
    still give to their initial values (0 and 1).

    Returns new ``(running_mean, running_var, tracked, init_weight)``.
    """
    k_new = updates.sum(axis=-1)
    bm = np.where(updates, batch_mean, 0.0)
    bv = np.where(updates, batch_var, 0.0)
    if momentum is None:
        total = tracked + k_new
        # ref + sum(batch - ref) / k: the cumulative mean, written as a correction
        # so that large, nearly equal values keep their digits.  A feature's first
        # update replaces the initial 0/1 entirely, so there the reference is its
        # first batch (subtracting the initial variance 1 from a variance of 1e-4
        # would cost four digits).
        first = np.argmax(updates, axis=-1)[..., None]
        fresh = (tracked == 0) & (k_new > 0)
        ref_m = np.where(fresh, np.take_along_axis(bm, first, -1)[..., 0], running_mean)
        ref_v = np.where(fresh, np.take_along_axis(bv, first, -1)[..., 0], running_var)
        with np.errstate(invalid="ignore", divide="ignore"):
            dm = np.where(updates, bm - ref_m[..., None], 0.0).sum(axis=-1) / total
            dv = np.where(updates, bv - ref_v[..., None], 0.0).sum(axis=-1) / total
        new_mean = np.where(k_new > 0, ref_m + dm, running_mean)
        new_var = np.where(k_new > 0, ref_v + dv, running_var)
        new_init = np.where(k_new > 0, 0.0, init_weight)
        return new_mean, new_var, total, new_init
    m = float(momentum)
    decay = 1.0 - m
    # Number of later updating batches for each batch: its weight decays that often.
    later = np.cumsum(updates[..., ::-1], axis=-1)[..., ::-1] - updates
    w = np.where(updates, m * np.power(decay, later), 0.0)
    keep = np.power(decay, k_new)
    new_mean = keep * running_mean + (w * bm).sum(axis=-1)
    new_var = keep * running_var + (w * bv).sum(axis=-1)
    return new_mean, new_var, tracked + k_new, init_weight * keep


def merge_running(mean_a, var_a, tracked_a, init_a, mean_b, var_b, tracked_b, init_b, momentum: float | None):
    """Running statistics of stream A followed by stream B, from each one's own.

    Exact when A's updates all came from whole batches.  Cumulative
    (``momentum`` None): the update-count-weighted average, which is what one
    cumulative fit over A then B computes.  Float momentum: B started from the
    initial values (0, 1) and still weighs them by ``init_b``; replacing those
    initial values by A's statistics gives ``B + init_b * (A - initial)``.
    Returns ``(mean, var, tracked, init_weight)``.
    """
    tracked = tracked_a + tracked_b
    if momentum is None:
        with np.errstate(invalid="ignore", divide="ignore"):
            frac_b = np.where(tracked > 0, tracked_b / tracked, 0.0)
        mean = np.where(tracked_b == 0, mean_a, np.where(tracked_a == 0, mean_b, mean_a + (mean_b - mean_a) * frac_b))
        var = np.where(tracked_b == 0, var_a, np.where(tracked_a == 0, var_b, var_a + (var_b - var_a) * frac_b))
        return mean, var, tracked, np.where(tracked > 0, 0.0, 1.0)
    mean = mean_b + init_b * (mean_a - 0.0)
    var = var_b + init_b * (var_a - 1.0)
    return mean, var, tracked, init_a * init_b
