r"""Tuning of glibc's ``malloc`` for the large, short-lived tensors of full-graph training."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

#: The mmap threshold :func:`tune_allocator` sets by default.
DEFAULT_MMAP_THRESHOLD = 32 << 20

_done = False


def tune_allocator(mmap_threshold: int = DEFAULT_MMAP_THRESHOLD, trim_threshold: int = 1 << 30) -> bool:
    r"""Keep freed tensor buffers in the process instead of handing them back to the kernel.

    Every training step of a full-graph recommender allocates and frees a few dozen
    :math:`N \times d` buffers (propagated layers, their gradients). With glibc's defaults, buffers above the
    (dynamic) mmap threshold are mapped and unmapped on every allocation, and a freed top of the heap beyond
    the trim threshold is returned to the kernel, so every step page-faults its memory in again, and an
    elementwise pass over a freshly mapped buffer costs many times one over a reused one. Raising both
    thresholds (``mallopt(M_MMAP_THRESHOLD, 32 MiB)``, ``mallopt(M_TRIM_THRESHOLD, 1 GiB)``) keeps the buffers
    mapped between steps (``benchmarks/train_speed.py`` measures the effect on the machine at hand). The cost: up to
    :obj:`trim_threshold` bytes of freed memory stay mapped to the process, and buffers below
    :obj:`mmap_threshold` come from the heap (peak RSS is unchanged in practice, see
    ``benchmarks/train_speed.py``).

    A no-op returning :obj:`False` off Linux/glibc, when already applied, or when the environment variable
    ``PYG_DIFFCL_TUNE_MALLOC`` is ``0``. The ``pyg-diffcl`` entry point calls it; nothing else in the package
    does, so importing or calling the library leaves the process's allocator as it was.
    """
    global _done
    if _done or os.environ.get('PYG_DIFFCL_TUNE_MALLOC', '1') == '0' or not sys.platform.startswith('linux'):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    ok = bool(mallopt(M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(mallopt(M_TRIM_THRESHOLD, int(trim_threshold)))
    _done = ok
    return ok
