"""Crash- and concurrency-safe writes (:mod:`pyg_diffcl.datasets.files`) and the data caches built on them."""
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from pyg_diffcl.datasets.files import atomic_write, file_lock
from tests.helpers import write_dataset

REPO = Path(__file__).resolve().parents[2]


def test_atomic_write_keeps_the_old_file_on_failure_and_uses_the_umask(tmp_path):
    target = tmp_path / 'metrics.json'
    atomic_write(target, lambda f: f.write(b'first'))
    mask = os.umask(0o022)
    try:
        atomic_write(target, lambda f: f.write(b'second'))
    finally:
        os.umask(mask)
    assert target.read_bytes() == b'second' and (target.stat().st_mode & 0o777) == 0o644

    def fail(f):
        f.write(b'half')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, fail)
    assert target.read_bytes() == b'second'
    assert [p.name for p in tmp_path.iterdir()] == ['metrics.json']  # no temporary file left behind


def test_atomic_write_ignores_a_stale_temporary_of_the_old_fixed_name(tmp_path):
    """Another writer's temporary file (the old scheme used ``<name>.tmp`` for everyone) is not touched."""
    target = tmp_path / 'meta.json'
    (tmp_path / 'meta.json.tmp').write_bytes(b'someone else')
    atomic_write(target, lambda f: f.write(b'mine'))
    assert target.read_bytes() == b'mine' and (tmp_path / 'meta.json.tmp').read_bytes() == b'someone else'


def _spawn(code: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    return subprocess.Popen([sys.executable, '-c', textwrap.dedent(code)], env=env, cwd=str(REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_file_lock_makes_another_process_wait(tmp_path):
    lock, marker = tmp_path / 'x.lock', tmp_path / 'got-it'
    with file_lock(lock) as held:
        assert held
        child = _spawn(f"""
            from pyg_diffcl.datasets.files import file_lock
            print('READY', flush=True)
            with file_lock({str(lock)!r}):
                open({str(marker)!r}, 'w').close()
            """)
        assert child.stdout.readline().strip() == 'READY', child.stderr.read()
        time.sleep(1.0)  # ample time to reach the lock and, were it not held, to write the marker
        assert not marker.exists(), 'the child entered the lock while this process held it'
    assert child.wait(timeout=120) == 0, child.stderr.read()
    assert marker.exists()


def test_concurrent_runs_build_a_fresh_cache_once(tmp_path):
    """Four processes started together on an empty cache (a grid search's runs): all load the data and the
    item graph, the data are processed once and the graph computed once, and everyone gets the same graph."""
    root = write_dataset(tmp_path / 'd', modalities={'a': 3})
    cache, go = tmp_path / 'cache', tmp_path / 'go'
    code = f"""
        import os, time, torch
        import pyg_diffcl.datasets.mmrec as mm
        process, knn = mm.MMRecDataset.process, mm.item_knn_graph
        def counted_process(self):
            print('PROCESSED', flush=True)
            time.sleep(0.5)  # widen the window in which an unlocked second process would process too
            process(self)
        def counted_knn(*a, **k):
            print('KNN', flush=True)
            time.sleep(0.5)
            return knn(*a, **k)
        mm.MMRecDataset.process, mm.item_knn_graph = counted_process, counted_knn
        while not os.path.exists({str(go)!r}):
            time.sleep(0.01)
        ds = mm.MMRecDataset({str(root)!r}, root={str(cache)!r})
        ei, w = ds.item_graph('a', 3)
        print('EDGES', int(ei.size(1)), float(w.sum()), flush=True)
        """
    children = [_spawn(code) for _ in range(4)]
    time.sleep(3.0)  # let them import torch and reach the start line
    go.touch()
    outs = []
    for c in children:
        out, err = c.communicate(timeout=240)
        assert c.returncode == 0, err
        outs.append(out)
    text = ''.join(outs)
    assert text.count('PROCESSED') == 1 and text.count('KNN') == 1, text
    edges = {line for out in outs for line in out.splitlines() if line.startswith('EDGES')}
    assert len(edges) == 1, edges
    # no temporary file left in the cache entry
    assert not [p for p in cache.rglob('*') if p.name.endswith('.tmp')]


def test_file_lock_runs_the_block_unlocked_where_no_lock_can_be_taken(tmp_path, monkeypatch):
    """A file system without advisory locks (flock raises) or a lock file that cannot be created: the block
    still runs, told that it holds no lock."""
    import pyg_diffcl.datasets.files as files

    def no_locks(fd, op):
        raise OSError(37, 'No locks available')

    monkeypatch.setattr(files.fcntl, 'flock', no_locks)
    ran = []
    with file_lock(tmp_path / 'x.lock') as held:
        ran.append(held)
    with file_lock(tmp_path / 'missing-dir' / 'x.lock') as held:  # cannot be created
        ran.append(held)
    assert ran == [False, False]
