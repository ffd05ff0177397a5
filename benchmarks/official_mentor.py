r"""MENTOR's released code (``github.com/Jinfeng-Xu/MENTOR``, MMRec-based) on this library's data split,
selected on validation, resumable: the like-for-like check of ``--model mentor`` against the official code.

    python benchmarks/official_mentor.py --repo PATH/TO/MENTOR --seed S [--temp 0.2] [--mask-weight-g 1e-3]
                                         [--data tiktok] [--image image --text audio] [--epochs 1000]
                                         [--out benchmarks/results/mentor-tiktok/code-sS-t0.2-g0.001]

The released code is run, not copied: this script imports its ``src/`` packages (``utils_package``,
``common``, ``models``) from ``--repo`` and drives its own ``Trainer`` one epoch at a time. What it changes
around that code, and nothing inside it:

* **the data**: the library's split of ``--data`` (train, validation and test interactions, the same for every
  model of ``pyg-diffcl reproduce``), written in MMRec's layout into a scratch directory: ``<name>.inter``
  (``userID``, ``itemID``, ``x_label`` 0/1/2), the two modality files of the code's two slots
  (``image_feat.npy``, ``text_feat.npy``; ``--image`` and ``--text`` name the library's modalities that fill
  them, tiktok: image and audio), and ``user_graph_dict.npy`` with an empty neighbour list per user: the
  code loads that user-user graph and samples it every epoch (``topk_sample``) but its forward pass never
  reads the sample, and an empty list draws no random numbers;
* **the settings**: the repository's ``overall.yaml`` and ``MENTOR.yaml`` as they are (lr 1e-4, reg 1e-3,
  dropout 0.5, ``mask_weight_f`` 1.5, align 0.1, batch 2,048, patience 20 validations), with one point of the
  official grid per run: ``--temp`` (0.2, 0.4 or 0.6) and ``--mask-weight-g`` (1e-4 or 1e-3). Across grid
  points, choose on the ``valid`` figures of ``metrics.json``;
* **selection**: ``valid_metric: Recall@20`` instead of the repository's Recall@10, and ``use_gpu: False``.
  The code's own ``Trainer`` trains, scores validation and test after every epoch (training items masked,
  full ranking) and stops after 20 validations without a new best; the selected epoch is the first with the
  best validation Recall@20, and its test figures are the ones reported. MMRec's ``quick_start`` keeps, across
  its grid, the point with the best *test* figure; that loop is not used;
* **CPU**: ``Tensor.cuda`` returns the tensor (the perturbation noise calls ``.cuda()``), and
  ``nn.Parameter.to`` returns a plain copy as it does when moving to a GPU (on the CPU it returns the
  parameter itself, and the forward pass then fails to assign a tensor to that attribute). ``lmdb`` and the
  raw-image helpers of ``utils_package.data_utils`` (imported for ``use_raw_features``, off here; they need
  torchvision) are stubs that raise if called. ``np.float``, which NumPy 1.24 removed and the code's NDCG
  uses, is the builtin ``float`` it was an alias of.

**Resume.** The released code runs a seed from start to end (hundreds of epochs at about 150 s each on this
machine's CPU). After every epoch this script writes ``OUT/last.pt``: the model, the optimizer and the
learning-rate schedule, the early-stopping state, the training data's shuffled order, and the states of
Python's, NumPy's and torch's generators. Run the same command again after an interruption and the run
continues from the last finished epoch as if it had never stopped; an epoch cut short is trained again.

Writes ``OUT/log.csv`` (one row per epoch: training seconds, loss, validation and test Recall/NDCG at 20
and 50) as it goes, and ``OUT/metrics.json`` once the code's early stopping (or ``--epochs``) ends the run: the
selected epoch, its figures, the median seconds per epoch, the peak resident memory (the largest over the
processes of the run) and the code's commit.
"""
from __future__ import annotations

import argparse
import atexit
import csv
import io
import os
import random
import shutil
import sys
import tempfile
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from official_diffmm import git_commit, library_split, write_metrics  # noqa: E402  (shared with the DiffMM harness)

