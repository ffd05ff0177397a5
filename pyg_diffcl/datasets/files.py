r"""Crash- and concurrency-safe file writes, shared by the data caches and the run directories.

* :func:`atomic_write` writes through a uniquely named temporary file in the target's directory and renames
  it over the target: a reader sees the old file or the new one, never a partial one, and two processes
  writing the same target never share a temporary file.
* :func:`file_lock` serialises the processes that build the same cache entry (several runs of a grid search
  started at once on a fresh cache): the first builds it, the others wait and then find it built.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterator

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks; writes stay atomic
    fcntl = None  # type: ignore[assignment]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: os.PathLike | str, write: Callable[[IO[bytes]], object]) -> None:
    """Write through a temporary file in the same directory, flush, fsync, rename, then fsync the directory
    (so the rename itself survives a crash). :obj:`write` receives the open binary file. The file gets the
    permissions an ordinary ``open`` would give (``0o666`` less the umask), not the temporary file's private
    ``0o600``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # a platform without directory descriptors
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def file_lock(path: os.PathLike | str) -> Iterator[bool]:
    """Hold an exclusive advisory lock (``flock``) on :obj:`path`, created if missing, for the ``with`` block;
    other processes entering the same lock wait. Yields whether the lock is held: ``False`` where it cannot
    be (no ``fcntl``, a file system without advisory locks, or a read-only directory: a read-only cache is
    only ever read), and the block then runs unlocked. The lock file is left in place (removing it would race
    with a waiting process)."""
    if fcntl is None:
        yield False
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = True
        except OSError:  # a file system without advisory locks (some network mounts)
            held = False
        yield held
    finally:
        os.close(fd)  # closing the descriptor releases the lock
