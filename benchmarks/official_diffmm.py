r"""DiffMM's released code (``github.com/HKUDS/DiffMM``) on this library's data split, selected on validation:
the like-for-like check of ``--model diffmm`` against the official code over the same seeds.

    python benchmarks/official_diffmm.py --repo PATH/TO/DiffMM --seed S [--data tiktok] [--epochs 50]
                                         [--image image --text audio] [--out benchmarks/results/diffmm-tiktok/code-sS]

The released code is run, not copied: this script imports its ``Main.py`` (``Coach``, ``DataHandler``,
``seed_it``) from ``--repo`` and drives it. What it changes around that code, and nothing inside it:

* **the data**: the library's split of ``--data`` (train, validation and test interactions, the same for
  every model of ``pyg-diffcl reproduce``), written in the released code's layout (``trnMat.pkl``,
  ``valMat.pkl``, ``tstMat.pkl`` as ``scipy.sparse.coo_matrix`` of shape users x items, ``image_feat.npy``,
  ``text_feat.npy``) into a scratch directory. The released code has two modality slots outside its own
  three-modality tiktok files (image and text); ``--image`` and ``--text`` name the library's modalities that
  fill them (tiktok: image and audio, as in the issue's anchor), and the code runs its two-modality path
  (``--data baby`` for its path names only);
* **the settings**: its README's tiktok command (``--reg 1e-4 --ssl_reg 1e-2 --epoch 50 --trans 1 --e_loss
  0.1 --cl_method 1``) with the library's ``--seed``;
* **selection**: the released code never loads the validation split and reports its best *test* epoch. Here
  each epoch is scored on validation and on test with the code's own ``Coach.testEpoch`` (training items
  masked, Recall@20 and NDCG@20 averaged over the users with held-out items, as in the library's evaluator);
  the selected epoch is the one with the best validation Recall@20, and its test figures are the ones
  reported. No test figure chooses anything;
* **CPU**: ``.cuda()`` of tensors and modules returns them unchanged, ``coo_matrix.A`` (removed in SciPy
  1.14) is ``toarray()``, and ``setproctitle`` (a process-title package the code imports) is a stub.

Writes ``OUT/log.csv`` (one row per epoch: training seconds, validation and test Recall@20 / NDCG@20) as it
goes, and ``OUT/metrics.json`` at the end (the selected epoch, its figures, the median seconds per epoch, the
peak resident memory, the code's commit). The released code cannot resume: an interrupted run starts again.
"""
from __future__ import annotations

import argparse
import atexit
import csv
import json
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

#: The released README's tiktok command, without its data name.
OFFICIAL_TIKTOK = ['--reg', '1e-4', '--ssl_reg', '1e-2', '--trans', '1', '--e_loss', '0.1', '--cl_method', '1']


def library_split(data: str, image: str, text: str):
    """The library's data set ``data``, its interaction store (train edges, validation and test pairs) and the
    features of the two modalities named ``image`` and ``text``; a missing modality exits naming the option."""
    from pyg_diffcl.datasets import MMRecDataset
    from pyg_diffcl.datasets.mmrec import EDGE_TYPE
    ds = MMRecDataset(data)
    feats = ds.features()
    for arg, name in (('--image', image), ('--text', text)):
        if name not in feats:
            raise SystemExit(f"{arg}: no modality {name!r} in {data} (it has: {', '.join(sorted(feats)) or 'none'})")
    return ds, ds[0][EDGE_TYPE], feats[image], feats[text]


