"""Safe outputs: atomic files, stdout, and refusing to clobber an input.

An output file is written to a temporary file in the same directory and
renamed over the target only when the run succeeds, so a failed or
interrupted run leaves no partial file, no temporary file, and an existing
file at that path byte-identical.  stdout cannot be atomic: there a non-zero
exit status is the only signal of failure.
"""

from __future__ import annotations

import atexit
import errno
import os
import stat
import sys
import tempfile

from .errors import OutputError, UsageError

STDOUT = "-"
_TMP_SUFFIX = ".bncli-tmp"
#: Largest single write().  Linux copies one large write into the page cache far
#: more slowly than the same bytes in pieces (measured: an 11 MB write ~8x slower
#: per byte than 1 MiB ones, 1.6 s of kernel time on a 727 MB output).
WRITE_PIECE = 1 << 20


def write_in_pieces(file, data) -> int:
    """``file.write(data)`` as writes of at most WRITE_PIECE bytes, all of them
    (an unbuffered file, e.g. stdout under ``python -u``, may write fewer)."""
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    total = len(view)
    while view:
        n = file.write(view[:WRITE_PIECE])
        if n is None:  # a non-blocking file that cannot take more now
            raise BlockingIOError(errno.EAGAIN, "output would block")
        view = view[n:]
    return total


def is_null_device(path: str) -> bool:
    return path != STDOUT and os.path.exists(path) and os.path.realpath(path) == os.devnull


def same_file(a: str, b: str) -> bool:
    """True if two paths name one file (after ``./``, relative parts and symlinks,
    or as hard links).  ``-`` is never the same as a path, and /dev/null is
    never the same as anything (it can take any number of writers)."""
    if STDOUT in (a, b) or is_null_device(a) or is_null_device(b):
        return False
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def is_stdout(path: str) -> bool:
    """``-``, or a path that reaches this process's stdout (/dev/stdout, /dev/fd/1,
    or the very file or pipe stdout is redirected to)."""
    if path == STDOUT:
        return True
    if is_null_device(path):
        return False
    try:
        return os.path.samestat(os.stat(path), os.fstat(sys.stdout.fileno()))
    except (OSError, ValueError, AttributeError):
        return False


def check_clobber(inputs: list[str], **outputs: str | None) -> None:
    """Refuse (exit 2) when an output is an input, or two outputs are one file.

    ``outputs`` maps an option name (``output``, ``stats``) to its path.
    """
    named = [(k, v) for k, v in outputs.items() if v is not None]
    for key, path in named:
        if key != "output" and path == STDOUT:
            raise UsageError(f"--{key} cannot be '-'", hint=f"give --{key} a file path")
        if not path:
            raise UsageError(f"--{key} is empty", hint=f"give --{key} a file path")
        for src in inputs:
            if same_file(path, src):
                raise UsageError(
                    f"--{key} {path} is the input file {src}; bncli never overwrites an input",
                    hint="choose another output path",
                )
    for i, (k1, p1) in enumerate(named):
        for k2, p2 in named[i + 1 :]:
            if same_file(p1, p2) or (is_stdout(p1) and is_stdout(p2)):
                raise UsageError(f"--{k1} and --{k2} are the same file ({p1})", hint="send them to different places")


