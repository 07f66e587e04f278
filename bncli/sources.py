"""Turn the INPUT arguments into an ordered list of files.

* ``-`` is stdin; an existing file is itself.
* A directory is a dataset: every data file below it (by extension: .parquet,
  .pq, .csv, .tsv, ... also compressed), in sorted path order, skipping hidden
  and ``_``-prefixed names (``_SUCCESS``, ``_metadata``).  Path parts of the form
  ``key=value`` (hive partitioning) become pass-through columns.
* A path that does not exist but holds ``*``, ``?`` or ``[`` is a glob
  (``**`` recurses), expanded in sorted order: useful when the shell did not.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field

from . import formats
from .errors import InputError, UsageError

STDIN = "-"


@dataclass
class InputFile:
    """One input file, its name relative to the argument that named it, and its
    hive partition values (in path order)."""

    path: str
    relative: str
    partition: dict[str, str] = field(default_factory=dict)


def expand(args: list[str]) -> list[InputFile]:
    """The input files named by ``args``, in the documented order."""
    out: list[InputFile] = []
    for arg in args or [STDIN]:
        if arg == STDIN:
            out.append(InputFile(STDIN, "stdin"))
        elif os.path.isdir(arg):
            out.extend(_dataset(arg))
        elif not os.path.exists(arg) and any(ch in arg for ch in "*?["):
            matches = sorted(p for p in glob.glob(arg, recursive=True) if os.path.isfile(p))
            if not matches:
                raise InputError(f"{arg}: no files match this pattern")
            out.extend(InputFile(p, os.path.basename(p)) for p in matches)
        else:
            out.append(InputFile(arg, os.path.basename(arg)))
    if sum(f.path == STDIN for f in out) > 1:
        raise UsageError("stdin ('-') can be read only once")
    return out


def _dataset(root: str) -> list[InputFile]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        for name in filenames:
            if name.startswith((".", "_")):
                continue
            path = os.path.join(dirpath, name)
            if formats.from_path(path)[0] is None:
                continue
            rel = os.path.relpath(path, root)
            found.append(InputFile(path, rel, _partition(rel)))
    if not found:
        raise InputError(f"{root}: directory holds no CSV, TSV or Parquet files")
    found.sort(key=lambda f: f.relative.split(os.sep))
    keys = list(found[0].partition)
    for f in found:
        if list(f.partition) != keys:
            raise InputError(
                f"{f.path}: partition keys {list(f.partition)} differ from {keys} in {found[0].path}",
                hint="every file of a partitioned dataset needs the same key=value folders",
            )
    return found


def _partition(relative: str) -> dict[str, str]:
    parts = relative.split(os.sep)[:-1]
    return dict(p.split("=", 1) for p in parts if "=" in p and not p.startswith("="))