def git_commit(repo: Path):
    """The checked-out commit of ``repo``, or None where it is not a git checkout."""
    try:
        return subprocess.run(['git', '-C', str(repo), 'rev-parse', 'HEAD'], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def write_metrics(out: Path, label: str, head: dict, args: argparse.Namespace, split: dict, rows: list,
                  peak_mib: float, **extra) -> None:
    """``OUT/metrics.json`` of a finished run: the first epoch of the best validation Recall@20 among ``rows``
    (one dict per epoch, ``valid_<metric>`` and ``test_<metric>`` keys), its figures on both splits, the median
    training seconds per epoch and the peak resident memory; ``head`` and ``extra`` name the code and settings."""
    import torch
    best = max(rows, key=lambda r: r['valid_recall@20'])  # the first epoch of the best validation value
    metrics = {
        **head, 'data': args.data, 'modalities': {'image': args.image, 'text': args.text}, 'split': split,
        'seed': args.seed, 'selection': 'valid', 'selection_metric': 'recall@20', 'best_epoch': best['epoch'],
        'epochs_run': len(rows), **extra,
        'valid': {k.split('_', 1)[1]: v for k, v in best.items() if k.startswith('valid_')},
        'test': {k.split('_', 1)[1]: v for k, v in best.items() if k.startswith('test_')},
        'seconds_per_epoch': statistics.median(r['train_seconds'] for r in rows),
        'peak_rss_mib': round(peak_mib, 1),
        'threads': torch.get_num_threads(),
    }
    (out / 'metrics.json').write_text(json.dumps(metrics, indent=2))
    print(f"[official {label}] seed {args.seed}: selected epoch {best['epoch']} of {len(rows)} on valid recall@20 "
          f"{best['valid_recall@20']:.4f}; test recall@20 {best['test_recall@20']:.4f} ndcg@20 "
          f"{best['test_ndcg@20']:.4f} -> {out}", file=sys.stderr)


def write_split(data: str, image: str, text: str, root: Path) -> dict:
    """The library's split and two modalities of ``data`` in the released code's file layout under ``root``."""
    import numpy as np
    import scipy.sparse as sp

    ds, store, image_feat, text_feat = library_split(data, image, text)
    shape = (ds.num_users, ds.num_items)
    root.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for fname, ei in (('trnMat.pkl', store.edge_index), ('valMat.pkl', store.valid_edge_label_index),
                      ('tstMat.pkl', store.test_edge_label_index)):
        u, i = ei[0].numpy(), ei[1].numpy()
        mat = sp.coo_matrix((np.ones(len(u), dtype=np.float32), (u, i)), shape=shape)
        with open(root / fname, 'wb') as f:
            pickle.dump(mat, f)
        sizes[fname] = int(len(u))
    np.save(root / 'image_feat.npy', image_feat.numpy())
    np.save(root / 'text_feat.npy', text_feat.numpy())
    return {'users': shape[0], 'items': shape[1], 'interactions': sizes}


def patch_for_cpu() -> None:
    """What the released code needs to run on a CPU with today's SciPy (see the module docstring)."""
    import scipy.sparse as sp
    import torch
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
    if not hasattr(sp.coo_matrix, 'A'):
        sp.coo_matrix.A = property(lambda self: self.toarray())
    if 'setproctitle' not in sys.modules:
        stub = types.ModuleType('setproctitle')
        stub.setproctitle = lambda *a, **k: None
        sys.modules['setproctitle'] = stub


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--repo', required=True, help="a checkout of github.com/HKUDS/DiffMM (its Main.py)")
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--data', default='tiktok', help='a data set name or directory, as for pyg-diffcl train')
    p.add_argument('--image', default='image', help="the modality in the code's image slot")
    p.add_argument('--text', default='audio', help="the modality in the code's text slot")
    p.add_argument('--epochs', type=int, default=50, help="the code's --epoch (its README: 50 on tiktok)")
    p.add_argument('--out', default=None, help='default: benchmarks/results/diffmm-tiktok/code-sSEED')
    args = p.parse_args()
    repo = Path(args.repo).resolve()
    if not (repo / 'Main.py').is_file():
        raise SystemExit(f'--repo: {repo} has no Main.py (expected a checkout of github.com/HKUDS/DiffMM)')
    out = Path(args.out or f'benchmarks/results/diffmm-tiktok/code-s{args.seed}').resolve()
    out.mkdir(parents=True, exist_ok=True)
    commit = git_commit(repo)

    work = Path(tempfile.mkdtemp(prefix='diffmm-official-'))
    atexit.register(shutil.rmtree, work, True)  # the scratch copy of the split goes when the run ends
    split = write_split(args.data, args.image, args.text, work / 'Datasets' / 'baby')
    patch_for_cpu()
    code_args = ['--data', 'baby', *OFFICIAL_TIKTOK, '--epoch', str(args.epochs), '--seed', str(args.seed)]
    sys.argv = ['Main.py', *code_args]
    sys.path.insert(0, str(repo))
    os.chdir(work)
    import DataHandler  # the released code; its argument parser (Params) reads sys.argv on import
    import Main
    import torch
    from torch.utils.data import DataLoader

    from pyg_diffcl.training.run import peak_rss_mib

    Main.seed_it(args.seed)
    handler = Main.DataHandler()
    handler.LoadData()
    val = handler.loadOneFile(handler.predir + 'valMat.pkl')
    loaders = {'valid': DataLoader(DataHandler.TstData(val, handler.trnMat), batch_size=Main.args.tstBat, shuffle=False,
                                   num_workers=0),
               'test': handler.tstLoader}
    coach = Main.Coach(handler)
    coach.prepareModel()

    fields = ['epoch', 'train_seconds', 'valid_recall@20', 'valid_ndcg@20', 'test_recall@20', 'test_ndcg@20']
    rows = []
    with open(out / 'log.csv', 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for ep in range(args.epochs):
            start = time.perf_counter()
            coach.trainEpoch()
            seconds = time.perf_counter() - start
            row = {'epoch': ep + 1, 'train_seconds': round(seconds, 3)}
            with torch.no_grad():
                for split_name, loader in loaders.items():
                    handler.tstLoader = loader  # testEpoch reads both the loader and its dataset from here
                    res = coach.testEpoch()
                    row[f'{split_name}_recall@20'] = float(res['Recall'])
                    row[f'{split_name}_ndcg@20'] = float(res['NDCG'])
            handler.tstLoader = loaders['test']
            rows.append(row)
            writer.writerow(row)
            f.flush()
            print(f"\nepoch {ep + 1:3d}  {seconds:.1f}s  valid recall@20 {row['valid_recall@20']:.4f}  "
                  f"ndcg@20 {row['valid_ndcg@20']:.4f}", file=sys.stderr, flush=True)

    head = {'code': 'github.com/HKUDS/DiffMM', 'commit': commit, 'code_args': code_args}
    write_metrics(out, 'DiffMM', head, args, split, rows, peak_rss_mib())


if __name__ == '__main__':
    main()