class AtomicFile:
    """A binary output file that appears at ``path`` only on :meth:`commit`.

    Creating it checks that the directory exists and is writable, so these
    errors surface before any work is done.  Special files (a FIFO, a device
    such as /dev/stdout) cannot be renamed over and are written in place.
    """

    def __init__(self, path: str, what: str = "output"):
        self.path = path
        self.what = what
        self._tmp = None
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        except OSError as e:
            raise OutputError(f"{what} {path}: {e.strerror}") from None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise OutputError(f"{what} {path}: is a directory", hint="give a file name")
        if st is not None and not stat.S_ISREG(st.st_mode):
            self.file = self._open_special(path)
            return
        # Write through a symlink to its target, as open() would, rather than replace the link.
        self._target = target = os.path.realpath(path)
        directory = os.path.dirname(target)
        if not os.path.isdir(directory):
            raise OutputError(f"{what} {path}: directory {directory} does not exist", hint="create it first")
        if st is not None and not _writable(target):
            # The rename would replace it regardless; open() would refuse, so do we.
            raise OutputError(f"{what} {path}: permission denied (the file is read-only)")
        try:
            fd, self._tmp = tempfile.mkstemp(
                dir=directory, prefix="." + os.path.basename(target) + ".", suffix=_TMP_SUFFIX
            )
        except PermissionError:
            raise OutputError(f"{what} {path}: permission denied (cannot write in {directory})") from None
        except OSError as e:
            raise OutputError(f"{what} {path}: cannot create: {e.strerror}") from None
        _LIVE_TEMPS.add(self._tmp)
        try:
            # mkstemp makes 0600 files; give the result the mode a normal open() would.
            mode = stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask()
            os.fchmod(fd, mode)
            self.file = os.fdopen(fd, "wb", buffering=1 << 20)
        except BaseException:
            os.close(fd)
            self._remove_tmp()
            raise
        if st is not None:
            _drop_cached_pages(target)

    def _open_special(self, path):
        try:
            return open(path, "wb")
        except OSError as e:
            raise OutputError(f"{self.what} {path}: cannot open: {e.strerror}") from None

    def write(self, data) -> int:
        try:
            return write_in_pieces(self.file, data)
        except OSError as e:
            raise write_error(self.what, self.path, e) from None

    def commit(self) -> None:
        """Flush, sync and rename into place."""
        try:
            self.file.flush()
            if self._tmp:
                os.fsync(self.file.fileno())
            self.file.close()
            if self._tmp:
                os.replace(self._tmp, self._target)
                _LIVE_TEMPS.discard(self._tmp)
                self._tmp = None
        except OSError as e:
            self.discard()
            raise write_error(self.what, self.path, e) from None
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Close and delete the temporary file; the target is left as it was."""
        try:
            self.file.close()
        except OSError:
            pass
        self._remove_tmp()

    def _remove_tmp(self) -> None:
        if self._tmp:
            _LIVE_TEMPS.discard(self._tmp)
            try:
                os.unlink(self._tmp)
            except OSError:
                pass
            self._tmp = None


class StdoutFile:
    """stdout as an output: not atomic; errors name it."""

    path = STDOUT
    what = "output"

    def __init__(self):
        self.file = sys.stdout.buffer

    def write(self, data) -> int:
        try:
            return write_in_pieces(self.file, data)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise write_error("output", "<stdout>", e) from None

    def commit(self) -> None:
        try:
            self.file.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise write_error("output", "<stdout>", e) from None

    def discard(self) -> None:
        try:
            self.file.flush()
        except OSError:
            pass


def write_error(what: str, path: str, e: OSError) -> OutputError:
    if e.errno == errno.ENOSPC:
        return OutputError(f"{what} {path}: no space left on device", hint="free some space or write elsewhere")
    if e.errno == errno.EPIPE:
        raise BrokenPipeError(e.errno, e.strerror)
    return OutputError(f"{what} {path}: cannot write: {e.strerror or e}")


#: Temporary files not yet renamed or removed.  Normally discard() removes them;
#: this catches the gaps (an interrupt between creating an AtomicFile and
#: registering its cleanup, a library caller that forgets to discard).
_LIVE_TEMPS: set[str] = set()


def track_temporary_file(path: str, live: bool = True) -> None:
    """Register (or, with ``live=False``, forget) a temporary file that
    :func:`remove_temporary_files` must delete if the process is interrupted."""
    if live:
        _LIVE_TEMPS.add(path)
    else:
        _LIVE_TEMPS.discard(path)


@atexit.register
def remove_temporary_files() -> None:
    """Delete every temporary output not yet renamed into place.

    Safe to call from a signal handler that then ends the process with
    os._exit(): it takes no locks, and a file still being written by another
    thread is only unlinked (its data go nowhere).
    """
    for tmp in list(_LIVE_TEMPS):
        try:
            os.unlink(tmp)
        except OSError:
            pass
        _LIVE_TEMPS.discard(tmp)


def _writable(path: str) -> bool:
    """Whether this process may write ``path`` (judged with its effective ids, as open() is)."""
    try:
        if os.access in os.supports_effective_ids:
            return os.access(path, os.W_OK, effective_ids=True)
        return os.access(path, os.W_OK)
    except OSError:
        return True


def _drop_cached_pages(path: str) -> None:
    """Evict ``path``'s pages from the page cache; its contents are not touched.

    The file is about to be replaced.  Its cached pages would otherwise stay
    until the rename, while the new output needs as many again: re-running a
    large transform to the same file measured 5% slower (and used that much
    more memory) without this.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except (AttributeError, OSError):  # not on this platform: the cache is only memory
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
