"""One writer per run directory (an flock held while a process writes, released however it ends), readers
never blocked, and a failed write reported in one line with the last checkpoint left resumable."""
import errno
import os
import signal
import subprocess
import sys
import time

import pytest

from pyg_diffcl.training import run as run_module
from pyg_diffcl.training.lock import RunDirectoryBusy, RunDirectoryLock, RunWriteError
from pyg_diffcl.training.run import RESUME_CHECKPOINT, resume_run, train_run

from tests.helpers import run_cli, stop_at_resume_write, tiny_run_config, write_dataset


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp('lock') / 'mm', num_users=20, num_items=15, modalities={})


def config(data, **train):
    return tiny_run_config(data, **train)


def hold_lock_in_child(run_dir):
    """A separate process that takes the lock and sleeps (as a live training run would)."""
    code = ('import sys, time; from pyg_diffcl.training.lock import RunDirectoryLock; '
            'RunDirectoryLock(sys.argv[1]).acquire(); print("locked", flush=True); time.sleep(600)')
    child = subprocess.Popen([sys.executable, '-c', code, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == 'locked'
    return child


def test_a_second_writer_is_refused_with_the_owner_pid(data, tmp_path):
    out = tmp_path / 'run'
    out.mkdir()
    child = hold_lock_in_child(out)
    try:
        for args in (['--overwrite'], []):
            res = run_cli('train', '--model', 'lightgcn', '--data', str(data), '--out', str(out), *args,
                          '--set', 'model.embedding_dim=4', '--epochs', '1')
            assert res.returncode == 2, res.stderr
            lines = res.stderr.strip().splitlines()
            assert len(lines) == 1 and str(out) in lines[0] and f'process {child.pid}' in lines[0]
        res = run_cli('train', '--resume', str(out))
        assert res.returncode == 2 and f'process {child.pid}' in res.stderr
        assert not (out / 'config.yaml').exists()  # the refused writers touched nothing
    finally:
        child.kill()
        child.wait()


def test_the_lock_dies_with_its_owner_even_by_sigkill(tmp_path):
    child = hold_lock_in_child(tmp_path)
    with pytest.raises(RunDirectoryBusy, match=f'process {child.pid}'):
        RunDirectoryLock(tmp_path).acquire()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    lock = RunDirectoryLock(tmp_path).acquire()  # at once: the kernel released the dead process's lock
    assert lock.held and (tmp_path / '.lock').read_text().strip() == str(os.getpid())
    lock.release()
    assert not lock.held


def test_readers_are_not_blocked_by_a_live_writer(data, tmp_path):
    out = tmp_path / 'done'
    train_run(config(data), out, quiet=True)
    child = hold_lock_in_child(out)
    try:
        res = run_cli('evaluate', str(out))
        assert res.returncode == 0, res.stderr
        res = run_cli('recommend', str(out), '--k', '5', '--out', str(tmp_path / 'recs.tsv'))
        assert res.returncode == 0, res.stderr
    finally:
        child.kill()
        child.wait()


def test_a_full_disk_is_one_line_and_the_last_checkpoint_stays_resumable(data, tmp_path, monkeypatch):
    out = tmp_path / 'full'
    undo = stop_at_resume_write(monkeypatch)  # the resume checkpoint's second write finds the disk full
    with pytest.raises(RunWriteError) as info:
        train_run(config(data), out, quiet=True)
    msg = str(info.value)
    assert '\n' not in msg and str(out / RESUME_CHECKPOINT) in msg and 'No space left on device (ENOSPC)' in msg
    assert f'train --resume {out}' in msg
    undo()
    metrics = resume_run(out, quiet=True)  # the first checkpoint was intact
    assert metrics['epochs_run'] == 3
    reference = train_run(config(data), tmp_path / 'ref', quiet=True)
    assert metrics['test'] == reference['test'] and metrics['best_epoch'] == reference['best_epoch']


def test_a_failed_write_exits_1_with_one_line(data, tmp_path):
    out = tmp_path / 'ro'
    # a log.csv that is a directory: appending to it fails with an OSError (EISDIR), as a full disk would
    code = ('import sys, os; from pyg_diffcl.training import run; real = run._write_log\n'
            'def broken(path, *a):\n'
            '    real(path, *a); os.remove(path); os.mkdir(path)\n'
            'run._write_log = broken\n'
            'from pyg_diffcl.cli import main; sys.exit(main(sys.argv[1:]))')
    res = subprocess.run([sys.executable, '-c', code, 'train', '--model', 'lightgcn', '--data', str(data),
                          '--out', str(out), '--set', 'model.embedding_dim=4', '--epochs', '2'],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stderr
    lines = [l for l in res.stderr.strip().splitlines() if l.startswith('pyg-diffcl')]
    assert len(lines) == 1 and f'could not write {out / "log.csv"}' in lines[0] and 'EISDIR' in lines[0]


def test_a_truncated_resume_checkpoint_is_one_line(data, tmp_path, monkeypatch):
    out = tmp_path / 'cut'
    real = run_module.atomic_write

    def stop_after_first(path, write):  # leaves a resumable run behind: one complete last.pt
        real(path, write)
        if os.path.basename(path) == RESUME_CHECKPOINT:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))
    monkeypatch.setattr(run_module, 'atomic_write', stop_after_first)
    with pytest.raises(RunWriteError):
        train_run(config(data), out, quiet=True)
    blob = (out / RESUME_CHECKPOINT).read_bytes()
    (out / RESUME_CHECKPOINT).write_bytes(blob[:len(blob) // 2])
    res = run_cli('train', '--resume', str(out))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert 'not a readable checkpoint' in res.stderr and RESUME_CHECKPOINT in res.stderr
