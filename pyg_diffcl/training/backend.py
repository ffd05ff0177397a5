r"""The sparse backend of a run: ``train.backend: auto`` decided once per host and kept by every run on it.

The library's ``'auto'`` times the backends at its first use in a process
(:func:`pyg_diffcl.ops.autotune.auto_backend`). A command-line run goes one step further, so that two runs
of the same seed on one host are bit-identical whichever process ran them: the first run on a host times the
backends and writes the choice to ``backends.json`` in the cache directory (``$PYG_DIFFCL_CACHE`` or
``~/.cache/pyg_diffcl``), keyed by the host line of :func:`~pyg_diffcl.ops.host_description` (CPU, threads,
BLAS, torch, GPU) and the device; later runs read it. Delete the file to time again, or name a backend with
``--set train.backend=NAME``. Each run records the backend it used (``metrics.json``, and the resume
checkpoint), and ``--resume`` continues on it.
"""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from ..datasets.files import atomic_write
from ..datasets.mmrec import default_cache_dir
from ..ops import available_backends, format_host, host_description
from ..ops.autotune import choose_backend, time_backends

#: The file of per-host choices in the cache directory.
CHOICES_FILE = 'backends.json'


def host_key(device: torch.device) -> str:
    """What a backend choice depends on: the host line, the device, and the backends installed."""
    return f'{format_host(host_description(device))} | device {device} | {",".join(available_backends())}'


def _read(path: Path) -> Dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        warnings.warn(f'{path}: unreadable ({type(e).__name__}); timing the sparse backends again', UserWarning)
        return {}
    return data if isinstance(data, dict) else {}


def host_backend(device: torch.device, cache_dir: Optional[Path] = None) -> str:
    """The backend ``auto`` stands for on this host and :obj:`device`: read from ``backends.json``, else timed
    (:func:`~pyg_diffcl.ops.autotune.time_backends`) and written there. A cache directory that cannot be
    written costs only the record (the choice is timed again next time)."""
    path = Path(cache_dir if cache_dir is not None else default_cache_dir()) / CHOICES_FILE
    key = host_key(device)
    entry = _read(path).get(key)
    if isinstance(entry, dict) and entry.get('backend') in available_backends():
        return entry['backend']
    times = time_backends(device=device)
    choice = choose_backend(times)
    choices = _read(path)  # again: another process may have written meanwhile
    choices[key] = {'backend': choice, 'fwdbwd_ms': {b: round(t * 1e3, 3) for b, t in times.items()},
                    'timed_at': time.strftime('%Y-%m-%dT%H:%M:%S%z')}
    text = (json.dumps(choices, indent=1, sort_keys=True) + '\n').encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: f.write(text))
    except OSError as e:
        warnings.warn(f'could not record the sparse backend choice in {path}: {e.strerror or e}', UserWarning)
    return choice


def run_backend(requested: str, device: torch.device, recorded: Optional[str] = None) -> str:
    """The backend a run uses: :obj:`requested` when it names one; for ``auto``, the :obj:`recorded` one of
    the run being resumed or re-read, else :func:`host_backend`."""
    if requested != 'auto':
        return requested
    return recorded if recorded in available_backends() else host_backend(device)

