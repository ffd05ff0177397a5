r"""A training run end to end, and its run directory.

``RUN_DIR`` holds:

* ``config.yaml`` -- the full resolved configuration (package versions in its header comment);
* ``log.csv`` -- one row per epoch: loss, seconds, mean and largest gradient norm, every validation metric;
* ``best.pt`` -- the weights of the validation-selected epoch, written atomically when it improves;
* ``metrics.json`` -- written last: model, data set, seed, selected epoch, timings, data summary with
  checksums, and the ``valid`` and ``test`` metrics of the selected epoch (test computed once, at the end);
* ``curves.png`` -- training loss and validation Recall@20 / NDCG@20 per epoch.
"""
from __future__ import annotations

import csv
import json
import os
import platform
import random
import resource
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from torch import Tensor

from .. import __version__
from ..datasets import MMRecDataset
from ..datasets.mmrec import EDGE_TYPE
from ..errors import ConfigError, DataError, TrainingDiverged
from ..evaluation import FullRankingEvaluator, top_k
from ..models import MODELS, Recommender
from ..ops import BipartiteAdj, tune_allocator
from .config import RunConfig, from_dict
from .trainer import EpochRecord, NonFiniteLossError, Trainer, model_scores

CHECKPOINT = 'best.pt'


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU runs are then deterministic)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1024 * 1024) if sys.platform == 'darwin' else kb / 1024


def atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same directory, flush, fsync, rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def versions() -> Dict[str, str]:
    import torch_geometric
    out = {'pyg_diffcl': __version__, 'python': platform.python_version(), 'torch': torch.__version__,
           'torch_geometric': torch_geometric.__version__, 'numpy': np.__version__}
    for mod in ('torch_scatter', 'torch_sparse'):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - optional extras
            out[mod] = 'not installed'
    return out


def resolve_device(name: str) -> torch.device:
    if name.startswith('cuda') and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available in this torch build / machine "
                          f"(torch {torch.__version__}); use --device cpu")
    return torch.device(name)


@dataclass
class Prepared:
    """Everything a run needs, built from its configuration."""
    config: RunConfig
    dataset: MMRecDataset
    model: Recommender
    adj: BipartiteAdj
    device: torch.device

    @property
    def graph(self):
        return self.dataset[0]

    def evaluator(self, split: str) -> FullRankingEvaluator:
        """The evaluator of ``'valid'`` or ``'test'`` (training items excluded; validation items too for
        test when ``eval.mask_valid_for_test``)."""
        store = self.graph[EDGE_TYPE]
        exclude = [store.edge_index]
        if split == 'test' and self.config.eval.mask_valid_for_test:
            exclude.append(store.valid_edge_label_index)
        return FullRankingEvaluator(store[f'{split}_edge_label_index'], exclude, self.dataset.num_users,
                                    self.dataset.num_items, self.config.eval.ks, self.config.eval.block_size)


def prepare(config: RunConfig, dataset: Optional[MMRecDataset] = None) -> Prepared:
    """Load the data (validating every requested modality), seed, and build the model and the graph."""
    device = resolve_device(config.train.device)
    if dataset is None:
        dataset = MMRecDataset(config.data.name, modalities=config.data.modalities)
    seed_everything(config.train.seed)
    cls = MODELS[config.model_name]
    try:
        model = cls.from_config(config.model, dataset).to(device)
    except ValueError as e:  # a constructor's range check on a configured value
        if isinstance(e, (ConfigError, DataError)):
            raise
        raise ConfigError(f'model ({config.model_name}): {e}') from None
    adj = BipartiteAdj.from_data(dataset[0], backend=config.train.backend).to(device)
    return Prepared(config, dataset, model, adj, device)


def data_summary(dataset: MMRecDataset) -> Dict[str, Any]:
    m = dataset.meta
    return {
        'name': m['name'],
        'path': m['path'],
        'users': m['num_users'],
        'items': m['num_items'],
        'interactions': m['interactions'],
        'modalities': m['modalities'],
        'items_without_training_interactions': m['items_without_training_interactions'],
        'duplicates_dropped': m['duplicates_dropped'],
        'sha256': m['sha256'],
    }


