"""Interruption, through real subprocesses: a training run killed with SIGKILL mid-run, or stopped with SIGINT,
continues with ``train --resume RUN_DIR`` to the same metrics.json, log.csv and selected weights as a run that
was never stopped (timings and peak memory aside)."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.helpers import run_cli, write_dataset

TIMING = {'seconds_per_epoch', 'eval_seconds_per_epoch', 'test_eval_seconds', 'peak_rss_mib'}
EPOCHS = 8


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    # Big enough that an epoch has ~90 batches and a run takes a few seconds, so a signal lands mid-run.
    return write_dataset(tmp_path_factory.mktemp('interrupt') / 'mm', num_users=2400, num_items=400,
                         per_user=12, modalities={'v': 6, 't': 4})


def _args(model, data, out):
    extra = {'lightgcn': ['--set', 'model.embedding_dim=16'],
             'diffcl': ['--set', 'model.embedding_dim=8', '--set', 'model.denoiser_hidden=[8]',
                        '--set', 'model.cl_max_nodes=32']}[model]
    return ['train', '--model', model, '--data', str(data), '--epochs', str(EPOCHS), '--patience', '50',
            '--seed', '7', '--set', 'train.batch_size=256', *extra, '--out', str(out), '--quiet']


def _start(args, tmp_path):
    env = dict(os.environ)
    log = open(tmp_path / 'stderr.txt', 'w')
    proc = subprocess.Popen([sys.executable, '-m', 'pyg_diffcl', *args], stdout=subprocess.DEVNULL, stderr=log,
                            env=env)
    return proc, log


def _wait_for(path, proc, timeout=300):
    start = time.time()
    while not path.exists():
        assert proc.poll() is None, 'the run ended before its first checkpoint'
        assert time.time() - start < timeout
        time.sleep(0.02)


def _same_run(ref, run):
    a = json.loads((ref / 'metrics.json').read_text())
    b = json.loads((run / 'metrics.json').read_text())
    assert {k: v for k, v in a.items() if k not in TIMING} == {k: v for k, v in b.items() if k not in TIMING}
    rows = [list(csv.DictReader(open(d / 'log.csv'))) for d in (ref, run)]
    strip = lambda r: {k: v for k, v in r.items() if not k.endswith('seconds')}  # noqa: E731
    assert [strip(r) for r in rows[0]] == [strip(r) for r in rows[1]]
    assert len(rows[1]) == EPOCHS
    wa, wb = (torch.load(d / 'best.pt', weights_only=True) for d in (ref, run))
    assert wa['epoch'] == wb['epoch'] and wa['model'].keys() == wb['model'].keys()
    assert all(torch.equal(wa['model'][k], wb['model'][k]) for k in wa['model'])
    assert not (run / 'last.pt').exists()  # removed when the run completed


@pytest.fixture(scope='module')
def references(data, tmp_path_factory):
    base = tmp_path_factory.mktemp('reference')
    out = {}
    for model in ('lightgcn', 'diffcl'):
        res = run_cli(*_args(model, data, base / model))
        assert res.returncode == 0, res.stderr
        out[model] = base / model
    return out


def test_sigkill_mid_run_then_resume(data, references, tmp_path):
    run = tmp_path / 'run'
    proc, log = _start(_args('lightgcn', data, run), tmp_path)
    _wait_for(run / 'last.pt', proc)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    log.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (run / 'metrics.json').exists()
    state = torch.load(run / 'last.pt', weights_only=True)
    assert state['trainer']['position']['epoch'] < EPOCHS  # killed before the end
    res = run_cli('train', '--resume', str(run), '--quiet')
    assert res.returncode == 0, res.stderr
    _same_run(references['lightgcn'], run)


def test_sigint_saves_then_resume(data, references, tmp_path):
    run = tmp_path / 'run'
    proc, log = _start(_args('diffcl', data, run), tmp_path)
    _wait_for(run / 'last.pt', proc)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    log.close()
    stderr = (tmp_path / 'stderr.txt').read_text()
    assert proc.returncode == 130, stderr
    assert 'Traceback' not in stderr
    last = stderr.strip().split('\n')[-1]
    assert 'interrupted ' in last and f'pyg-diffcl train --resume {run}' in last, last
    assert not (run / 'metrics.json').exists()
    position = torch.load(run / 'last.pt', weights_only=True)['trainer']['position']
    if 'after batch' in last:  # stopped mid-epoch: saved at that batch
        assert f"in epoch {position['epoch'] + 1} after batch {position['batch']} of" in last
    else:
        assert position['batch'] == 0 and f"after epoch {position['epoch']};" in last
    # A new train into the interrupted run directory is refused: it would lose the saved state.
    res = run_cli(*_args('diffcl', data, run))
    assert res.returncode == 2 and f'--resume {run}' in res.stderr
    res = run_cli('train', '--resume', str(run), '--quiet')
    assert res.returncode == 0, res.stderr
    _same_run(references['diffcl'], run)
    # ...and a completed run has nothing to resume.
    res = run_cli('train', '--resume', str(run))
    assert res.returncode == 2 and 'the run is complete' in res.stderr


def test_resume_refusals(data, tmp_path):
    res = run_cli('train', '--resume', str(tmp_path / 'nothing'))
    assert res.returncode == 2 and 'no interrupted run to resume' in res.stderr
    res = run_cli('train', '--resume', str(tmp_path), '--model', 'mf', '--seed', '3')
    assert res.returncode == 2 and '--model, --seed cannot be given' in res.stderr
    res = run_cli('train', '--model', 'mf')
    assert res.returncode == 2 and '--out RUN_DIR is required' in res.stderr


def test_resume_refuses_changed_data(tmp_path):
    data = write_dataset(tmp_path / 'd', num_users=20, num_items=15, modalities={})
    run = tmp_path / 'run'
    proc, log = _start(['train', '--model', 'mf', '--data', str(data), '--epochs', '100000', '--patience',
                        '100000', '--out', str(run), '--quiet'], tmp_path)
    _wait_for(run / 'last.pt', proc)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    log.close()
    assert proc.returncode == 130
    header, *rows = (data / 'toy.inter').read_text().strip().split('\n')
    (data / 'toy.inter').write_text('\n'.join([header] + rows[::-1]) + '\n')  # same data, other bytes
    res = run_cli('train', '--resume', str(run))
    assert res.returncode == 2 and 'toy.inter' in res.stderr and 'differs from the data' in res.stderr
    assert len(res.stderr.strip().split('\n')) == 1


def test_resume_with_fewer_epochs_finishes_at_once(tmp_path):
    data = write_dataset(tmp_path / 'd', num_users=20, num_items=15, modalities={})
    run = tmp_path / 'run'
    proc, log = _start(['train', '--model', 'mf', '--data', str(data), '--epochs', '100000', '--out', str(run),
                        '--patience', '100000', '--quiet'], tmp_path)
    _wait_for(run / 'last.pt', proc)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    log.close()
    finished = torch.load(run / 'last.pt', weights_only=True)['trainer']['position']['epoch']
    res = run_cli('train', '--resume', str(run), '--epochs', '1', '--quiet')
    assert res.returncode == 0, res.stderr
    m = json.loads((run / 'metrics.json').read_text())
    assert m['epochs_run'] == max(finished, 1) and 1 <= m['best_epoch'] <= m['epochs_run']
    assert len(list(csv.DictReader(open(run / 'log.csv')))) == m['epochs_run']
