r"""A training run end to end, and its run directory.

``RUN_DIR`` holds:

* ``config.yaml`` -- the full resolved configuration (package versions in its header comment);
* ``log.csv`` -- one row per epoch: loss, seconds, mean and largest gradient norm, every validation metric;
* ``best.pt`` -- the weights of the validation-selected epoch, written atomically when it improves;
* ``last.pt`` -- while the run is unfinished: the state to resume from (:meth:`Trainer.state_dict
  <pyg_diffcl.training.Trainer.state_dict>`: model, optimizer, random states, sampler position,
  early-stopping state), written atomically after every epoch and when SIGINT stops the run mid-epoch;
  removed when the run completes;
* ``metrics.json`` -- written last: model, data set, seed, selected epoch, timings, data summary with
  checksums, and the ``valid`` and ``test`` metrics of the selected epoch (test computed once, at the end);
* ``curves.png`` -- training loss and validation Recall@20 / NDCG@20 per epoch.

A run directory with ``metrics.json`` is complete; one with ``last.pt`` and no ``metrics.json`` was
interrupted and continues with ``pyg-diffcl train --resume RUN_DIR`` (:func:`resume_run`), which ends with the
same ``metrics.json`` as a run that was never stopped, timings and peak memory aside.
"""
from __future__ import annotations

import csv
import io
import json
import os
import platform
import random
import resource
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch
from torch import Tensor

from .. import __version__
from ..datasets import MMRecDataset
from ..datasets.files import atomic_write
from ..datasets.mmrec import EDGE_TYPE
from ..errors import ConfigError, DataError, TrainingDiverged, TrainingInterrupted, UserInputError
from ..evaluation import FullRankingEvaluator, top_k
from ..models import MODELS, Recommender
from ..ops import BipartiteAdj
from ..ops.autotune import set_auto_backend
from .backend import host_backend, run_backend
from .config import RunConfig, check_config, from_dict
from .distributed import DistContext, barrier, broadcast_object, init_distributed
from .lock import RunDirectoryLock, writing
from .trainer import EpochRecord, NonFiniteLossError, Trainer, model_scores

CHECKPOINT = 'best.pt'
#: The state an unfinished run resumes from.
RESUME_CHECKPOINT = 'last.pt'
_RESUME_FORMAT = 1
#: The settings ``--resume`` may change (``train.<key>``).
RESUME_MAY_CHANGE = ('epochs', 'patience')


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU runs are then deterministic)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1024 * 1024) if sys.platform == 'darwin' else kb / 1024


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