def _write_curves(path: Path, history: List[EpochRecord], best_epoch: int, metric: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    epochs = [r.epoch for r in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.plot(epochs, [r.loss for r in history], color='C0')
    ax1.set_xlabel('epoch')
    ax1.set_ylabel('training loss')
    ax1.set_title('loss')
    for key, color in (('recall@20', 'C1'), ('ndcg@20', 'C2')):
        if history and key in history[0].valid:
            ax2.plot(epochs, [r.valid[key] for r in history], color=color, label=f'valid {key}')
    ax2.axvline(best_epoch, color='grey', linestyle='--', linewidth=1, label=f'selected ({metric})')
    ax2.set_xlabel('epoch')
    ax2.set_title('validation')
    ax2.legend(loc='lower right', fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_checkpoint(path: Path, state: Dict[str, Tensor], epoch: int, config: RunConfig,
                    sha256: Dict[str, str]) -> None:
    payload = {'model': state, 'epoch': epoch, 'config': config.to_dict(), 'data_sha256': sha256}
    atomic_write(path, lambda f: torch.save(payload, f))


def check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse to overwrite a completed run; create the directory; check it is writable."""
    if (out / 'metrics.json').exists() and not overwrite:
        raise ConfigError(f'--out {out}: holds a completed run (metrics.json); pass --overwrite to replace it')
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / '.write-test'
        probe.write_bytes(b'')
        probe.unlink()
    except OSError as e:
        raise ConfigError(f'--out {out}: not writable ({e.strerror})') from None
    for name in ('metrics.json', 'log.csv', 'curves.png', CHECKPOINT):
        if (out / name).exists():
            (out / name).unlink()


def train_run(config: RunConfig, out: str | Path, overwrite: bool = False, quiet: bool = False,
              log=print) -> Dict[str, Any]:
    """Train, select on validation, test the selected epoch once, write the run directory.

    Returns the content of ``metrics.json``. Applies :func:`~pyg_diffcl.ops.tune_allocator` (opt out with
    ``PYG_DIFFCL_TUNE_MALLOC=0``).
    """
    tune_allocator()
    out = Path(out)
    check_out_dir(out, overwrite)
    prep = prepare(config)
    ds, model = prep.dataset, prep.model
    say = (lambda *a: None) if quiet else log
    say(f'[pyg-diffcl] {ds}')
    say(f'[pyg-diffcl] {model} on {prep.device}, sparse backend {prep.adj.backend!r}')

    cfg_text = ''.join(f'# {k}: {v}\n' for k, v in versions().items())
    import yaml
    cfg_text += yaml.safe_dump(config.to_dict(), sort_keys=False)
    (out / 'config.yaml').write_text(cfg_text)

    train_ei = ds[0][EDGE_TYPE].edge_index
    sampler = model.make_sampler(train_ei, config.train.batch_size, config.train.seed)
    valid_eval = prep.evaluator('valid')
    if valid_eval.num_eval_users == 0:
        raise DataError('the validation split is empty: it is needed to select the epoch', ds.files.inter)
    sha = ds.meta['sha256']
    metric_keys = [f'{n}@{k}' for n in ('recall', 'ndcg', 'precision', 'map', 'hitrate') for k in config.eval.ks]
    log_path = out / 'log.csv'
    with open(log_path, 'w', newline='') as f:
        csv.writer(f).writerow(['epoch', 'loss', 'train_seconds', 'eval_seconds', 'grad_norm', 'grad_norm_max']
                               + [f'valid_{k}' for k in metric_keys])

    def on_epoch(rec: EpochRecord, improved: bool) -> None:
        with open(log_path, 'a', newline='') as f:
            csv.writer(f).writerow([rec.epoch, f'{rec.loss:.6f}', f'{rec.train_seconds:.4f}',
                                    f'{rec.eval_seconds:.4f}', f'{rec.grad_norm:.6g}', f'{rec.grad_norm_max:.6g}']
                                   + [f'{rec.valid[k]:.6f}' for k in metric_keys])
        if improved:
            save_checkpoint(out / CHECKPOINT, model.state_dict(), rec.epoch, config, sha)
        say(f'epoch {rec.epoch:4d}  loss {rec.loss:.4f}  valid recall@20 {rec.valid.get("recall@20", float("nan")):.4f}'
            f'  ndcg@20 {rec.valid.get("ndcg@20", float("nan")):.4f}  {rec.train_seconds:.2f}s train'
            f' + {rec.eval_seconds:.2f}s eval{"  *" if improved else ""}')

    trainer = Trainer(model, prep.adj, sampler, valid_eval, lr=config.train.lr, epochs=config.train.epochs,
                      weight_decay=config.train.weight_decay,
                      patience=config.train.patience, metric=config.eval.metric, on_epoch=on_epoch,
                      show_progress=not quiet)
    try:
        result = trainer.fit()
    except NonFiniteLossError as e:
        kept = (f'the best epoch so far is kept in {out / CHECKPOINT}' if (out / CHECKPOINT).exists()
                else 'no epoch had finished, so there is no checkpoint')
        raise TrainingDiverged(f'training stopped: {e}; {kept} (log.csv has each epoch\'s gradient norm; '
                               f'try a lower train.lr)') from None
    if result.best_epoch == 0:
        raise KeyboardInterrupt  # interrupted before the first epoch finished: nothing to report
    if result.interrupted:
        say(f'[pyg-diffcl] interrupted after epoch {result.epochs_run}: reporting the best epoch so far')

    model.load_state_dict(result.best_state)
    model.eval()
    with torch.no_grad():
        score_fn = model_scores(model, prep.adj)
        t0 = time.perf_counter()
        test_eval = prep.evaluator('test')
        test: Dict[str, Optional[float]] = dict(test_eval.evaluate(score_fn))
        test_seconds = time.perf_counter() - t0
    if test_eval.num_eval_users == 0:
        warnings.warn(f'{ds.files.inter}: the test split is empty: the test metrics are null', UserWarning)
        test = {k: None for k in test}
    history = result.history
    metrics = {
        'model': config.model_name,
        'dataset': ds.name,
        'seed': config.train.seed,
        'best_epoch': result.best_epoch,
        'epochs_run': result.epochs_run,
        'interrupted': result.interrupted,
        'seconds_per_epoch': float(np.mean([r.train_seconds for r in history])),
        'eval_seconds_per_epoch': float(np.mean([r.eval_seconds for r in history])),
        'test_eval_seconds': test_seconds,
        'peak_rss_mib': round(peak_rss_mib(), 1),
        'selection': 'valid',
        'selection_metric': config.eval.metric,
        'device': str(prep.device),
        'backend': prep.adj.backend,
        'data': data_summary(ds),
        'valid': result.best_valid,
        'test': test,
    }
    _write_curves(out / 'curves.png', history, result.best_epoch, config.eval.metric)
    text = json.dumps(metrics, indent=2).encode()
    atomic_write(out / 'metrics.json', lambda f: f.write(text))
    fmt = lambda v: 'n/a' if v is None else f'{v:.4f}'  # noqa: E731
    say(f'[pyg-diffcl] selected epoch {result.best_epoch} of {result.epochs_run} on valid {config.eval.metric}; '
        f'test recall@20 {fmt(test.get("recall@20"))} ndcg@20 {fmt(test.get("ndcg@20"))}'
        f'  ({metrics["seconds_per_epoch"]:.2f} s/epoch) -> {out}')
    return metrics


# ---------------------------------------------------------------------------------------------- reuse a run
def load_run(run_dir: str | Path, device: Optional[str] = None) -> Prepared:
    """Rebuild a finished run's model from ``config.yaml`` and ``best.pt`` (loaded with
    ``weights_only=True``), checking that the data files still have the recorded checksums."""
    import yaml

    run_dir = Path(run_dir)
    cfg_path, ckpt_path = run_dir / 'config.yaml', run_dir / CHECKPOINT
    for p in (cfg_path, ckpt_path):
        if not p.is_file():
            raise ConfigError(f'{run_dir}: not a run directory with a checkpoint (missing {p.name})')
    with open(cfg_path) as f:
        config = from_dict(yaml.safe_load(f))
    if device is not None:
        config.train.device = device
    ckpt = torch.load(ckpt_path, map_location='cpu', weights_only=True)
    prep = prepare(config)
    current = prep.dataset.meta['sha256']
    for name, digest in ckpt.get('data_sha256', {}).items():
        if current.get(name) != digest:
            raise DataError(f'differs from the data this run was trained on (sha256 {current.get(name)} vs '
                            f'{digest})', Path(prep.dataset.meta['path']) / name)
    prep.model.load_state_dict(ckpt['model'])
    prep.model.eval()
    return prep


def evaluate_run(run_dir: str | Path, split: str = 'test') -> Dict[str, float]:
    """Metrics of a run's selected checkpoint on ``'valid'`` or ``'test'``."""
    prep = load_run(run_dir)
    with torch.no_grad():
        return prep.evaluator(split).evaluate(model_scores(prep.model, prep.adj))


def recommend_run(run_dir: str | Path, k: int, out: str | Path) -> int:
    """Write the top-:obj:`k` items of every user (``userID  itemID  rank``), excluding the items the
    test evaluation excludes (training items; validation items too with ``eval.mask_valid_for_test``).
    Returns the number of rows written."""
    if k <= 0:
        raise ConfigError(f'--k: must be positive, got {k}')
    prep = load_run(run_dir)
    test_eval = prep.evaluator('test')
    users = torch.arange(prep.dataset.num_users)
    out = Path(out)
    if out.parent and not out.parent.exists():
        raise ConfigError(f'--out {out}: directory {out.parent} does not exist')
    rows = 0
    with torch.no_grad():
        score_fn = model_scores(prep.model, prep.adj)
        lines = ['userID\titemID\trank\n']
        for block in test_eval.blocks(users):
            scores = score_fn(block.users)
            pred = top_k(scores, k, block.exclude)
            ranked = torch.isfinite(scores.gather(1, pred)).cpu()  # fewer than k unexcluded items
            for u, items, ok in zip(block.users.tolist(), pred.cpu().tolist(), ranked.tolist()):
                items = [i for i, keep in zip(items, ok) if keep]
                lines.extend(f'{u}\t{i}\t{r}\n' for r, i in enumerate(items, start=1))
                rows += len(items)
    data = ''.join(lines).encode()
    atomic_write(out, lambda f: f.write(data))
    return rows
