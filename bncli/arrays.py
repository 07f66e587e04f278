"""Zero-copy moves between float64 Arrow arrays and numpy, missing <-> NaN.

Built on buffers on purpose: ``pa.array(ndarray)`` and ``Array.to_numpy``
import pandas on first use, which costs a few tenths of a second at start-up.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def to_arrow(values: np.ndarray) -> pa.Array:
    """A float64 Arrow array over ``values`` (no copy), NaN as null."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    nan = np.isnan(values)
    n_null = int(nan.sum())
    validity = pa.py_buffer(np.packbits(~nan, bitorder="little")) if n_null else None
    return pa.Array.from_buffers(pa.float64(), len(values), [validity, pa.py_buffer(values)], null_count=n_null)


def to_numpy(arr: pa.Array) -> np.ndarray:
    """The values of a float64 Arrow array, nulls as NaN (no copy when there are none)."""
    validity, data = arr.buffers()[:2]
    values = np.frombuffer(data, dtype=np.float64, count=len(arr), offset=arr.offset * 8)
    if arr.null_count == 0:
        return values
    bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")
    return np.where(bits[arr.offset : arr.offset + len(arr)].astype(bool), values, np.nan)


def repeat_string(value: str, n: int) -> pa.Array:
    """A string array holding ``value`` ``n`` times (for partition columns)."""
    data = value.encode("utf-8")
    offsets = np.arange(n + 1, dtype=np.int32) * len(data)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data * n)])