from pyg_diffcl.datasets.files import atomic_write  # noqa: E402
from pyg_diffcl.training.lock import RunDirectoryBusy, RunDirectoryLock  # noqa: E402

FIELDS = ['epoch', 'train_seconds', 'loss'] + [f'{split}_{m}@{k}' for split in ('valid', 'test')
                                                 for m in ('recall', 'ndcg') for k in (20, 50)]

#: Attributes that MENTOR's forward pass sets to its GCNs' user tables (the same parameters under a second name).
ALIASES = {'v_preference', 't_preference', 'id_preference'}


def write_split(data: str, image: str, text: str, root: Path, name: str) -> dict:
    """The library's split and two modalities of ``data`` in MMRec's layout under ``root``."""
    import numpy as np
    import pandas as pd

    ds, store, image_feat, text_feat = library_split(data, image, text)
    root.mkdir(parents=True, exist_ok=True)
    frames, sizes = [], {}
    for label, (split, ei) in enumerate((('train', store.edge_index), ('valid', store.valid_edge_label_index),
                                         ('test', store.test_edge_label_index))):
        frames.append(pd.DataFrame({'userID': ei[0].numpy(), 'itemID': ei[1].numpy(), 'x_label': label}))
        sizes[split] = int(ei.size(1))
    inter = pd.concat(frames, ignore_index=True)
    # MMRec counts users and items as the largest id + 1 over the file
    if inter.userID.max() + 1 != ds.num_users or inter.itemID.max() + 1 != ds.num_items:
        raise SystemExit(f'--data: the last user or item ids of {data} have no interaction, and MMRec counts '
                         'users and items as the largest id in its file + 1; drop them first')
    inter.to_csv(root / f'{name}.inter', sep='\t', index=False)
    np.save(root / 'image_feat.npy', image_feat.numpy())
    np.save(root / 'text_feat.npy', text_feat.numpy())
    np.save(root / 'user_graph_dict.npy', {u: [[], []] for u in range(ds.num_users)}, allow_pickle=True)
    return {'users': ds.num_users, 'items': ds.num_items, 'interactions': sizes}


def patch_for_cpu() -> None:
    """What the released code needs to run on a CPU without its raw-image stack (see the module docstring)."""
    import numpy as np
    import torch
    if 'float' not in np.__dict__:  # removed in NumPy 1.24; the code's NDCG uses it, as the builtin float
        np.float = float
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
    # moving a parameter to a GPU returns a plain (non-leaf) tensor; on the CPU ``.to`` returns the parameter
    torch.nn.Parameter.to = lambda self, *a, **k: torch.Tensor.to(self.clone(), *a, **k)

    def unavailable(*a, **k):
        raise RuntimeError('raw images are not supported by benchmarks/official_mentor.py')

    stubs = {'lmdb': {}, 'utils_package.data_utils': {
        n: unavailable for n in ('ImageResize', 'ImagePad', 'image_to_tensor', 'load_decompress_img_from_lmdb_value')}}
    for mod, names in stubs.items():
        if mod not in sys.modules:
            stub = types.ModuleType(mod)
            stub.__dict__.update(names)
            sys.modules[mod] = stub


