r"""The training loop: the model's batches, Adam, validation after every epoch, early stopping on validation."""
from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import torch
from torch import Tensor

from ..evaluation import FullRankingEvaluator
from ..models.base import Recommender
from ..ops import BipartiteAdj


def progress(iterable, total: int, desc: str, enabled: bool):
    """A tqdm progress bar on stderr when enabled and stderr is a terminal; else the iterable itself."""
    if not enabled or not sys.stderr.isatty():
        return iterable
    from tqdm.auto import tqdm
    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite (the message names the epoch and the batch)."""


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
    best_state: Dict[str, Tensor]
    history: List[EpochRecord] = field(default_factory=list)
    interrupted: bool = False

    @property
    def epochs_run(self) -> int:
        return len(self.history)


def model_scores(model: Recommender, adj: BipartiteAdj) -> Callable[[Tensor], Tensor]:
    """A ``users -> [len(users), num_items]`` score function (:meth:`Recommender.scorer
    <pyg_diffcl.models.Recommender.scorer>`)."""
    return model.scorer(adj)


class Trainer:
    r"""Trains a :class:`~pyg_diffcl.models.Recommender` and selects the epoch on validation.

    Every epoch: the model's :meth:`~pyg_diffcl.models.Recommender.pre_epoch` hook, one pass over the
    sampler's shuffled batches (training interactions with one uniformly sampled negative each,
    :class:`~pyg_diffcl.datasets.BPRSampler`, or users, :class:`~pyg_diffcl.datasets.UserSampler`), an Adam
    step per batch, then full-ranking evaluation on the
    validation split. The epoch with the best validation :obj:`metric` is kept (its weights copied); training
    stops after :obj:`patience` epochs without improvement, at :obj:`epochs`, or on Ctrl-C (the best epoch so
    far is kept). The test split is never seen here.

    Args:
        model (Recommender): The model.
        adj (BipartiteAdj): The normalised training graph.
        sampler: The batch sampler (:meth:`Recommender.make_sampler
            <pyg_diffcl.models.Recommender.make_sampler>`: BPR triples or users).
        valid_evaluator (FullRankingEvaluator): Validation evaluator.
        lr (float): Adam's learning rate. (default: :obj:`1e-3`)
        epochs (int): Maximum number of epochs. (default: :obj:`1000`)
        patience (int): Early-stopping patience in epochs. (default: :obj:`20`)
        metric (str): Validation metric that selects the epoch. (default: :obj:`'recall@20'`)
        on_epoch (callable, optional): Called with each :class:`EpochRecord` and whether it is the new best.
        show_progress (bool): Progress bars (only on a terminal). (default: :obj:`True`)
        weight_decay (float): Adam's L2 weight decay. (default: :obj:`0.0`)
    """
    def __init__(self, model: Recommender, adj: BipartiteAdj, sampler: Any,
                 valid_evaluator: FullRankingEvaluator, lr: float = 1e-3, epochs: int = 1000,
                 patience: int = 20, metric: str = 'recall@20',
                 on_epoch: Optional[Callable[[EpochRecord, bool], Any]] = None,
                 show_progress: bool = True, weight_decay: float = 0.0) -> None:
        self.model = model
        self.adj = adj
        self.sampler = sampler
        self.valid_evaluator = valid_evaluator
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        self.epochs = epochs
        self.patience = patience
        self.metric = metric
        self.on_epoch = on_epoch
        self.show_progress = show_progress
        self.device = next(model.parameters()).device
        #: The L2 norm of the full gradient at each batch of the last epoch.
        self.last_grad_norms: List[float] = []

    def train_epoch(self, epoch: int) -> float:
        """One pass over the training batches; returns the mean batch loss. The gradient norms of the epoch
        are kept in :attr:`last_grad_norms`."""
        self.model.train()
        self.model.pre_epoch(epoch)
        total, count = 0.0, 0
        norms: List[float] = []
        params = [p for p in self.model.parameters() if p.requires_grad]
        batches = progress(self.sampler.epoch(epoch), len(self.sampler), f'epoch {epoch + 1}', self.show_progress)
        for b, batch in enumerate(batches):
            batch = batch.to(self.device)
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.model.loss(self.adj, batch)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise NonFiniteLossError(f'non-finite loss {value} at epoch {epoch + 1}, batch {b + 1}')
            loss.backward()
            grads = [p.grad.detach() for p in params if p.grad is not None]
            norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
                         if grads else 0.0)
            self.optimizer.step()
            n = batch.user.numel()
            total += value * n
            count += n
        self.last_grad_norms = norms
        return total / max(count, 1)

    @torch.no_grad()
    def validate(self) -> Dict[str, float]:
        self.model.eval()
        return self.valid_evaluator.evaluate(model_scores(self.model, self.adj))

    def fit(self) -> FitResult:
        best_value, best_epoch = -math.inf, 0
        best_state: Dict[str, Tensor] = copy.deepcopy(self.model.state_dict())
        best_valid: Dict[str, float] = {}
        history: List[EpochRecord] = []
        interrupted = False
        try:
            for epoch in range(self.epochs):
                t0 = time.perf_counter()
                loss = self.train_epoch(epoch)
                t1 = time.perf_counter()
                valid = self.validate()
                norms = self.last_grad_norms or [float('nan')]
                record = EpochRecord(epoch + 1, loss, t1 - t0, time.perf_counter() - t1, valid,
                                     sum(norms) / len(norms), max(norms))
                history.append(record)
                improved = valid[self.metric] > best_value
                if improved:
                    best_value, best_epoch, best_valid = valid[self.metric], epoch + 1, valid
                    best_state = copy.deepcopy(self.model.state_dict())
                if self.on_epoch is not None:
                    self.on_epoch(record, improved)
                if epoch + 1 - best_epoch >= self.patience and not improved:
                    break
        except KeyboardInterrupt:
            interrupted = True
        return FitResult(best_epoch, best_valid, best_state, history, interrupted)
