"""Python processes for the tests, forked from one that has already imported torch and torch_geometric.

Starting ``python -m pyg_diffcl`` costs about 4 s on the project's 2-core machine, nearly all of it importing
torch and torch_geometric (``python -X importtime``), and the tests start the CLI and the example scripts well
over a hundred times. This server imports those packages once; for each command it forks a child, which sets its
working directory, environment, ``sys.argv`` and standard streams as a new interpreter would have them and then
runs the module or script as ``__main__``. The child is a process of its own (pid, exit status, signal
dispositions, threads, every process setting the command changes). It ends as the interpreter ends, with the
same exit status: exit handlers run and the standard streams are flushed; only the module teardown after that
is skipped (``os._exit``), which costs a fresh interpreter about 1 s with torch loaded.

What a fork cannot give is a fresh import: a module imported by the server is not imported again, so an
environment variable that a package reads at import time would be missed. :func:`run_python` therefore forks
only when the command's environment differs from the server's in variables that nothing reads at import
(``PYG_DIFFCL_*`` and pytest's own), and starts a plain subprocess otherwise; so does every command when
``PYG_DIFFCL_TEST_SUBPROCESS=1`` or when the platform has no ``fork``.

The protocol is one JSON line per request on the server's stdin and one JSON line per answer on its stdout.
"""
import atexit
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
PRELOAD = ('numpy', 'pandas', 'yaml', 'torch', 'torch_geometric', 'torch_scatter', 'torch_sparse',
           'pyg_diffcl', 'pyg_diffcl.cli', 'pyg_diffcl.training.run', 'pyg_diffcl.training.reproduce')
# Variables read at call time only: a command may differ from the server in these and still be forked.
_CALL_TIME_PREFIXES = ('PYG_DIFFCL_', 'PYTEST_')


# --------------------------------------------------------------------------------------------- the server

def _child(req: dict) -> None:
    """In the forked child: become the requested command, run it and end the process; never returns."""
    import runpy
    for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, req['stdout'], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                            (2, req['stderr'], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
        opened = os.open(path, flags, 0o644)
        os.dup2(opened, fd)
        os.close(opened)  # only the standard descriptor stays open
    # The server's stdio objects may hold buffered bytes of the protocol: the child starts with new ones.
    sys.stdin = open(0, 'r', closefd=False)
    sys.stdout = open(1, 'w', closefd=False)
    sys.stderr = open(2, 'w', buffering=1, closefd=False)
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr
    os.chdir(req['cwd'])
    os.environ.clear()
    os.environ.update(req['env'])
    argv = req['argv']
    try:
        if argv[0] == '-m':
            sys.argv = [argv[1], *argv[2:]]
            sys.path[0] = os.getcwd()
            runpy.run_module(argv[1], run_name='__main__', alter_sys=True)
        else:
            sys.argv = list(argv)
            sys.path[0] = str(Path(argv[0]).resolve().parent)
            runpy.run_path(argv[0], run_name='__main__')
        code = 0
    except SystemExit as e:
        code = _exit_status(e.code)
    except KeyboardInterrupt:  # the interpreter ends by the signal itself (status -SIGINT)
        sys.excepthook(*sys.exc_info())
        _leave(None)
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    _leave(code)


def _exit_status(code) -> int:
    """The exit status that the interpreter gives ``SystemExit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _leave(code: Optional[int]) -> None:
    """End the child as the interpreter ends: exit handlers, then the standard streams flushed; ``None`` ends
    it by SIGINT, as an uncaught ``KeyboardInterrupt`` ends the interpreter. The module teardown that follows
    in a fresh interpreter (about 1 s with torch loaded) is skipped: only an object finalised there, such as a
    file left open and unflushed, could tell the difference."""
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        if code is None:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        os._exit(code if code is not None else 1)


def serve() -> None:
    """The server loop: import :data:`PRELOAD`, then fork one child per request line until stdin closes."""
    import importlib
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # the child imports it again and reports the error itself, in its own stderr
            pass
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    for line in requests:
        req = json.loads(line)
        answers.flush()
        pid = os.fork()
        if pid == 0:
            _child(req)  # never returns: the child ends in _leave
        deadline = time.monotonic() + req['timeout']
        timed_out = False
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline and not timed_out:
                os.kill(pid, 9)
                timed_out = True
            time.sleep(0.005)
        answers.write(json.dumps({'returncode': os.waitstatus_to_exitcode(status),
                                  'timed_out': timed_out}).encode() + b'\n')
        answers.flush()


# --------------------------------------------------------------------------------------------- the client

class _Server:
    def __init__(self):
        self.proc: Optional[subprocess.Popen] = None
        self.env: Dict[str, str] = {}
        self.lock = threading.Lock()
        atexit.register(self.close)

    def get(self) -> subprocess.Popen:
        if self.proc is None or self.proc.poll() is not None:
            self.env = dict(os.environ)
            self.proc = subprocess.Popen([sys.executable, '-c', 'from tests.forkserver import serve; serve()'],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=str(ROOT),
                                         env=self.env)
        return self.proc

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


_SERVER = _Server()


def _forkable(env: Dict[str, str]) -> bool:
    if os.environ.get('PYG_DIFFCL_TEST_SUBPROCESS') == '1' or not hasattr(os, 'fork'):
        return False
    base = _SERVER.env if _SERVER.proc is not None and _SERVER.proc.poll() is None else dict(os.environ)
    changed = {k for k in set(base) | set(env) if base.get(k) != env.get(k)}
    return all(k.startswith(_CALL_TIME_PREFIXES) for k in changed)


def run_python(argv: Sequence[str], cwd: Optional[Path] = None, env: Optional[Dict[str, str]] = None,
               timeout: float = 600) -> subprocess.CompletedProcess:
    """``subprocess.run([sys.executable, *argv], capture_output=True, text=True, ...)``, forked from the
    server where that gives the same result (see the module docstring). :obj:`argv` starts with ``'-m',
    MODULE`` or a script path; a timeout raises :class:`subprocess.TimeoutExpired` as ``subprocess.run``
    does."""
    argv: List[str] = [str(a) for a in argv]
    full_env = dict(os.environ)
    full_env.update(env or {})
    cwd = Path(cwd) if cwd is not None else Path.cwd()
    with _SERVER.lock:
        if not _forkable(full_env):
            return subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=str(cwd),
                                  env=full_env, timeout=timeout)
        return _run_forked(_SERVER.get(), argv, cwd, full_env, timeout)


def _run_forked(server: subprocess.Popen, argv: List[str], cwd: Path, full_env: Dict[str, str],
                timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix='forkserver-') as tmp:
        out, err = Path(tmp) / 'stdout', Path(tmp) / 'stderr'
        req = {'argv': argv, 'cwd': str(cwd.resolve()), 'env': full_env, 'stdout': str(out),
               'stderr': str(err), 'timeout': timeout}
        server.stdin.write(json.dumps(req).encode() + b'\n')
        server.stdin.flush()
        line = server.stdout.readline()
        if not line:
            raise RuntimeError('the test fork server ended unexpectedly')
        answer = json.loads(line)
        stdout = out.read_text(errors='replace') if out.exists() else ''
        stderr = err.read_text(errors='replace') if err.exists() else ''
        if answer['timed_out']:
            raise subprocess.TimeoutExpired([sys.executable, *argv], timeout, output=stdout, stderr=stderr)
        return subprocess.CompletedProcess([sys.executable, *argv], answer['returncode'], stdout, stderr)
