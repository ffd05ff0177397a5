r"""One writer per run directory, and one line when a write fails.

A run directory is a unit of work that one process owns while it writes to it (training, resuming,
overwriting). :class:`RunDirectoryLock` holds an exclusive advisory lock (``flock``) on ``RUN_DIR/.lock``
for that time and records the owner's pid in it; a second writer is refused with
:class:`RunDirectoryBusy`, one line naming the directory and the owner's pid (exit status 2 from the CLI).
The kernel releases the lock when its owner ends, however it ends (SIGKILL included), so a later
``--resume`` is never blocked by a dead process; the ``.lock`` file itself stays and is harmless. Readers
(``evaluate``, ``recommend``, ``reproduce`` reusing a finished run) take no lock: every file is replaced
atomically, so they always read a complete ``best.pt``.

On a local file system the lock is exact. On NFS, Linux emulates ``flock`` with byte-range locks of the
NFS lock manager: it holds across machines where the server supports them (NFSv4, or NFSv3 with ``lockd``),
and is local to each machine otherwise. Where ``fcntl`` does not exist (Windows) no lock is taken.

:func:`writing` turns an :class:`OSError` raised while a run writes a file (a full disk, a quota, a
read-only remount) into :class:`RunWriteError`: one line naming the file and the cause, and what is still
resumable (exit status 1 from the CLI).
"""
from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Iterator, Optional

from ..errors import ConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: The lock file's name inside a run directory.
LOCK_NAME = '.lock'


class RunDirectoryBusy(ConfigError):
    """Another live process writes to the run directory (the message names it and its pid)."""


class RunWriteError(RuntimeError):
    """Writing a file of the run failed (the message names the file, the cause and what is resumable)."""


class RunDirectoryLock:
    """An exclusive lock on a run directory for as long as a process writes to it (see the module docstring).

    Args:
        run_dir (str or os.PathLike): The run directory (it must exist when :meth:`acquire` is called).
    """
    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: Optional[int] = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> 'RunDirectoryLock':
        """Take the lock, or raise :class:`RunDirectoryBusy` at once if a live process holds it."""
        if fcntl is None or self._fd is not None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            owner = os.read(fd, 64).decode(errors='replace').strip() or 'unknown'
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise RunDirectoryBusy(f'{self.run_dir}: in use by process {owner}, which is writing to it; wait '
                                       f'for it to end (or stop it), or choose another directory') from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f'{os.getpid()}\n'.encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> 'RunDirectoryLock':
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({str(self.run_dir)!r}, held={self.held})'


@contextlib.contextmanager
def writing(path: str | os.PathLike, resumable: Optional[Path] = None, run_dir: Optional[Path] = None
            ) -> Iterator[None]:
    """Raise :class:`RunWriteError` (one line: the file, the cause, what to do) for an :class:`OSError` in
    the block. :obj:`resumable`: the resume checkpoint, named in the message when it exists."""
    try:
        yield
    except OSError as e:
        cause = e.strerror or str(e) or type(e).__name__
        if e.errno is not None and e.errno in errno.errorcode:
            cause = f'{cause} ({errno.errorcode[e.errno]})'
        if resumable is not None and resumable.exists():
            what = (f'the last complete checkpoint {resumable} is intact: free the space (or fix the cause), then '
                    f'`pyg-diffcl train --resume {run_dir or resumable.parent}`')
        else:
            what = 'no checkpoint of this run is complete yet: fix the cause and start it again'
        raise RunWriteError(f'could not write {path}: {cause}; {what}') from None
