"""The tests' fork server (tests/forkserver.py) gives what a fresh interpreter gives: the same exit status,
stdout and stderr as ``subprocess.run([sys.executable, ...])`` for the same script, and no state carried from
one command to the next."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tests import forkserver
from tests.forkserver import run_python

SCRIPT = textwrap.dedent('''
    import os, sys
    mode = sys.argv[1]
    print('argv', sys.argv[1:], 'cwd', os.path.basename(os.getcwd()), 'env', os.environ.get('PYG_DIFFCL_PROBE'))
    print('to stderr', file=sys.stderr)
    if mode == 'exit3':
        sys.exit(3)
    if mode == 'exit-text':
        sys.exit('stopped with a message')
    if mode == 'raise':
        raise ValueError('a bad value')
    if mode == 'interrupt':
        raise KeyboardInterrupt
    if mode == 'atexit':
        import atexit
        atexit.register(lambda: print('exit handler ran', flush=True))
    if mode == 'unflushed':
        sys.stdout.write('no newline, no flush')
''')


pytestmark = pytest.mark.skipif(os.environ.get('PYG_DIFFCL_TEST_SUBPROCESS') == '1',
                                reason='PYG_DIFFCL_TEST_SUBPROCESS=1: every command is a plain subprocess')


@pytest.fixture
def script(tmp_path):
    path = tmp_path / 'probe.py'
    path.write_text(SCRIPT)
    return path


@pytest.mark.parametrize('mode', ['ok', 'exit3', 'exit-text', 'raise', 'interrupt', 'atexit', 'unflushed'])
def test_a_forked_command_ends_as_a_fresh_interpreter_does(script, tmp_path, mode, monkeypatch):
    monkeypatch.setenv('PYG_DIFFCL_PROBE', mode)
    (tmp_path / 'cwd').mkdir()
    ref = subprocess.run([sys.executable, str(script), mode], capture_output=True, text=True, cwd=tmp_path / 'cwd',
                         timeout=60)
    assert forkserver._forkable(dict(os.environ))
    got = run_python([str(script), mode], cwd=tmp_path / 'cwd', timeout=60)
    assert (got.returncode, got.stdout) == (ref.returncode, ref.stdout)
    # A traceback names the frames it passed through; the runner's own frames differ, the error line does not.
    assert got.stderr.splitlines()[-1:] == ref.stderr.splitlines()[-1:]
    assert got.stderr.startswith('to stderr\n')
    if mode == 'interrupt':
        assert got.returncode == -signal.SIGINT


def test_module_commands_and_no_state_between_commands(tmp_path):
    # python -m runs the module as __main__ with the working directory first on sys.path.
    (tmp_path / 'probe_mod.py').write_text('import sys, os\nprint(__name__, sys.path[0] == os.getcwd())\n')
    got = run_python(['-m', 'probe_mod'], cwd=tmp_path, timeout=60)
    assert (got.returncode, got.stdout) == (0, '__main__ True\n'), got.stderr
    # A setting one command changes is gone in the next: each is a process of its own.
    change = tmp_path / 'change.py'
    change.write_text('import torch, os\ntorch.set_num_threads(1)\nos.environ["X_SET_BY_CHILD"] = "1"\n'
                      'print(os.getpid())\n')
    look = tmp_path / 'look.py'
    look.write_text('import torch, os\nprint(torch.get_num_threads(), os.environ.get("X_SET_BY_CHILD"), os.getpid())\n')
    first = run_python([str(look)], timeout=60).stdout.split()
    pid_change = run_python([str(change)], timeout=60).stdout.strip()
    second = run_python([str(look)], timeout=60).stdout.split()
    assert first[:2] == second[:2] and second[1] == 'None'
    assert len({first[2], pid_change, second[2], str(os.getpid())}) == 4


def test_a_command_past_its_timeout_is_killed(tmp_path):
    slow = tmp_path / 'slow.py'
    slow.write_text('import time\nprint("started", flush=True)\ntime.sleep(60)\n')
    with pytest.raises(subprocess.TimeoutExpired) as err:
        run_python([str(slow)], timeout=1)
    assert err.value.output == 'started\n'
    # The server goes on serving.
    fast = tmp_path / 'fast.py'
    fast.write_text('print("served")\n')
    assert run_python([str(fast)], timeout=60).stdout == 'served\n'


def test_an_environment_read_at_import_gets_a_fresh_interpreter(monkeypatch):
    assert forkserver._forkable(dict(os.environ, PYG_DIFFCL_ANYTHING='1'))
    assert not forkserver._forkable(dict(os.environ, OMP_NUM_THREADS='7'))
    monkeypatch.setenv('PYG_DIFFCL_TEST_SUBPROCESS', '1')
    assert not forkserver._forkable(dict(os.environ))