def git_commit() -> Optional[str]:
    """The commit of the source tree this package runs from, with ``-dirty`` for uncommitted changes; :obj:`None`
    when it is not a git checkout (an installed wheel) or git is missing."""
    root = Path(__file__).resolve().parents[2]
    if not (root / '.git').exists():
        return None
    try:
        head = subprocess.run(['git', '-C', str(root), 'rev-parse', 'HEAD'], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(['git', '-C', str(root), 'status', '--porcelain', '--untracked-files=no'],
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ('-dirty' if dirty.returncode == 0 and dirty.stdout.strip() else '')
    except (OSError, subprocess.SubprocessError):
        return None


def held_config(run_dir: Path) -> Optional[Dict[str, Any]]:
    """The configuration a run directory's ``config.yaml`` holds, read through the current defaults as a
    dictionary (:meth:`RunConfig.to_dict`), or :obj:`None` when it is missing or unreadable."""
    import yaml
    path = Path(run_dir) / 'config.yaml'
    if not path.is_file():
        return None
    try:
        return from_dict(yaml.safe_load(path.read_text())).to_dict()
    except Exception:  # noqa: BLE001 - an unreadable or older file holds no configuration we can match
        return None


def config_text(config: RunConfig, sha256: Dict[str, str], valid_sample: Optional[Tensor] = None,
                valid_total: Optional[int] = None) -> str:
    """``config.yaml``: a header of comments (package versions, git commit, sha256 of every data file, the
    validation users' sample when ``eval.valid_users`` draws one), then the resolved configuration (which
    :func:`from_dict` reads back; the comments are ignored)."""
    import hashlib

    import yaml
    lines = [f'# {k}: {v}' for k, v in versions().items()]
    lines.append(f'# git_commit: {git_commit() or "unknown (not a git checkout)"}')
    lines += [f'# data_sha256 {name}: {digest}' for name, digest in sorted(sha256.items())]
    if valid_sample is not None:
        ids = ','.join(str(int(u)) for u in valid_sample)
        lines.append(f'# valid_users_sample: {valid_sample.numel()} of {valid_total} validation users '
                     f'(seed {config.eval.valid_users_seed}); sha256 of the sorted ids joined by commas: '
                     f'{hashlib.sha256(ids.encode()).hexdigest()}; first ids: {ids[:80]}')
    return '\n'.join(lines) + '\n' + yaml.safe_dump(config.to_dict(), sort_keys=False)


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
    #: ``[num_users]`` bool: users with validation/test interactions and none in training.
    cold_users: Optional[Tensor] = None

    @property
    def graph(self):
        return self.dataset[0]

    def valid_population(self) -> Tensor:
        """The sorted users with validation interactions that the evaluation counts."""
        labels = self.graph[EDGE_TYPE]['valid_edge_label_index']
        if self.config.data.cold_users == 'drop' and self.cold_users is not None:
            labels = labels[:, ~self.cold_users[labels[0]]]
        return torch.unique(labels[0])

    def valid_sample(self) -> Optional[Tensor]:
        """The sorted validation users that select the epoch when ``eval.valid_users`` is set (a uniform
        sample without replacement, seeded by ``eval.valid_users_seed``), or :obj:`None`: every user."""
        size = self.config.eval.valid_users
        if size is None:
            return None
        users = self.valid_population()
        if size >= users.numel():
            return None
        gen = torch.Generator().manual_seed(self.config.eval.valid_users_seed)
        return users[torch.randperm(users.numel(), generator=gen)[:size]].sort().values

    def evaluator(self, split: str) -> FullRankingEvaluator:
        """The evaluator of ``'valid'`` or ``'test'`` (training items excluded; validation items too for
        test when ``eval.mask_valid_for_test``)."""
        store = self.graph[EDGE_TYPE]
        exclude = [store.edge_index]
        if split == 'test' and self.config.eval.mask_valid_for_test:
            exclude.append(store.valid_edge_label_index)
        labels = store[f'{split}_edge_label_index']
        if self.config.data.cold_users == 'drop' and self.cold_users is not None:
            labels = labels[:, ~self.cold_users[labels[0]]]
        if split == 'valid':
            sample = self.valid_sample()
            if sample is not None:
                labels = labels[:, torch.isin(labels[0], sample)]
        return FullRankingEvaluator(labels, exclude, self.dataset.num_users,
                                    self.dataset.num_items, self.config.eval.ks, self.config.eval.block_size)


def find_cold_users(dataset: MMRecDataset) -> Tensor:
    """``[num_users]`` bool: the users with validation or test interactions but none in training."""
    trained, held_out = dataset.user_masks()
    return held_out & ~trained


def _first_line_of_user(path: Path, user: int) -> Optional[int]:
    """The 1-based line of :obj:`user`'s first interaction in an ``.inter`` file (for the error message)."""
    with open(path, encoding='utf-8') as f:
        header = f.readline().rstrip('\r\n').split('\t')
        col = header.index('userID') if 'userID' in header else 0
        for n, line in enumerate(f, start=2):
            fields = line.rstrip('\r\n').split('\t')
            if len(fields) > col and fields[col].strip() == str(user):
                return n
    return None


def apply_cold_user_policy(dataset: MMRecDataset, policy: str) -> Tensor:
    """Check ``data.cold_users`` (:class:`~pyg_diffcl.training.config.DataConfig`) against the data: raise
    :class:`DataError` naming the first cold user's file line under ``error``, warn with their number under
    ``keep`` / ``drop``. Returns the cold-user mask."""
    cold = find_cold_users(dataset)
    count = int(cold.sum())
    if count == 0:
        return cold
    first = int(cold.nonzero()[0, 0])
    inter = dataset.files.inter
    if policy == 'error':
        raise DataError(f'user {first} has validation/test interactions but none in training ({count} such '
                        f'user(s)); no model can learn them: set data.cold_users=keep to rank and count them '
                        f'(MMRec\'s protocol) or data.cold_users=drop to leave them out of the evaluation',
                        inter, _first_line_of_user(inter, first))
    verb = 'ranked and counted in the metrics' if policy == 'keep' else 'left out of validation and test'
    warnings.warn(f'{inter}: {count} user(s) have validation/test interactions but none in training (the first '
                  f'is user {first}); data.cold_users={policy}: they are {verb}', UserWarning)
    return cold


def prepare(config: RunConfig, dataset: Optional[MMRecDataset] = None,
            device: Optional[torch.device] = None, recorded_backend: Optional[str] = None) -> Prepared:
    """Load the data (validating every requested modality), seed, and build the model and the graph (on
    :obj:`device`, default ``train.device``). With ``train.backend: auto`` the sparse backend is
    :obj:`recorded_backend` (the one a resumed or re-read run used) or the host's choice
    (:func:`~pyg_diffcl.training.backend.run_backend`)."""
    device = resolve_device(config.train.device) if device is None else device
    if dataset is None:
        dataset = MMRecDataset(config.data.name, modalities=config.data.modalities)
    dataset.knn_method = config.data.knn_method
    cold = apply_cold_user_policy(dataset, config.data.cold_users)
    backend = config.train.backend
    if config.train.deterministic:
        backend = set_deterministic(device, backend)
    backend = run_backend(backend, device, recorded_backend)
    if config.train.backend == 'auto':  # the graphs a model builds itself with 'auto' use the run's backend
        set_auto_backend(backend, device)
    seed_everything(config.train.seed)
    cls = MODELS[config.model_name]
    try:
        model = cls.from_config(config.model, dataset).to(device)
    except ValueError as e:  # the library names Python arguments; say it in files and flags
        if isinstance(e, (ConfigError, DataError)):
            raise
        text = str(e)
        if text.startswith('features: '):
            what, _, rest = text[len('features: '):].partition('; ')
            rest = rest.replace('use_pg=False', 'model.use_pg=false')
            raise ConfigError(f'{what}: the data set has no <modality>_feat.npy file (or no modality was selected: '
                              f'--modalities none or empty)' + (f'; {rest}' if rest else '')) from None
        raise ConfigError(f'model ({config.model_name}): {text}') from None
    adj = BipartiteAdj.from_data(dataset[0], backend=backend).to(device)
    return Prepared(config, dataset, model, adj, device, cold)


def set_deterministic(device: torch.device, backend: str) -> str:
    r"""Make the run's kernels deterministic; returns the sparse backend to use.

    ``torch.use_deterministic_algorithms(True)`` (an operation without a deterministic kernel then raises
    instead of running), ``cudnn.benchmark`` off, and ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (cuBLAS needs a fixed
    workspace to be reproducible; set before the first CUDA call). On CUDA, ``backend: auto`` becomes
    ``index_add``: its scatter-add has a deterministic CUDA kernel in this mode, while cuSPARSE's SpMM
    (``csr``) and torch-scatter's atomics do not promise bit-identical sums; a named atomics backend
    (``torch_scatter``) is refused. On CPU every backend is already deterministic (one thread owns each
    output row), so only the global flag changes; ``benchmarks/train_speed.py`` measures its cost.
    """
    os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    if device.type == 'cuda':
        if backend == 'auto':
            return 'index_add'
        if backend in ('torch_scatter', 'csr', 'edge_index', 'torch_sparse'):
            raise ConfigError(f'train.backend={backend} with train.deterministic on CUDA: this backend\'s sums '
                              f'are not reproducible on CUDA; use auto or index_add')
    return backend


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
    # A bare Figure draws through its own Agg canvas: no pyplot state, no switch of the caller's backend.
    from matplotlib.figure import Figure

    epochs = [r.epoch for r in history]
    fig = Figure(figsize=(10, 3.6))
    ax1, ax2 = fig.subplots(1, 2)
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


def _save_torch(path: Path, payload: Any) -> None:
    """:func:`torch.save` through memory, then an atomic write: a failing write (a full disk) raises the
    file system's :class:`OSError` with its errno, where torch's zip writer would raise a ``RuntimeError``
    about an "unexpected pos"; the previous file stays whole either way."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write(path, lambda f: f.write(buffer.getbuffer()))


def save_checkpoint(path: Path, state: Dict[str, Tensor], epoch: int, config: RunConfig,
                    sha256: Dict[str, str]) -> None:
    payload = {'model': state, 'epoch': epoch, 'config': config.to_dict(), 'data_sha256': sha256}
    _save_torch(path, payload)


def make_run_dir(out: Path) -> None:
    """Create the run directory and check that it is writable (a ConfigError naming ``--out`` otherwise)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / '.write-test'
        probe.write_bytes(b'')
        probe.unlink()
    except OSError as e:
        raise ConfigError(f'--out {out}: not writable ({e.strerror})') from None


def check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse to overwrite a completed or an interrupted run (unless :obj:`overwrite`); then clear the old
    run's files. The directory exists (:func:`make_run_dir`) and its lock is held."""
    if not overwrite:
        if (out / 'metrics.json').exists():
            raise ConfigError(f'--out {out}: holds a completed run (metrics.json); pass --overwrite to replace it')
        if (out / RESUME_CHECKPOINT).exists():
            raise ConfigError(f'--out {out}: holds an interrupted run ({RESUME_CHECKPOINT}); continue it with '
                              f'`pyg-diffcl train --resume {out}`, or pass --overwrite to start again')
    for name in ('metrics.json', 'log.csv', 'curves.png', CHECKPOINT, RESUME_CHECKPOINT):
        if (out / name).exists():
            (out / name).unlink()


_METRIC_NAMES = ('recall', 'ndcg', 'precision', 'map', 'hitrate')


def _log_row(rec: EpochRecord, metric_keys: List[str]) -> List[str]:
    return ([rec.epoch, f'{rec.loss:.6f}', f'{rec.train_seconds:.4f}', f'{rec.eval_seconds:.4f}',
             f'{rec.grad_norm:.6g}', f'{rec.grad_norm_max:.6g}']
            # Validation values in full (repr round-trips a float), so that the early-stopping rule replayed on
            # the log (examples/stopping_rules.py) sees the very values the trainer saw.
            + [repr(float(rec.valid[k])) for k in metric_keys])


def _write_log(path: Path, history: List[EpochRecord], metric_keys: List[str]) -> None:
    """``log.csv`` from scratch (header and the rows of :obj:`history`), atomically."""
    import io
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(['epoch', 'loss', 'train_seconds', 'eval_seconds', 'grad_norm', 'grad_norm_max']
                    + [f'valid_{k}' for k in metric_keys])
    for rec in history:
        writer.writerow(_log_row(rec, metric_keys))
    data = buf.getvalue().encode()
    atomic_write(path, lambda f: f.write(data))


def train_run(config: RunConfig, out: str | Path, overwrite: bool = False, quiet: bool = False,
              log=print, should_stop: Optional[Callable[[EpochRecord], bool]] = None) -> Dict[str, Any]:
    """Train, select on validation, test the selected epoch once, write the run directory.

    Returns the content of ``metrics.json``. Changes no process-wide setting: the ``pyg-diffcl`` entry point
    applies :func:`~pyg_diffcl.ops.tune_allocator` itself, and a Python caller may do the same. A SIGINT
    saves the state and raises :class:`~pyg_diffcl.errors.TrainingInterrupted`; :func:`resume_run`
    continues it. :obj:`should_stop` (:class:`~pyg_diffcl.training.Trainer`'s) may end training after any
    epoch as an early stop does; ``metrics.json`` then says ``"pruned": true``.
    """
    out = Path(out)
    ctx = init_distributed(config.train.device.split(':')[0])
    lock = RunDirectoryLock(out)

    def claim() -> None:  # the directory, then its lock, then the rules about what it may hold
        make_run_dir(out)
        lock.acquire()
        check_out_dir(out, overwrite)
    try:
        _on_main(ctx, claim)
        return _execute(config, out, None, quiet, log, ctx, should_stop)
    finally:
        lock.release()


def _on_main(ctx: DistContext, fn) -> None:
    """Run :obj:`fn` on rank 0; a :class:`UserInputError` there is raised on every rank (so no rank waits
    for one that gave up)."""
    error: Optional[str] = None
    if ctx.is_main:
        try:
            fn()
        except UserInputError as e:
            if not ctx.enabled:
                raise
            error = str(e)
    error = broadcast_object(error, ctx)
    if error is not None:
        raise ConfigError(error)


def resume_run(run_dir: str | Path, epochs: Optional[int] = None, patience: Optional[int] = None,
               quiet: bool = False, log=print,
               should_stop: Optional[Callable[[EpochRecord], bool]] = None) -> Dict[str, Any]:
    """Continue an interrupted run from its ``last.pt`` with the configuration in its ``config.yaml``.

    Only :obj:`epochs` and :obj:`patience` may change (a smaller :obj:`epochs` than already run finishes the
    run at once: the best epoch so far is tested). The data files must still have the checksums the run
    recorded. Reaches the same ``metrics.json`` as an uninterrupted run (timings and peak memory aside).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f'--resume {run_dir}: no interrupted run to resume (no such directory)')
    lock = RunDirectoryLock(run_dir)
    if int(os.environ.get('RANK', '0') or 0) == 0:  # under torchrun, rank 0 owns the directory
        lock.acquire()
    try:
        return _resume(run_dir, epochs, patience, quiet, log, should_stop)
    finally:
        lock.release()


def _resume(run_dir: Path, epochs: Optional[int], patience: Optional[int], quiet: bool, log,
            should_stop: Optional[Callable[[EpochRecord], bool]] = None) -> Dict[str, Any]:
    import yaml
    if (run_dir / 'metrics.json').exists():
        raise ConfigError(f'--resume {run_dir}: the run is complete (metrics.json); nothing to resume')
    ckpt_path, cfg_path = run_dir / RESUME_CHECKPOINT, run_dir / 'config.yaml'
    if not cfg_path.is_file() or not ckpt_path.is_file():
        missing = 'config.yaml' if not cfg_path.is_file() else RESUME_CHECKPOINT
        raise ConfigError(f'--resume {run_dir}: no interrupted run to resume (missing {missing}; a run that '
                          f'stopped before its first epoch ended has nothing saved: start it again)')
    try:
        ckpt = torch.load(ckpt_path, map_location='cpu', weights_only=True)
    except Exception as e:  # noqa: BLE001 - a damaged or foreign file, reported as bad input
        raise DataError(f'not a readable checkpoint ({type(e).__name__})', ckpt_path) from None
    if not isinstance(ckpt, dict) or ckpt.get('format') != _RESUME_FORMAT:
        raise DataError(f'not a pyg-diffcl resume checkpoint of format {_RESUME_FORMAT}', ckpt_path)
    with open(cfg_path) as f:
        config = from_dict(yaml.safe_load(f))

    def fixed(d: Dict[str, Any]) -> Dict[str, Any]:  # what --resume may not change
        return {**d, 'train': {k: v for k, v in d['train'].items() if k not in RESUME_MAY_CHANGE}}

    try:  # read through the current defaults, as config.yaml is: keys added since the run was started match
        saved = from_dict(ckpt['config']).to_dict()
    except ConfigError:
        saved = ckpt['config']
    if fixed(config.to_dict()) != fixed(saved):
        raise DataError('config.yaml differs from the configuration the checkpoint was written with', cfg_path)
    for key, value in zip(RESUME_MAY_CHANGE, (epochs, patience)):
        if value is not None:
            setattr(config.train, key, value)
    check_config(config)
    ctx = init_distributed(config.train.device.split(':')[0])
    saved_world = int(ckpt['trainer'].get('world_size', 1))
    if saved_world != ctx.world_size:
        raise ConfigError(f'--resume {run_dir}: the run was trained by {saved_world} process(es) and continues '
                          f'exactly only with as many (this launch has {ctx.world_size}; '
                          + ('torchrun --nproc_per_node=' + str(saved_world) if saved_world > 1 else 'no torchrun')
                          + ')')
    return _execute(config, run_dir, ckpt, quiet, log, ctx, should_stop)


def _check_checksums(recorded: Dict[str, str], dataset: MMRecDataset) -> None:
    current = dataset.meta['sha256']
    for name, digest in recorded.items():
        if current.get(name) != digest:
            raise DataError(f'differs from the data this run was trained on (sha256 {current.get(name)} vs '
                            f'{digest})', Path(dataset.meta['path']) / name)


def _execute(config: RunConfig, out: Path, resume: Optional[Dict[str, Any]], quiet: bool,
             log, ctx: DistContext,
             should_stop: Optional[Callable[[EpochRecord], bool]] = None) -> Dict[str, Any]:
    main = ctx.is_main
    device = None
    if ctx.enabled and config.train.device.startswith('cuda'):
        device = torch.device('cuda', ctx.local_rank)
    # The backend of train.backend=auto: the resumed run's own (a checkpoint from before it was recorded ran on
    # csr, what auto was then), else the host's choice; under torchrun rank 0's, for every rank.
    recorded = resume.get('backend', 'csr') if resume is not None else None
    if recorded is None and ctx.enabled and config.train.backend == 'auto':
        here = device if device is not None else resolve_device(config.train.device)
        recorded = broadcast_object(host_backend(here) if main else None, ctx)
    # Under torchrun rank 0 builds (and caches) the processed data and the item graphs first, alone.
    if not main:
        barrier(ctx)
    prep = prepare(config, device=device, recorded_backend=recorded)
    if main:
        barrier(ctx)
    if ctx.enabled:  # the ranks' dropout and diffusion noise differ; the weights are rank 0's (DDP)
        seed_everything(config.train.seed + 1_000_003 * ctx.rank)
    ds, model = prep.dataset, prep.model
    sha = ds.meta['sha256']
    if resume is not None:
        _check_checksums(resume['data_sha256'], ds)
    say = (lambda *a: None) if quiet or not main else log
    say(f'[pyg-diffcl] {ds}')
    say(f'[pyg-diffcl] {model} on {prep.device}, sparse backend {prep.adj.backend!r}'
        + (f', {ctx.world_size} processes (DistributedDataParallel)' if ctx.enabled else ''))
    resumable = out / RESUME_CHECKPOINT
    if main:
        sample = prep.valid_sample()
        total = prep.valid_population().numel()
        text = config_text(config, sha, sample, total).encode()
        with writing(out / 'config.yaml', resumable, out):
            atomic_write(out / 'config.yaml', lambda f: f.write(text))

    train_ei = ds[0][EDGE_TYPE].edge_index
    if config.train.optimizer == 'sparse_adam' and ctx.enabled:
        raise ConfigError('train.optimizer=sparse_adam runs in one process (DDP averages dense gradients); use '
                          'train.optimizer=adam under torchrun')
    if config.train.loader == 'neighbor':
        try:
            sampler = model.make_neighbor_sampler(train_ei, config.train.num_neighbors, config.train.batch_size,
                                                  config.train.seed, config.train.neighbor_scaling, prep.adj.backend,
                                                  config.train.item_graph_neighbors, config.train.neighbor_negatives)
        except ValueError as e:
            raise ConfigError(f'train.{e}') from None
    else:
        # A model that draws no negatives refuses negative_pool in check_config, before anything is built.
        sampler = model.make_sampler(train_ei, config.train.batch_size, config.train.seed,
                                     config.train.negative_pool)
    valid_eval = prep.evaluator('valid')
    if valid_eval.num_eval_users == 0:
        raise DataError('the validation split is empty: it is needed to select the epoch', ds.files.inter)
    metric_keys = [f'{n}@{k}' for n in _METRIC_NAMES for k in config.eval.ks]
    log_path = out / 'log.csv'

    def on_epoch(rec: EpochRecord, improved: bool) -> None:
        with writing(log_path, resumable, out), open(log_path, 'a', newline='') as f:
            csv.writer(f).writerow(_log_row(rec, metric_keys))
        if improved:
            with writing(out / CHECKPOINT, resumable, out):
                save_checkpoint(out / CHECKPOINT, model.inference_state(model.state_dict()), rec.epoch, config, sha)
        say(f'epoch {rec.epoch:4d}  loss {rec.loss:.4f}  valid recall@20 {rec.valid.get("recall@20", float("nan")):.4f}'
            f'  ndcg@20 {rec.valid.get("ndcg@20", float("nan")):.4f}  {rec.train_seconds:.2f}s train'
            f' + {rec.eval_seconds:.2f}s eval{"  *" if improved else ""}')

    config_dict = config.to_dict()

    def on_checkpoint(state: Dict[str, Any]) -> None:
        payload = {'format': _RESUME_FORMAT, 'trainer': state, 'config': config_dict, 'data_sha256': sha,
                   'backend': prep.adj.backend}
        with writing(resumable, resumable, out):
            _save_torch(resumable, payload)

    trainer = Trainer(model, prep.adj, sampler, valid_eval, lr=config.train.lr, epochs=config.train.epochs,
                      weight_decay=config.train.weight_decay, fused_adam=config.train.fused_adam,
                      patience=config.train.patience, metric=config.eval.metric, on_epoch=on_epoch,
                      show_progress=not quiet and main, on_checkpoint=on_checkpoint,
                      checkpoint_every=config.train.checkpoint_every, dist=ctx,
                      ddp_split=config.train.ddp_split, min_epochs=config.train.min_epochs,
                      patience_window=config.train.patience_window, optimizer=config.train.optimizer,
                      should_stop=should_stop)
    if resume is None:
        if main:
            with writing(log_path, resumable, out):
                _write_log(log_path, [], metric_keys)
    else:
        # The resumed configuration may change epochs / patience: the checkpoint records the new one from now on.
        trainer.load_state_dict(resume['trainer'])
        if main:
            with writing(log_path, resumable, out):
                _write_log(log_path, trainer.history, metric_keys)  # drops rows of an epoch never checkpointed
            if trainer.best_epoch:
                with writing(out / CHECKPOINT, resumable, out):
                    save_checkpoint(out / CHECKPOINT, model.inference_state(trainer.best_state), trainer.best_epoch,
                                    config, sha)
        epoch, batch = resume['trainer']['position']['epoch'], resume['trainer']['position']['batch']
        say(f'[pyg-diffcl] resuming {out} at epoch {epoch + 1}, batch {batch + 1} of {len(sampler)}')
    try:
        result = trainer.fit()
    except NonFiniteLossError as e:
        kept = (f'the best epoch so far is kept in {out / CHECKPOINT}' if (out / CHECKPOINT).exists()
                else 'no epoch had finished, so there is no checkpoint')
        raise TrainingDiverged(f'training stopped: {e}; {kept} (log.csv has each epoch\'s gradient norm; '
                               f'try a lower train.lr)') from None
    if result.interrupted:
        epoch, batch = result.stopped_at
        where = f'in epoch {epoch + 1} after batch {batch} of {len(sampler)}' if batch else f'after epoch {epoch}'
        raise TrainingInterrupted(f'interrupted {where}; the state is saved in {out / RESUME_CHECKPOINT}: '
                                  f'continue with `pyg-diffcl train --resume {out}`')

    model.load_state_dict(result.best_state)
    model.eval()
    with torch.no_grad():
        score_fn = model_scores(model, prep.adj)
        t0 = time.perf_counter()
        test_eval = prep.evaluator('test')
        test: Dict[str, Optional[float]] = dict(test_eval.evaluate(score_fn, ctx.rank, ctx.world_size))
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
        # Medians, not means: an epoch that spans a pause (a suspended process, a
        # resume after a kill) would otherwise dominate the figure.
        'seconds_per_epoch': float(np.median([r.train_seconds for r in history])),
        'eval_seconds_per_epoch': float(np.median([r.eval_seconds for r in history])),
        'test_eval_seconds': test_seconds,
        'peak_rss_mib': round(peak_rss_mib(), 1),
        'selection': 'valid',
        'selection_metric': config.eval.metric,
        'device': str(prep.device),
        'backend': prep.adj.backend,
        'deterministic': config.train.deterministic,
        'world_size': ctx.world_size,
        'cold_users': {'policy': config.data.cold_users, 'count': int(prep.cold_users.sum())},
        'data': data_summary(ds),
        'valid': result.best_valid,
        'test': test,
    }
    if result.halted:
        metrics['pruned'] = True
    if main:
        with writing(out / 'curves.png', resumable, out):
            _write_curves(out / 'curves.png', history, result.best_epoch, config.eval.metric)
        text = json.dumps(metrics, indent=2).encode()
        with writing(out / 'metrics.json', resumable, out):
            atomic_write(out / 'metrics.json', lambda f: f.write(text))
        (out / RESUME_CHECKPOINT).unlink(missing_ok=True)
    barrier(ctx)  # no rank returns before the run directory is complete
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
    recorded = None
    try:  # the backend the run used (metrics.json), so that its figures are computed the same way again
        recorded = json.loads((run_dir / 'metrics.json').read_text()).get('backend')
    except (OSError, ValueError, AttributeError):
        pass
    prep = prepare(config, recorded_backend=recorded)
    _check_checksums(ckpt.get('data_sha256', {}), prep.dataset)
    prep.model.load_state_dict(ckpt['model'])
    prep.model.eval()
    return prep


def evaluate_run(run_dir: str | Path, split: str = 'test') -> Dict[str, float]:
    """Metrics of a run's selected checkpoint on ``'valid'`` or ``'test'``."""
    prep = load_run(run_dir)
    evaluator = prep.evaluator(split)
    if evaluator.num_eval_users == 0:  # every metric would read 0.0, as if the model had missed everything
        kind = 'validation' if split == 'valid' else 'test'
        raise DataError(f'the {kind} split is empty: there is nothing to evaluate', prep.dataset.files.inter)
    with torch.no_grad():
        return evaluator.evaluate(model_scores(prep.model, prep.adj))


def recommend_run(run_dir: str | Path, k: int, out: str | Path) -> int:
    """Write the top-:obj:`k` items of every user (``userID  itemID  rank``), excluding the items the
    test evaluation excludes (training items; validation items too with ``eval.mask_valid_for_test``).
    When the data set directory has ``user_map.tsv`` and ``item_map.tsv`` (``pyg-diffcl prepare``), the ids
    written are the original ones. Returns the number of rows written."""
    if k <= 0:
        raise ConfigError(f'--k: must be positive, got {k}')
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f'--out {out}: is a directory; give the path of the file to write (e.g. {out / "recs.tsv"})')
    if out.parent and not out.parent.exists():
        raise ConfigError(f'--out {out}: directory {out.parent} does not exist')
    prep = load_run(run_dir)
    test_eval = prep.evaluator('test')
    users = torch.arange(prep.dataset.num_users)
    root = Path(prep.dataset.meta['path'])
    user_name: Any = str
    item_name: Any = str
    if (root / 'user_map.tsv').is_file() and (root / 'item_map.tsv').is_file():
        from ..datasets.prepare import read_id_map
        umap, imap = read_id_map(root / 'user_map.tsv'), read_id_map(root / 'item_map.tsv')
        user_name, item_name = umap.__getitem__, imap.__getitem__
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
                name = user_name(u)
                lines.extend(f'{name}\t{item_name(i)}\t{r}\n' for r, i in enumerate(items, start=1))
                rows += len(items)
    data = ''.join(lines).encode()
    atomic_write(out, lambda f: f.write(data))
    return rows
