"""Data-parallel training through ``torchrun`` with gloo on CPU: two processes against one, a run directory
written once, and a two-process run killed with SIGKILL and resumed."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from pyg_diffcl.training.distributed import ShardedSampler
from tests.helpers import run_cli, write_dataset

TIMING = {'seconds_per_epoch', 'eval_seconds_per_epoch', 'test_eval_seconds', 'peak_rss_mib'}
pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason='needs torch.distributed with gloo')


def torchrun(*args, nproc=2, timeout=600, **popen):
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={nproc}',
           '-m', 'pyg_diffcl', *args]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    if popen:
        return subprocess.Popen(cmd, env=env, **popen)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp('ddp') / 'mm', num_users=600, num_items=300, per_user=10,
                         modalities={'v': 6, 't': 4})


def _args(data, out, epochs=6, model='lightgcn', *extra):
    return ['train', '--model', model, '--data', str(data), '--epochs', str(epochs), '--patience', '50',
            '--seed', '2', '--set', 'train.batch_size=256', *extra, '--out', str(out)]


def _wait_ended(pids, run_dir=None, timeout=60.0):
    """Wait until every pid has ended, then until :obj:`run_dir`'s lock can be taken.

    A process has ended when each of its threads is gone or a zombie. Its main thread alone is not enough:
    after SIGKILL the leader of a multi-threaded process can be a zombie while its other threads still exit,
    and the last of them closes the process's files, the run directory's lock among them."""
    from pathlib import Path
    deadline = time.time() + timeout

    def alive(pid):
        try:
            tasks = list(Path(f'/proc/{pid}/task').iterdir())
        except (FileNotFoundError, ProcessLookupError):
            return False
        for task in tasks:
            try:
                state = (task / 'stat').read_text().rsplit(')', 1)[1].split()[0]
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            if state not in ('Z', 'X'):
                return True
        return False

    for pid in pids:
        while alive(pid):
            if time.time() > deadline:
                raise AssertionError(f'process {pid} still runs {timeout} s after SIGKILL')
            time.sleep(0.02)
    if run_dir is None:
        return
    from pyg_diffcl.training.lock import RunDirectoryBusy, RunDirectoryLock
    while True:  # what the resume will take: the run directory's lock
        try:
            RunDirectoryLock(run_dir).acquire().release()
            return
        except RunDirectoryBusy:
            if time.time() > deadline:
                raise AssertionError(f'{run_dir} still locked {timeout} s after SIGKILL') from None
            time.sleep(0.02)


def _children(pid):
    """The child processes of :obj:`pid` (the ranks torchrun started), from /proc."""
    from pathlib import Path
    kids = []
    for task in Path(f'/proc/{pid}/task').iterdir():
        kids += [int(c) for c in (task / 'children').read_text().split()]
    return kids


def _rows(run):
    return list(csv.DictReader(open(run / 'log.csv')))


def test_sharded_sampler_splits():
    from pyg_diffcl.datasets import BPRSampler
    ei = torch.stack([torch.arange(103) % 17, torch.arange(103) % 29])
    base = BPRSampler(ei, 29, batch_size=10, seed=4)  # 11 batches: 10 of 10 and one of 3
    whole = list(base.epoch(2))
    # 'examples': every batch cut into 3 contiguous parts of sizes differing by at most one.
    shards = [list(ShardedSampler(base, r, 3, 'examples').epoch(2)) for r in range(3)]
    assert [len(s) for s in shards] == [11] * 3
    for b, parts in zip(whole, zip(*shards)):
        for field in range(3):
            assert torch.equal(torch.cat([p[field] for p in parts]), b[field])
        assert max(p.user.numel() for p in parts) - min(p.user.numel() for p in parts) <= 1
    tiny = BPRSampler(ei[:, :11], 29, batch_size=10, seed=4)  # batches of 10 and 1: the 1 is skipped by all
    assert [len(list(ShardedSampler(tiny, r, 2, 'examples').epoch(0))) for r in range(2)] == [1, 1]
    # 'batches': rank r takes batches r, r + 3, ...; the 11 - 9 = 2 left over are left out by every rank.
    shards = [list(ShardedSampler(base, r, 3).epoch(2)) for r in range(3)]
    assert [len(s) for s in shards] == [3] * 3 and len(ShardedSampler(base, 0, 3)) == 3
    for r in range(3):
        assert all(torch.equal(got.user, whole[3 * k + r].user) for k, got in enumerate(shards[r]))
    # ...and from step 1 on (a resumed epoch).
    assert all(torch.equal(a.user, b.user) for a, b in zip(ShardedSampler(base, 1, 3).epoch(2, 1), shards[1][1:]))


def test_sharded_neighbour_sampler_draws_only_its_own_batches():
    from pyg_diffcl.datasets import NeighborBPRSampler
    ei = torch.stack([torch.arange(103) % 17, torch.arange(103) % 29])
    base = NeighborBPRSampler(ei, 17, 29, [3], batch_size=10, seed=4)  # 11 batches
    whole = list(base.epoch(2))
    drawn = []
    real = base.batch
    base.batch = lambda epoch, b, perm=None: drawn.append(b) or real(epoch, b, perm)
    for r in range(3):
        drawn.clear()
        shard = list(ShardedSampler(base, r, 3).epoch(2, 1))  # resumed at step 1: steps 1, 2
        assert drawn == [3 + r, 6 + r]  # nothing else is sampled
        for k, got in enumerate(shard, start=1):
            want = whole[3 * k + r]
            assert torch.equal(got.user_id, want.user_id) and torch.equal(got.item_id, want.item_id)
            assert torch.equal(got.pos_item, want.pos_item)


def test_two_processes_match_one_and_write_once(data, tmp_path):
    # E = 5100 training interactions: 20 batches of 255, 10 of 510.
    runs = {}
    for name, batch, launcher, split in (('one_510', 510, run_cli, 'batches'), ('two_255', 255, torchrun, 'batches'),
                                         ('one_255', 255, run_cli, 'batches'), ('two_ex', 255, torchrun, 'examples')):
        out = tmp_path / name
        args = _args(data, out)
        args[args.index('train.batch_size=256')] = f'train.batch_size={batch}'
        res = launcher(*args, '--set', f'train.ddp_split={split}')
        assert res.returncode == 0, res.stderr
        runs[name] = (out, json.loads((out / 'metrics.json').read_text()), res)
    # Two ranks taking every other batch of 255 make the steps of one process with batches of 510; two ranks
    # taking half of every batch make the steps of one process with batches of 255: the same computations up to
    # the order of float sums.
    for one, two in (('one_510', 'two_255'), ('one_255', 'two_ex')):
        a, b = runs[one][1], runs[two][1]
        assert a['world_size'] == 1 and b['world_size'] == 2
        assert b['best_epoch'] == a['best_epoch']
        for split in ('valid', 'test'):
            assert b[split] == pytest.approx(a[split], abs=1e-3)
        la, lb = _rows(runs[one][0]), _rows(runs[two][0])
        assert [float(r['loss']) for r in lb] == pytest.approx([float(r['loss']) for r in la], rel=1e-4)
    # Written once, by rank 0: one row per epoch, one line per epoch on the console, no stray files (the run
    # directory's lock file is rank 0's).
    two, _, res = runs['two_255']
    assert [int(r['epoch']) for r in _rows(two)] == list(range(1, 7))
    assert len([line for line in res.stdout.splitlines() if line.startswith('epoch ')]) == 6
    assert sorted(p.name for p in two.iterdir()) == ['.lock', 'best.pt', 'config.yaml', 'curves.png', 'log.csv',
                                                      'metrics.json']


def test_two_processes_train_sampled_like_one(data, tmp_path):
    """train.loader=neighbor under torchrun: each rank samples its own batches' subgraphs (not one process's
    computation exactly, since one process with batches of 510 samples other subgraphs); the two runs agree
    within noise, and rank 0 alone writes."""
    runs = {}
    for name, batch, launcher in (('one_510', 510, run_cli), ('two_255', 255, torchrun)):
        out = tmp_path / name
        args = _args(data, out, 6, 'lightgcn', '--set', 'train.loader=neighbor',
                     '--set', 'train.num_neighbors=[5,5]')
        args[args.index('train.batch_size=256')] = f'train.batch_size={batch}'
        res = launcher(*args)
        assert res.returncode == 0, res.stderr
        runs[name] = (out, json.loads((out / 'metrics.json').read_text()))
    (one, a), (two, b) = runs['one_510'], runs['two_255']
    assert b['world_size'] == 2 and a['world_size'] == 1
    assert [int(r['epoch']) for r in _rows(two)] == list(range(1, 7))
    la, lb = [float(r['loss']) for r in _rows(one)], [float(r['loss']) for r in _rows(two)]
    assert lb[-1] < lb[0] and la[-1] < la[0]  # both learn
    assert lb == pytest.approx(la, rel=0.05)  # the same losses up to the sampling
    assert b['valid']['recall@20'] == pytest.approx(a['valid']['recall@20'], abs=0.02)


def test_two_process_run_killed_and_resumed(data, tmp_path):
    # DiffCL: dropout and diffusion noise draw from each rank's own random state, which the checkpoint gathers.
    ref, run = tmp_path / 'ref', tmp_path / 'run'
    small = ['--set', 'model.embedding_dim=8', '--set', 'model.denoiser_hidden=[8]', '--quiet']
    res = torchrun(*_args(data, ref, 6, 'diffcl', *small))
    assert res.returncode == 0, res.stderr
    proc = torchrun(*_args(data, run, 6, 'diffcl', *small), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start = time.time()
    while not (run / 'last.pt').exists():
        assert proc.poll() is None and time.time() - start < 300
        time.sleep(0.02)
    ranks = _children(proc.pid)
    for pid in ranks + [proc.pid]:  # both ranks, then the launcher
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    _wait_ended(ranks, run)  # not our children, and SIGKILL is asynchronous
    assert not (run / 'metrics.json').exists()
    state = torch.load(run / 'last.pt', weights_only=True)['trainer']
    assert state['world_size'] == 2 and len(state['rng_ranks']) == 2
    res = run_cli('train', '--resume', str(run))  # one process cannot continue a two-process run exactly
    assert res.returncode == 2 and 'trained by 2 process(es)' in res.stderr and 'nproc_per_node=2' in res.stderr
    res = torchrun('train', '--resume', str(run), '--quiet')
    assert res.returncode == 0, res.stderr
    a, b = (json.loads((d / 'metrics.json').read_text()) for d in (ref, run))
    assert {k: v for k, v in a.items() if k not in TIMING} == {k: v for k, v in b.items() if k not in TIMING}
    strip = lambda rows: [{k: v for k, v in r.items() if not k.endswith('seconds')} for r in rows]  # noqa: E731
    assert strip(_rows(ref)) == strip(_rows(run))
