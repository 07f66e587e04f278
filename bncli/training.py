"""Training-mode batch normalization over a stream of mini-batches: pure numpy, no I/O.

:class:`Trainer` owns the per-feature state that ``bncli fit`` accumulates:
PyTorch running statistics, exact whole-data moments, min/max and missing
counts.  The pipeline hands it blocks of rows already cut into mini-batches;
it never sees files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import norm


@dataclass
class TrainState:
    """Per-feature fit state, every array of shape (features,), float64 unless noted.

    ``shift`` is a per-feature constant (the first batch's mean) about which the
    whole-data moments are accumulated: ``mean_shifted`` is the mean of
    ``x - shift``.  Keeping the moments small keeps their digits when the data
    sit far from zero (1e9 plus noise of 0.01 keeps >= 12 significant digits).
    """

    running_mean: np.ndarray
    running_var: np.ndarray
    tracked: np.ndarray  # int64: batches that updated each feature
    init_weight: np.ndarray  # weight the running stats still give to 0 / 1
    num_batches_tracked: int
    count: np.ndarray  # int64: non-missing values seen
    nan_count: np.ndarray  # int64: missing values seen
    shift: np.ndarray
    mean_shifted: np.ndarray
    m2: np.ndarray
    min: np.ndarray
    max: np.ndarray

    @classmethod
    def initial(cls, n_features: int) -> TrainState:
        """The state of a fresh ``torch.nn.BatchNorm1d``: running mean 0, var 1."""
        f = n_features
        nan = np.full(f, np.nan)
        return cls(
            running_mean=np.zeros(f),
            running_var=np.ones(f),
            tracked=np.zeros(f, dtype=np.int64),
            init_weight=np.ones(f),
            num_batches_tracked=0,
            count=np.zeros(f, dtype=np.int64),
            nan_count=np.zeros(f, dtype=np.int64),
            shift=np.zeros(f),
            mean_shifted=nan.copy(),
            m2=nan.copy(),
            min=nan.copy(),
            max=nan.copy(),
        )

    @property
    def mean(self) -> np.ndarray:
        """Exact whole-data mean (NaN where no value was seen)."""
        with np.errstate(invalid="ignore", over="ignore"):
            return self.shift + self.mean_shifted

    def fold_batches(self, count: np.ndarray, mean_shifted: np.ndarray, m2: np.ndarray, momentum) -> None:
        """Update the running statistics with consecutive batches, in order, as torch does.

        Arguments are per (feature, batch): non-missing count, mean about ``shift``
        and M2.  A feature updates only in batches where it has two values or more;
        ``num_batches_tracked`` counts every batch, as torch's does.
        """
        with np.errstate(invalid="ignore", divide="ignore"):
            var_unbiased = m2 / (count - 1)
        self.running_mean, self.running_var, self.tracked, self.init_weight = norm.fold_running(
            self.running_mean,
            self.running_var,
            self.tracked,
            self.init_weight,
            mean_shifted + self.shift[:, None],
            var_unbiased,
            count >= 2,
            momentum,
        )
        self.num_batches_tracked += count.shape[1]


class Trainer:
    """Feed mini-batches in order; get training-mode outputs and updated state.

    ``momentum`` is a float in [0, 1] (PyTorch convention) or None for the
    cumulative average.  ``weight``/``bias`` are the affine parameters applied to
    outputs (1 and 0 after a fresh fit).
    """

    def __init__(self, state: TrainState, momentum: float | None, eps: float, weight, bias):
        self.state = state
        self.momentum = momentum
        self.eps = float(eps)
        self.weight = np.asarray(weight, dtype=np.float64)
        self.bias = np.asarray(bias, dtype=np.float64)
        self._shift_set = state.count > 0

    def train(self, x: np.ndarray, batch_size: int, *, update: bool = True, want_output: bool = True):
        """Normalize ``x`` (features, rows) as consecutive batches of ``batch_size`` rows.

        The row count must be a multiple of ``batch_size``.  With ``update`` the
        batches update the running statistics (those with n >= 2 values of a
        feature) and count in ``num_batches_tracked``; whole-data statistics are
        always updated.  Returns the outputs (features, rows), or None when
        ``want_output`` is false.
        """
        n_features, rows = x.shape
        if rows == 0:
            return np.empty_like(x) if want_output else None
        if rows % batch_size:
            raise ValueError(f"{rows} rows is not a multiple of batch size {batch_size}")
        self._set_shift(x.reshape(n_features, rows // batch_size, batch_size))
        xs = x - self.state.shift[:, None]
        blocks = xs.reshape(n_features, rows // batch_size, batch_size)
        count, mean_s, m2 = norm.batch_moments(blocks)
        self._update_whole_data(x, count, mean_s, m2)
        if update:
            self.state.fold_batches(count, mean_s, m2, self.momentum)
        if not want_output:
            return None
        with np.errstate(invalid="ignore", divide="ignore"):
            var_biased = m2 / count
        # x - mean_B computed as (x - shift) - (mean_B - shift): exact where x is close to its mean.
        y = norm.normalize(blocks, mean_s, var_biased, self.eps, self.weight[:, None], self.bias[:, None], out=blocks)
        return y.reshape(n_features, rows)

    def _set_shift(self, blocks: np.ndarray) -> None:
        """Fix each feature's shift at the mean of the first batch holding a value of it.

        Defined by the data alone (not by how the stream was chunked), so the
        output bytes do not depend on chunk sizes.
        """
        todo = ~self._shift_set
        if not todo.any():
            return
        with np.errstate(invalid="ignore"), _quiet_nanmean():
            means = np.nanmean(blocks[todo], axis=-1)  # (todo features, batches)
        has = ~np.isnan(means)
        found = has.any(axis=-1)
        first = means[np.arange(len(means)), np.argmax(has, axis=-1)]
        idx = np.flatnonzero(todo)[found]
        self.state.shift[idx] = first[found]
        self._shift_set[idx] = True

    def _update_whole_data(self, x, count, mean_s, m2) -> None:
        s = self.state
        n, mean, m2_all = norm.combine_moments(count, mean_s, m2)
        s.count, s.mean_shifted, s.m2 = norm.merge_moments(s.count, s.mean_shifted, s.m2, n, mean, m2_all)
        s.nan_count = s.nan_count + (x.shape[1] - n)
        # fmin/fmax ignore NaN (and stay NaN for an all-missing feature).
        s.min = np.fmin(s.min, np.fmin.reduce(x, axis=1))
        s.max = np.fmax(s.max, np.fmax.reduce(x, axis=1))


class _quiet_nanmean:
    """Silence numpy's 'Mean of empty slice' / 'All-NaN slice' RuntimeWarnings."""

    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)
