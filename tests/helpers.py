"""Helpers shared by the tests: a small random data set in MMRec's layout, and the CLI in a process of its own."""
import os
from pathlib import Path
from typing import Dict, Optional

import numpy as np


def write_dataset(root: Path, num_users: int = 30, num_items: int = 25, per_user: int = 6,
                  modalities: Optional[Dict[str, int]] = None, seed: int = 0, extra_columns: bool = False,
                  feat_dtype=np.float16) -> Path:
    """A small random data set in MMRec's layout: every user has >= 3 training items, one validation
    item for even users and one test item for every user; every item exists (ids 0..num_items-1)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for u in range(num_users):
        items = rng.choice(num_items, size=per_user, replace=False)
        labels = [0] * (per_user - 2) + [1 if u % 2 == 0 else 0, 2]
        rows += [(u, int(i), x) for i, x in zip(items, labels)]
    present = {i for _, i, _ in rows}
    for i in range(num_items):  # make sure the largest id occurs, so num_items is as asked
        if i not in present:
            rows.append((i % num_users, i, 0))
    seen = set()
    uniq = [(u, i, x) for u, i, x in rows if not ((u, i) in seen or seen.add((u, i)))]
    header = 'userID\titemID\tx_label' + ('\trating\ttimestamp' if extra_columns else '')
    lines = [header]
    for n, (u, i, x) in enumerate(uniq):
        line = f'{u}\t{i}\t{x}'
        if extra_columns:
            line += f'\t{1 + n % 5}.0\t{1_600_000_000 + n}'
        lines.append(line)
    (root / 'toy.inter').write_text('\n'.join(lines) + '\n')
    for name, dim in (modalities if modalities is not None else {'image': 8, 'text': 5}).items():
        np.save(root / f'{name}_feat.npy', rng.normal(size=(num_items, dim)).astype(feat_dtype))
    return root


def run_cli(*args: str, cwd: Optional[Path] = None, env: Optional[dict] = None, timeout: int = 600):
    """Run ``python -m pyg_diffcl ARGS`` as a process of its own (forked from a server that has imported
    torch already, see :mod:`tests.forkserver`); returns the CompletedProcess."""
    from tests.forkserver import run_python
    return run_python(['-m', 'pyg_diffcl', *args], cwd=cwd, env=env, timeout=timeout)


def tiny_run_config(data, model: str = 'lightgcn', sets=(), **train):
    """A few-second run configuration on a small data set: d = 4, batches of 16, 3 epochs, plus
    ``train.KEY=VALUE`` for every keyword and the ``--set`` strings :obj:`sets`."""
    from pyg_diffcl.training.config import parse_set, resolve_config
    base = [f'data.name={data}', 'model.embedding_dim=4', 'train.batch_size=16', 'train.epochs=3']
    return resolve_config(model, [parse_set(base + list(sets) + [f'train.{k}={v}' for k, v in train.items()])])


def stop_at_resume_write(monkeypatch, n: int = 2):
    """Make the :obj:`n`-th write of the resume checkpoint fail as a full disk does (``ENOSPC``), so that a run
    stops with the checkpoint of write :obj:`n` - 1 intact; returns a function that undoes it."""
    import errno
    from pyg_diffcl.training import run as run_module
    real, writes = run_module.atomic_write, {'n': 0}

    def filling_disk(path, write):
        if os.path.basename(path) == run_module.RESUME_CHECKPOINT:
            writes['n'] += 1
            if writes['n'] == n:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, write)
    monkeypatch.setattr(run_module, 'atomic_write', filling_disk)
    return lambda: monkeypatch.setattr(run_module, 'atomic_write', real)
