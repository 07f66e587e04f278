"""bncli.norm directly: the in-place forms compute the textbook expressions bit for bit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bncli import norm

values = hnp.arrays(np.float64, (3, 17), elements=st.floats(-1e12, 1e12) | st.just(np.nan))


@settings(max_examples=100, deadline=None)
@given(
    values,
    hnp.arrays(np.float64, 3, elements=st.floats(-1e6, 1e6)),
    hnp.arrays(np.float64, 3, elements=st.floats(0, 1e6)),
)
def test_normalize_and_denormalize_in_place_equal_the_formulas(x, mean, var):
    eps, weight, bias = 1e-5, np.array([1.0, 0.5, -2.0]), np.array([0.0, 3.0, -1e-3])
    expected = (x - mean[:, None]) * (weight / np.sqrt(var + eps))[:, None] + bias[:, None]
    kept = x.copy()
    np.testing.assert_array_equal(norm.normalize(x, mean, var, eps, weight, bias), expected)
    np.testing.assert_array_equal(x, kept)  # without out, the input is left alone
    y = x.copy()
    assert norm.normalize(y, mean, var, eps, weight, bias, out=y) is y
    np.testing.assert_array_equal(y, expected)

    back = (expected - bias[:, None]) * (np.sqrt(var + eps) / weight)[:, None] + mean[:, None]
    np.testing.assert_array_equal(norm.denormalize(expected, mean, var, eps, weight, bias), back)
    assert norm.denormalize(y, mean, var, eps, weight, bias, out=y) is y
    np.testing.assert_array_equal(y, back)
