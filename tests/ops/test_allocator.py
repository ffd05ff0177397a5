import subprocess
import sys

import pytest

# Allocate a 24 MiB buffer, free it, allocate it again: with the tuned thresholds it comes from the heap
# (glibc's mallinfo2: no new mmapped bytes), and freeing it leaves it resident for the next allocation.
PROBE = """
import ctypes, os, sys, torch
from pyg_diffcl.ops import tune_allocator
first = tune_allocator() if sys.argv[1] == 'tune' else False
second = tune_allocator() if sys.argv[1] == 'tune' else False
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks', 'fsmblks', 'uordblks', 'fordblks',
                 'keepcost')]
libc = ctypes.CDLL('libc.so.6')
libc.mallinfo2.restype = MallInfo2
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
mapped = libc.mallinfo2().hblkhd
x = torch.ones(24 << 20 >> 2)
mapped_during, during = libc.mallinfo2().hblkhd, rss()
del x
print(first, second, mapped_during - mapped >= 24 << 20, during - rss() > 20 << 20)
"""


def probe(mode, **env):
    import os
    res = subprocess.run([sys.executable, '-c', PROBE, mode], capture_output=True, text=True, timeout=120,
                         env={**os.environ, **env})
    assert res.returncode == 0, res.stderr
    return res.stdout.split()


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc malloc tuning is Linux-only')
def test_tuned_allocator_keeps_freed_buffers():
    first, second, mmapped, released = probe('tune')
    assert (first, second) == ('True', 'False')  # applied once
    assert mmapped == 'False' and released == 'False'  # from the heap, and kept after being freed
    _, _, mmapped, released = probe('default')
    assert mmapped == 'True' and released == 'True'  # glibc's defaults: mapped, and unmapped when freed


def test_opt_out():
    first, second, _, _ = probe('tune', PYG_DIFFCL_TUNE_MALLOC='0')
    assert (first, second) == ('False', 'False')
