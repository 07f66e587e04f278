"""Which table format a path or a byte stream holds.

Order of precedence: an explicit format option, then the file extension, then
(for stdin) the first bytes: ``PAR1`` is Parquet, gzip/bzip2/zstd magic is a
compressed CSV, anything else is CSV.
"""

from __future__ import annotations

import os

FORMATS = ("csv", "tsv", "parquet")
DELIMITERS = {"csv": ",", "tsv": "\t"}

_COMPRESSION_EXT = {".gz": "gzip", ".gzip": "gzip", ".bz2": "bz2", ".zst": "zstd", ".zstd": "zstd"}
_FORMAT_EXT = {".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet"}
_MAGIC = (
    (b"PAR1", "parquet"),
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


def from_path(path: str) -> tuple[str | None, str | None]:
    """(format, compression) from a file name; None where the name does not tell.

    ``data.csv.gz`` -> ("csv", "gzip"); ``part.parquet`` -> ("parquet", None).
    """
    root, ext = os.path.splitext(path.lower())
    compression = _COMPRESSION_EXT.get(ext)
    if compression:
        root, ext = os.path.splitext(root)
    return _FORMAT_EXT.get(ext), compression


def sniff(head: bytes) -> tuple[str, str | None]:
    """(format, compression) from the first bytes of a stream."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return ("parquet", None) if kind == "parquet" else ("csv", kind)
    return "csv", None
