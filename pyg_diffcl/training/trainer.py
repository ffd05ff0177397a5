r"""The training loop: the model's batches, Adam, validation after every epoch, early stopping on validation."""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional

import numpy as np

import torch
from torch import Tensor

from ..evaluation import FullRankingEvaluator
from ..models.base import Recommender
from ..ops import BipartiteAdj
from .optim import RowSparseAdam, coalesce_rows
from .distributed import DistContext, ShardedSampler, all_gather_object, all_reduce_sum, broadcast_object, wrap_ddp


def progress(iterable, total: int, desc: str, enabled: bool):
    """A tqdm progress bar on stderr when enabled and stderr is a terminal; else the iterable itself."""
    if not enabled or not sys.stderr.isatty():
        return iterable
    from tqdm.auto import tqdm
    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite (the message names the epoch and the batch)."""


def rng_state() -> Dict[str, Any]:
    """The global random states of Python, NumPy and torch (CPU and every CUDA device), as tensors and
    plain Python values only, so that a checkpoint holding them loads with ``weights_only=True``."""
    np_state = np.random.get_state(legacy=False)
    np_state['state'] = dict(np_state['state'], key=torch.from_numpy(np_state['state']['key'].astype(np.int64)))
    state = {'python': random.getstate(), 'numpy': np_state, 'torch': torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    np_state = dict(state['numpy'])
    np_state['state'] = dict(np_state['state'], key=np_state['state']['key'].numpy().astype(np.uint32))
    np.random.set_state(np_state)
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


@dataclass
class EpochRecord:
    epoch: int
    loss: float
    train_seconds: float
    eval_seconds: float
    valid: Dict[str, float]
    #: Mean and largest L2 norm of the full gradient over the epoch's batches.
    grad_norm: float = float('nan')
    grad_norm_max: float = float('nan')


@dataclass
class FitResult:
    best_epoch: int
    best_valid: Dict[str, float]
    best_state: Dict[str, Any]
    history: List[EpochRecord] = field(default_factory=list)
    #: Stopped by Ctrl-C / SIGINT before the run finished; the state is in the last checkpoint
    #: (:attr:`Trainer.on_checkpoint`), from which :meth:`Trainer.fit` can continue.
    interrupted: bool = False
    #: Where an interrupted run stopped: the 0-based epoch and the batches of it already trained.
    stopped_at: Optional[tuple] = None
    #: Ended by :attr:`Trainer.should_stop` (a hyper-parameter search's pruner), like an early stop.
    halted: bool = False

    @property
    def epochs_run(self) -> int:
        return len(self.history)


def model_scores(model: Recommender, adj: BipartiteAdj) -> Callable[[Tensor], Tensor]:
    """A ``users -> [len(users), num_items]`` score function (:meth:`Recommender.scorer
    <pyg_diffcl.models.Recommender.scorer>`)."""
    return model.scorer(adj)


class _StopRequest(Exception):
    """Raised inside the batch loop when a stop was requested (SIGINT): the state is saved by then."""


class _Optimizers:
    """Several optimizers stepped as one (row-sparse Adam for the embedding tables, Adam for the rest)."""
    def __init__(self, **parts: torch.optim.Optimizer) -> None:
        self.parts = parts

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.parts.values():
            opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for opt in self.parts.values():
            opt.step()

    def state_dict(self) -> Dict[str, Any]:
        return {name: opt.state_dict() for name, opt in self.parts.items()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        for name, opt in self.parts.items():
            opt.load_state_dict(state[name])


def make_optimizer(model: torch.nn.Module, kind: str = 'adam', lr: float = 1e-3, weight_decay: float = 0.0,
                   fused_adam: bool = False) -> Any:
    """The training optimizer (see :class:`Trainer`'s :obj:`optimizer`)."""
    if kind == 'adam':
        # fused=None, not False, when off: an explicit False also turns off torch's for-each default
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay,
                                fused=True if fused_adam else None)
    if kind != 'sparse_adam':
        raise ValueError(f"optimizer: expected 'adam' or 'sparse_adam', got {kind!r}")
    tables = list(getattr(model, 'sparse_embeddings', lambda: [])())
    if not tables:
        raise ValueError(f'optimizer: {model.__class__.__name__} has no embedding tables for sparse_adam')
    if weight_decay:
        raise ValueError('optimizer: sparse_adam has no weight decay (the models regularise in the loss)')
    for table in tables:
        table.sparse = True
    sparse = {id(t.weight) for t in tables}
    parts = {'sparse': RowSparseAdam([t.weight for t in tables], lr=lr)}
    dense = [p for p in model.parameters() if id(p) not in sparse and p.requires_grad]
    if dense:
        parts['dense'] = torch.optim.Adam(dense, lr=lr, fused=True if fused_adam else None)
    return _Optimizers(**parts)