def write_log(path: Path, rows: list) -> None:
    """``log.csv`` with one row per finished epoch, replaced atomically."""
    text = io.StringIO(newline='')
    writer = csv.DictWriter(text, fieldnames=FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, lambda f: f.write(text.getvalue().encode()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--repo', required=True, help='a checkout of github.com/Jinfeng-Xu/MENTOR (its src/)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--temp', type=float, default=0.2, help="the contrast's temperature (official grid: 0.2, 0.4, 0.6)")
    p.add_argument('--mask-weight-g', type=float, default=1e-3,
                   help="the perturbed views' contrast weight (official grid: 1e-4, 1e-3)")
    p.add_argument('--data', default='tiktok', help='a data set name or directory, as for pyg-diffcl train')
    p.add_argument('--image', default='image', help="the modality in the code's vision slot")
    p.add_argument('--text', default='audio', help="the modality in the code's text slot")
    p.add_argument('--epochs', type=int, default=1000,
                   help="the code's epochs (overall.yaml: 1000, with early stopping)")
    p.add_argument('--out', default=None, help='default: benchmarks/results/mentor-tiktok/code-sSEED-tTEMP-gWEIGHT')
    args = p.parse_args()
    repo = Path(args.repo).resolve()
    src = repo / 'src'
    if not (src / 'models' / 'mentor.py').is_file():
        raise SystemExit(f'--repo: {repo} has no src/models/mentor.py (expected a checkout of '
                         'github.com/Jinfeng-Xu/MENTOR)')
    for arg, value in (('--epochs', args.epochs), ('--temp', args.temp), ('--mask-weight-g', args.mask_weight_g)):
        if not value > 0:
            raise SystemExit(f'{arg}: must be positive, got {value}')
    out = Path(args.out or f'benchmarks/results/mentor-tiktok/code-s{args.seed}-t{args.temp:g}-g{args.mask_weight_g:g}')
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    try:
        lock = RunDirectoryLock(out).acquire()  # noqa: F841  (held until the process ends)
    except RunDirectoryBusy as e:
        raise SystemExit(f'--out: {e}')
    if (out / 'metrics.json').is_file():
        print(f'[official MENTOR] {out} has finished (metrics.json); nothing to do', file=sys.stderr)
        return
    commit = git_commit(repo)

    work = Path(tempfile.mkdtemp(prefix='mentor-official-'))
    atexit.register(shutil.rmtree, work, True)  # the scratch copy of the split goes when the process ends
    name = 'data'
    split = write_split(args.data, args.image, args.text, work / 'data' / name, name)
    shutil.copytree(src / 'configs', work / 'configs')
    (work / 'configs' / 'dataset' / f'{name}.yaml').write_text(
        'USER_ID_FIELD: userID\nITEM_ID_FIELD: itemID\nTIME_FIELD: timestamp\nfilter_out_cod_start_users: True\n'
        f"inter_file_name: '{name}.inter'\nvision_feature_file: 'image_feat.npy'\n"
        "text_feature_file: 'text_feat.npy'\nuser_graph_dict_file: 'user_graph_dict.npy'\nfield_separator: \"\\t\"\n")
    overrides = {'use_gpu': False, 'gpu_id': 0, 'valid_metric': 'Recall@20', 'data_path': str(work / 'data') + '/',
                 'epochs': args.epochs, 'seed': [args.seed], 'temp': [args.temp],
                 'mask_weight_g': [args.mask_weight_g]}
    patch_for_cpu()
    sys.path.insert(0, str(src))
    os.chdir(work)  # the code reads its configs from ./configs
    import numpy as np
    import torch
    from common.trainer import Trainer
    from utils_package.configurator import Config
    from utils_package.dataloader import EvalDataLoader, TrainDataLoader
    from utils_package.dataset import RecDataset
    from utils_package.utils import early_stopping, get_model, init_seed

    from pyg_diffcl.training.run import peak_rss_mib

    config = Config('MENTOR', name, dict(overrides))
    # the code's grid loop (quick_start) sets every hyper-parameter to one value of its list; here each list
    # holds one value (the run's grid point), or is the repository's single value
    settings = {}
    for key in dict.fromkeys(['seed', *config['hyper_parameters']]):
        values = config[key] if isinstance(config[key], list) else [config[key]]
        if len(values) != 1:
            raise SystemExit(f'{key}: the configuration lists {values}; this script runs one grid point')
        config[key] = settings[key] = values[0]
    dataset = RecDataset(config)
    train_ds, valid_ds, test_ds = dataset.split()
    for ds in (dataset, train_ds, valid_ds, test_ds):
        str(ds)  # quick_start logs each; their __str__ sets the inter_num that the loaders read
    train_data = TrainDataLoader(config, train_ds, batch_size=config['train_batch_size'], shuffle=True)
    valid_data = EvalDataLoader(config, valid_ds, additional_dataset=train_ds, batch_size=config['eval_batch_size'])
    test_data = EvalDataLoader(config, test_ds, additional_dataset=train_ds, batch_size=config['eval_batch_size'])
    init_seed(config['seed'])
    train_data.pretrain_setup()
    model = get_model('MENTOR')(config, train_data).to(config['device'])
    trainer = Trainer(config, model)

    ckpt = out / 'last.pt'
    rows, start, best, cur_step, peak = [], 0, -1.0, 0, 0.0
    if ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        if state['settings'] != settings or state['split'] != split:
            raise SystemExit(f'--out: {ckpt} was written by another run (settings {state["settings"]}); '
                             'use another --out')
        # the forward pass assigns each branch's user table (a parameter of its GCN) to the model as well, so a
        # trained model's state holds these aliases too; the first forward after the resume assigns them again
        missing, unexpected = model.load_state_dict(state['model'], strict=False)
        if missing or set(unexpected) - ALIASES:
            raise SystemExit(f'--repo: {ckpt} does not fit the code at {repo} (missing {missing}, '
                             f'unexpected {unexpected})')
        trainer.optimizer.load_state_dict(state['optimizer'])
        trainer.lr_scheduler.load_state_dict(state['lr_scheduler'])
        train_data.dataset.df = state['train_df']  # the order that the next epoch's shuffle starts from
        random.setstate(state['random'])
        np.random.set_state(state['numpy'])
        torch.set_rng_state(state['torch'])
        rows, start, best, cur_step, peak = (state['rows'], state['epoch'], state['best'], state['cur_step'],
                                             state['peak_rss_mib'])
        print(f'[official MENTOR] resuming {out} after epoch {start}', file=sys.stderr)
    write_log(out / 'log.csv', rows)

    stopped = False
    for epoch in range(start, args.epochs):
        t0 = time.perf_counter()
        model.pre_epoch_processing()
        loss, _ = trainer._train_epoch(train_data, epoch)
        if torch.is_tensor(loss):  # the code's signal of a NaN loss, on which its fit loop stops
            print(f'[official MENTOR] NaN loss in epoch {epoch + 1}; stopping as the code does', file=sys.stderr)
            stopped = True
            break
        trainer.lr_scheduler.step()
        model.post_epoch_processing()
        seconds = time.perf_counter() - t0
        valid_score, valid = trainer._valid_epoch(valid_data)
        best, cur_step, stop, _ = early_stopping(valid_score, best, cur_step, max_step=trainer.stopping_step,
                                                 bigger=trainer.valid_metric_bigger)
        _, test = trainer._valid_epoch(test_data)
        row = {'epoch': epoch + 1, 'train_seconds': round(seconds, 3),
               'loss': round(float(sum(loss) if isinstance(loss, tuple) else loss), 6)}
        for split_name, res in (('valid', valid), ('test', test)):
            for m in ('recall', 'ndcg'):
                for k in (20, 50):
                    row[f'{split_name}_{m}@{k}'] = float(res[f'{m}@{k}'])
        rows.append(row)
        peak = max(peak, peak_rss_mib())
        state = {'settings': settings, 'split': split, 'epoch': epoch + 1, 'rows': rows, 'best': best,
                 'cur_step': cur_step, 'peak_rss_mib': peak, 'model': model.state_dict(),
                 'optimizer': trainer.optimizer.state_dict(), 'lr_scheduler': trainer.lr_scheduler.state_dict(),
                 'train_df': train_data.dataset.df, 'random': random.getstate(), 'numpy': np.random.get_state(),
                 'torch': torch.get_rng_state()}
        atomic_write(ckpt, lambda f: torch.save(state, f))
        write_log(out / 'log.csv', rows)
        print(f"epoch {epoch + 1:4d}  {seconds:.1f}s  loss {row['loss']:.4f}  valid recall@20 "
              f"{row['valid_recall@20']:.4f}  ndcg@20 {row['valid_ndcg@20']:.4f}", file=sys.stderr, flush=True)
        if stop:
            stopped = True
            break
    if not rows:
        raise SystemExit('[official MENTOR] no epoch finished')

    head = {'code': 'github.com/Jinfeng-Xu/MENTOR', 'commit': commit, 'settings': settings}
    write_metrics(out, 'MENTOR', head, args, split, rows, peak, stopped_early=stopped)

if __name__ == '__main__':
    main()