class Trainer:
    r"""Trains a :class:`~pyg_diffcl.models.Recommender` and selects the epoch on validation.

    Every epoch: the model's :meth:`~pyg_diffcl.models.Recommender.pre_epoch` hook, one pass over the
    sampler's shuffled batches (training interactions with one uniformly sampled negative each,
    :class:`~pyg_diffcl.datasets.BPRSampler`, or users, :class:`~pyg_diffcl.datasets.UserSampler`), an Adam
    step per batch, then full-ranking evaluation on the validation split. The epoch with the best validation
    :obj:`metric` is kept (its weights copied); training stops at :obj:`epochs` or when
    :func:`early_stop` says so. The test split is never seen here.

    **Checkpoints and resuming.** After every epoch (after its validation; every :obj:`checkpoint_every`
    epochs) :obj:`on_checkpoint` is called with
    :meth:`state_dict`: the model, Adam's moments, the global random states of Python, NumPy and torch, the
    position in the sampler (epoch, batch), the early-stopping state (best value, best epoch, its weights and
    metrics) and the history. :meth:`load_state_dict` followed by :meth:`fit` continues exactly where the
    state was taken: the samplers draw an epoch's batches from (seed, epoch) alone and can start at any batch,
    so a resumed run makes the same updates, bit for bit on CPU, as one that was never stopped.

    **SIGINT (Ctrl-C).** While :meth:`fit` runs in the main thread, the first SIGINT asks for a stop: the
    batch in flight finishes, :obj:`on_checkpoint` gets the state at that batch boundary (mid-epoch; partial
    epoch loss and gradient norms included), and :meth:`fit` returns with :attr:`FitResult.interrupted` set.
    A SIGINT during validation lets the epoch finish and checkpoint first. A second SIGINT raises
    :class:`KeyboardInterrupt` at once (the last checkpoint is then the previous epoch's).

    Args:
        model (Recommender): The model.
        adj (BipartiteAdj): The normalised training graph.
        sampler: The batch sampler (:meth:`Recommender.make_sampler
            <pyg_diffcl.models.Recommender.make_sampler>`: BPR triples or users); needs
            ``epoch(epoch, start_batch)`` and ``len()``.
        valid_evaluator (FullRankingEvaluator): Validation evaluator.
        lr (float): Adam's learning rate. (default: :obj:`1e-3`)
        epochs (int): Maximum number of epochs. (default: :obj:`1000`)
        patience (int): Early-stopping patience in epochs. (default: :obj:`50`)
        min_epochs (int): No early stop before this many epochs. (default: :obj:`0`)
        patience_window (int): Patience counts from the best trailing mean of this many validation values
            (:func:`early_stop`; 1: the raw curve). (default: :obj:`5`)
        metric (str): Validation metric that selects the epoch. (default: :obj:`'recall@20'`)
        on_epoch (callable, optional): Called with each :class:`EpochRecord` and whether it is the new best.
        show_progress (bool): Progress bars (only on a terminal). (default: :obj:`True`)
        weight_decay (float): Adam's L2 weight decay. (default: :obj:`0.0`)
        on_checkpoint (callable, optional): Called with :meth:`state_dict` after every epoch and when a SIGINT
            stops the run mid-epoch. (default: :obj:`None`)
        handle_sigint (bool): Turn the first SIGINT into a clean stop (above); only in the main thread.
            (default: :obj:`True`)
        checkpoint_every (int): Call :obj:`on_checkpoint` after every this many epochs (``0``: only when a
            SIGINT stops the run). (default: :obj:`1`)
        dist (DistContext, optional): Data-parallel training across the ranks of an initialised process group
            (:mod:`pyg_diffcl.training.distributed`): the sampler is sharded (:class:`ShardedSampler`), the loss
            runs through :class:`~torch.nn.parallel.DistributedDataParallel`, validation is sharded over users
            and reduced, the early-stopping and stop decisions are rank 0's, and :obj:`on_epoch` /
            :obj:`on_checkpoint` are called on rank 0 only. A SIGINT is acted on at the end of the epoch (a
            mid-epoch stop would need every rank to agree on the batch). (default: :obj:`None`)
        ddp_split (str): How the ranks share the batches (:class:`ShardedSampler`): ``'batches'`` or
            ``'examples'``. (default: :obj:`'batches'`)
        fused_adam (bool): Adam's fused kernel (``fused=True``): the same update up to float rounding, one
            pass over each parameter. (default: :obj:`False`)
        optimizer (str): ``'adam'``, or ``'sparse_adam'``: the model's embedding tables
            (:meth:`~pyg_diffcl.models.Recommender.sparse_embeddings`) get row-sparse gradients and
            :class:`~pyg_diffcl.training.optim.RowSparseAdam` ("lazy" Adam: a step updates the rows of this batch's nodes and
            their moments, and leaves every other row as it is, so a step costs what the batch touches, not
            what the tables hold), the other parameters Adam. For training on sampled subgraphs.
            (default: :obj:`'adam'`)
        should_stop (callable, optional): Called on rank 0 with each :class:`EpochRecord`, after
            :obj:`on_epoch`, the checkpoint and the early-stopping check; :obj:`True` before the last epoch
            ends training there as an early stop does (the best epoch is kept), with
            :attr:`FitResult.halted` set: a search's pruner.
            (default: :obj:`None`)
    """
    def __init__(self, model: Recommender, adj: BipartiteAdj, sampler: Any,
                 valid_evaluator: FullRankingEvaluator, lr: float = 1e-3, epochs: int = 1000,
                 patience: int = 50, metric: str = 'recall@20',
                 on_epoch: Optional[Callable[[EpochRecord, bool], Any]] = None,
                 show_progress: bool = True, weight_decay: float = 0.0,
                 on_checkpoint: Optional[Callable[[Dict[str, Any]], Any]] = None,
                 handle_sigint: bool = True, checkpoint_every: int = 1,
                 dist: Optional[DistContext] = None, ddp_split: str = 'batches', fused_adam: bool = False,
                 min_epochs: int = 0, patience_window: int = 5, optimizer: str = 'adam',
                 should_stop: Optional[Callable[[EpochRecord], bool]] = None) -> None:
        self.model = model
        self.should_stop = should_stop
        self.adj = adj
        self.dist = dist if dist is not None else DistContext()
        self.sampler = ShardedSampler(sampler, self.dist.rank, self.dist.world_size, ddp_split) \
            if self.dist.enabled else sampler
        self.valid_evaluator = valid_evaluator
        self.optimizer = make_optimizer(model, optimizer, lr, weight_decay, fused_adam)
        self.epochs = epochs
        self.patience = patience
        self.min_epochs = int(min_epochs)
        self.patience_window = int(patience_window)
        self.metric = metric
        self.on_epoch = on_epoch
        self.on_checkpoint = on_checkpoint
        self.handle_sigint = handle_sigint
        self.checkpoint_every = int(checkpoint_every)
        self.show_progress = show_progress
        self.device = next(model.parameters()).device
        self._ddp = wrap_ddp(model, self.dist, self.device) if self.dist.enabled else None
        #: The L2 norm of the full gradient at each batch of the last epoch.
        self.last_grad_norms: List[float] = []
        # Position and early-stopping state (what state_dict() saves).
        self._epoch = 0          # the epoch in progress (0-based)
        self._batch = 0          # its batches already trained
        self._partial = self.empty_partial()
        self._best_value = -math.inf
        self._best_epoch = 0
        self._best_valid: Dict[str, float] = {}
        self._best_state: Dict[str, Any] = self._snapshot()
        self._history: List[EpochRecord] = []
        self._stop_requested = False

    # ------------------------------------------------------------------ state
    @staticmethod
    def empty_partial() -> Dict[str, Any]:
        """The accumulators of an epoch not yet started: summed loss, examples, gradient norms, seconds."""
        return {'total': 0.0, 'count': 0, 'norms': [], 'seconds': 0.0}

    def state_dict(self) -> Dict[str, Any]:
        """Everything :meth:`fit` needs to continue (tensors and plain Python values only)."""
        return {
            'position': {'epoch': self._epoch, 'batch': self._batch},
            'partial': dict(self._partial, norms=list(self._partial['norms'])),
            'model': self.model.state_dict(),
            'optimizer': self.optimizer.state_dict(),
            'rng': rng_state(),
            'world_size': self.dist.world_size,
            'rng_ranks': all_gather_object(rng_state(), self.dist) if self.dist.enabled else [],
            'early_stopping': {'best_value': self._best_value, 'best_epoch': self._best_epoch,
                               'best_valid': dict(self._best_valid), 'best_state': self._best_state},
            'history': [dataclasses.asdict(r) for r in self._history],
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (model, optimizer, random states, position, early stopping)."""
        self.model.load_state_dict(state['model'])
        self.optimizer.load_state_dict(state['optimizer'])
        self._epoch = int(state['position']['epoch'])
        self._batch = int(state['position']['batch'])
        partial = state['partial']
        self._partial = {'total': float(partial['total']), 'count': int(partial['count']),
                         'norms': [float(v) for v in partial['norms']], 'seconds': float(partial['seconds'])}
        es = state['early_stopping']
        self._best_value = float(es['best_value'])
        self._best_epoch = int(es['best_epoch'])
        self._best_valid = dict(es['best_valid'])
        self._best_state = es['best_state']
        self._history = [EpochRecord(**r) for r in state['history']]
        ranks = state.get('rng_ranks') or []
        if self.dist.enabled and len(ranks) != self.dist.world_size:
            raise ValueError(f"the state was saved by {state.get('world_size', 1)} rank(s); it continues exactly "
                             f'only with as many (this run has {self.dist.world_size})')
        set_rng_state(ranks[self.dist.rank] if self.dist.enabled else state['rng'])

    @property
    def best_epoch(self) -> int:
        """The selected (1-based) epoch so far; 0 before the first validation."""
        return self._best_epoch

    @property
    def best_state(self) -> Dict[str, Any]:
        """The weights of :attr:`best_epoch` (the initial weights before the first validation), as
        :meth:`~pyg_diffcl.models.Recommender.inference_state` keeps them."""
        return self._best_state

    def _snapshot(self) -> Dict[str, Any]:
        # A copy of what scoring needs, not of training-only state: DiffMM's denoisers' Adam moments (214 MB on
        # tiktok) would otherwise be copied at every improving epoch and written into every resume checkpoint.
        return copy.deepcopy(self.model.inference_state(self.model.state_dict()))

    @property
    def history(self) -> List[EpochRecord]:
        """One :class:`EpochRecord` per finished epoch."""
        return list(self._history)

    # ------------------------------------------------------------------ SIGINT
    @contextlib.contextmanager
    def _sigint_guard(self) -> Iterator[None]:
        if not self.handle_sigint or threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True
            sys.stderr.write('\n[pyg-diffcl] stopping after this batch and saving (Ctrl-C again to abort at '
                             'once)\n')

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def request_stop(self) -> None:
        """Ask :meth:`fit` to stop at the next batch boundary, as a SIGINT does."""
        self._stop_requested = True

    # ------------------------------------------------------------------ training
    def train_epoch(self, epoch: int, start_batch: int = 0) -> float:
        """One pass over the training batches from :obj:`start_batch` on; returns the mean batch loss of the
        whole epoch (with :attr:`_partial` holding the part trained before a resume). The gradient norms of
        the epoch are kept in :attr:`last_grad_norms`."""
        self.model.train()
        t0 = time.perf_counter()  # the epoch's time includes the model's per-epoch work (DiffMM's diffusion)
        self.model.pre_epoch(epoch)
        part = self._partial
        params = [p for p in self.model.parameters() if p.requires_grad]
        n_batches = len(self.sampler)
        batches = progress(self.sampler.epoch(epoch, start_batch), n_batches - start_batch, f'epoch {epoch + 1}',
                           self.show_progress)
        for b, batch in enumerate(batches, start=start_batch):
            batch = batch.to(self.device)
            self.optimizer.zero_grad(set_to_none=True)
            loss = self._ddp(self.adj, batch) if self._ddp is not None else self.model.loss(self.adj, batch)
            value = float(loss.detach())
            if not math.isfinite(value) and self._ddp is None:
                raise NonFiniteLossError(f'non-finite loss {value} at epoch {epoch + 1}, batch {b + 1}')
            loss.backward()
            for p in params:  # row-sparse gradients summed once: for the norm, and the optimizer finds them so
                if p.grad is not None and p.grad.is_sparse:
                    p.grad = coalesce_rows(p.grad)
            grads = [(p.grad.values() if p.grad.is_sparse else p.grad).detach() for p in params if p.grad is not None]
            # In float64: a float32 reduction's last bits depend on the tensor's memory alignment, which differs
            # between processes (a resumed run would log norms differing in the 6th digit).
            norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, dtype=torch.float64)
                                                               for g in grads]))) if grads else 0.0
            if self._ddp is not None and not math.isfinite(norm):
                # The averaged gradient is the same on every rank, so every rank stops here together.
                raise NonFiniteLossError(f'non-finite gradient (loss {value} on rank {self.dist.rank}) at epoch '
                                         f'{epoch + 1}, batch {b + 1}')
            part['norms'].append(norm)
            self.optimizer.step()
            n = batch.user.numel()
            part['total'] += value * n
            part['count'] += n
            self._batch = b + 1
            if self._stop_requested and self._batch < n_batches and not self.dist.enabled:
                part['seconds'] += time.perf_counter() - t0
                if self.on_checkpoint is not None:
                    self.on_checkpoint(self.state_dict())
                raise _StopRequest
        part['seconds'] += time.perf_counter() - t0
        self.last_grad_norms = part['norms']
        total, count = all_reduce_sum([part['total'], part['count']], self.dist)
        mean = total / max(count, 1)
        if self.dist.enabled and not math.isfinite(mean):
            raise NonFiniteLossError(f'non-finite loss {mean} in epoch {epoch + 1}')
        return mean

    @torch.no_grad()
    def validate(self) -> Dict[str, float]:
        self.model.eval()
        return self.valid_evaluator.evaluate(model_scores(self.model, self.adj), self.dist.rank,
                                             self.dist.world_size)

    def _result(self, interrupted: bool = False, halted: bool = False) -> FitResult:
        return FitResult(self._best_epoch, self._best_valid, self._best_state, list(self._history), interrupted,
                         (self._epoch, self._batch) if interrupted else None, halted)

    def fit(self) -> FitResult:
        """Train from the current position (the start, or where :meth:`load_state_dict` put it) until early
        stopping, :obj:`epochs`, or a stop request."""
        self._stop_requested = False
        with self._sigint_guard():
            if self._history and self._stopped_early():
                return self._result()
            while self._epoch < self.epochs:
                epoch = self._epoch
                try:
                    loss = self.train_epoch(epoch, self._batch)
                except _StopRequest:
                    return self._result(interrupted=True)
                train_seconds = self._partial['seconds']
                t1 = time.perf_counter()
                valid = self.validate()
                norms = self._partial['norms'] or [float('nan')]
                record = EpochRecord(epoch + 1, loss, train_seconds, time.perf_counter() - t1, valid,
                                     sum(norms) / len(norms), max(norms))
                self._history.append(record)
                improved = broadcast_object(valid[self.metric] > self._best_value, self.dist)
                if improved:
                    self._best_value, self._best_epoch, self._best_valid = valid[self.metric], epoch + 1, valid
                    self._best_state = self._snapshot()
                self._epoch, self._batch = epoch + 1, 0
                self._partial = self.empty_partial()
                main = self.dist.is_main
                if self.on_epoch is not None and main:
                    self.on_epoch(record, improved)
                requested = self._stop_requested
                if self.dist.enabled:  # any rank's SIGINT stops them all, at the same epoch
                    requested = all_reduce_sum([float(requested)], self.dist)[0] > 0
                stop = requested and self._epoch < self.epochs
                due = self.checkpoint_every > 0 and self._epoch % self.checkpoint_every == 0
                if self.on_checkpoint is not None and (due or stop):
                    state = self.state_dict()  # collective under DDP (gathers every rank's random state)
                    if main:
                        self.on_checkpoint(state)
                if broadcast_object(self._stopped_early(), self.dist):
                    break
                if stop:
                    return self._result(interrupted=True)
                if self.should_stop is not None:
                    halt = broadcast_object(bool(self.should_stop(record)) if main else False, self.dist)
                    if halt and self._epoch < self.epochs:  # the last epoch ends the run anyway: not a halt
                        return self._result(halted=True)
        return self._result()

    def _stopped_early(self) -> bool:
        return early_stop([r.valid[self.metric] for r in self._history], self.patience, self.min_epochs,
                          self.patience_window)


def smoothed(values: List[float], window: int) -> List[float]:
    r"""The trailing mean :math:`\bar v_t = \frac{1}{|W_t|} \sum_{s \in W_t} v_s` over
    :math:`W_t = \{\max(1, t - w + 1), \dots, t\}` (the first :math:`w - 1` epochs average what there is)."""
    # Summed afresh per epoch (no running total), so window 1 returns the values exactly.
    return [sum(values[max(0, i - window + 1):i + 1]) / min(i + 1, window) for i in range(len(values))]


def early_stop(values: List[float], patience: int, min_epochs: int = 0, window: int = 1) -> bool:
    r"""Whether training stops after the epochs whose validation metric is :obj:`values` (epoch 1 first).

    With :math:`T` epochs run and :math:`t^\star` the first epoch of the largest trailing mean
    :math:`\bar v_t` (:func:`smoothed`, window :obj:`window`), training stops when

    .. math::
        T \ge \texttt{min\_epochs} \quad\text{and}\quad T - t^\star \ge \texttt{patience}
        \quad\text{and}\quad T \ne t^\star.

    With :obj:`window` 1 and :obj:`min_epochs` 0 this is the usual rule: stop after :obj:`patience` epochs
    without a new best. Why the two extras: on a data set whose validation curve rises, sits on a plateau,
    then rises again, a raw-curve patience can stop on the plateau for some seeds and not for others. A
    window makes a single lucky epoch on the plateau count for less; a floor carries every seed past it. The
    epoch that is *kept* is always the best raw validation epoch; these settings only decide when to stop.
    """
    if not values:
        return False
    last = len(values)
    if last < min_epochs:
        return False
    curve = smoothed(values, window) if window > 1 else values
    best = max(range(last), key=lambda i: (curve[i], -i)) + 1
    return last - best >= patience and last != best
