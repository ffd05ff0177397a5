r"""Data-parallel training with PyTorch's own engine: ``torch.distributed`` and
:class:`~torch.nn.parallel.DistributedDataParallel`, launched by ``torchrun``.

``torchrun --nproc_per_node=N -m pyg_diffcl train ...`` starts :math:`N` processes (ranks) with the
``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` / ``MASTER_ADDR`` variables set; :func:`init_distributed` joins
them into one process group (``gloo`` on CPU, ``nccl`` on CUDA, each rank on ``cuda:LOCAL_RANK``). Then:

* **replicated** on every rank: the data set, the normalised graph, the model and Adam's state (DDP broadcasts
  rank 0's initial weights and averages the gradients of every step, so the replicas stay identical);
* **sharded**: the training batches (:class:`ShardedSampler`, ``train.ddp_split``: by default each rank takes
  every :math:`N`-th batch of the seeded sampler, so :math:`N` ranks make one step of batch size :math:`N B`
  and an epoch has :math:`N` times fewer steps; or each rank takes :math:`1/N` of every batch, exactly a
  single process's steps) and the evaluated users
  (:meth:`FullRankingEvaluator.evaluate <pyg_diffcl.evaluation.FullRankingEvaluator.evaluate>` with
  ``rank`` / ``world_size``: each rank ranks every :math:`N`-th user; the metric sums and counts are
  all-reduced);
* **decided once**: the early-stopping decision and a stop request (SIGINT) are rank 0's, broadcast;
* **written once**: only rank 0 writes the run directory; the resume checkpoint holds every rank's random
  states (gathered), so ``--resume`` under ``torchrun`` with the same :math:`N` continues each rank's stream.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, List, NamedTuple

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: its rank, the number of ranks, and its local rank on its machine."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (``1`` when not launched by ``torchrun``)."""
    try:
        return int(os.environ.get('WORLD_SIZE', '1'))
    except ValueError:
        return 1


def init_distributed(device_type: str = 'cpu') -> DistContext:
    """Join the process group ``torchrun`` describes (``gloo`` for CPU, ``nccl`` for CUDA); a single-process
    context when ``WORLD_SIZE`` is unset or 1. Idempotent."""
    if env_world_size() <= 1:
        return DistContext()
    if not dist.is_initialized():
        backend = 'nccl' if device_type == 'cuda' else 'gloo'
        if device_type == 'cuda':
            torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', '0')))
        dist.init_process_group(backend=backend)
    return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get('LOCAL_RANK', '0')))


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's :obj:`obj` on every rank."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_object(obj: Any, ctx: DistContext) -> List[Any]:
    """Every rank's :obj:`obj`, in rank order."""
    if not ctx.enabled:
        return [obj]
    out: List[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def all_reduce_sum(values: List[float], ctx: DistContext) -> List[float]:
    """The element-wise sum of :obj:`values` over the ranks (float64; through a CUDA tensor under NCCL)."""
    if not ctx.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == 'nccl':
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().tolist()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


#: How :class:`ShardedSampler` shares the batches out (``train.ddp_split``).
SPLITS = ('batches', 'examples')


class ShardedSampler:
    r"""One rank's share of a seeded batch sampler. The wrapped sampler's batches are the same on every rank
    (they depend only on the seed and the epoch); this rank takes:

    * ``'batches'`` (the default; how DDP scales out): the batches :math:`b` with
      :math:`b \bmod N = \text{rank}`. The :math:`N` ranks step together, so an epoch has :math:`N` times
      fewer steps, each on :math:`N` batches at once: the same computation as one process with batch size
      :math:`N B`. When the number of batches is not a multiple of :math:`N`, the last few are left out of
      that epoch (the next epoch reshuffles), so that every rank takes the same number of steps.
    * ``'examples'``: a contiguous :math:`1/N` of every batch (sizes differing by at most one; a batch with
      fewer examples than ranks is skipped by all). Exactly one process's computation with batch size
      :math:`B`, but with as many steps: faster only when a step's cost grows with the batch (LD4MRec's
      per-user C-Net), not when it is dominated by propagating the whole graph (LightGCN, DiffCL).

    Args:
        sampler: A sampler with ``epoch(epoch, start_batch)`` and ``len()`` yielding named tuples of tensors
            (:class:`~pyg_diffcl.datasets.BPRSampler`, :class:`~pyg_diffcl.datasets.UserSampler`).
        rank (int): This rank.
        world_size (int): The number of ranks.
        split (str): ``'batches'`` or ``'examples'``. (default: :obj:`'batches'`)
    """
    def __init__(self, sampler: Any, rank: int, world_size: int, split: str = 'batches') -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f'rank must be in [0, {world_size}), got {rank}')
        if split not in SPLITS:
            raise ValueError(f'split must be one of {list(SPLITS)}, got {split!r}')
        self.sampler, self.rank, self.world_size, self.split = sampler, int(rank), int(world_size), split

    def __len__(self) -> int:
        """This rank's steps per epoch."""
        n = len(self.sampler)
        return n // self.world_size if self.split == 'batches' else n

    def epoch(self, epoch: int, start_batch: int = 0):
        """This rank's batches of one epoch, from its step :obj:`start_batch` on."""
        if self.split == 'batches':
            steps = len(self)
            pick = getattr(self.sampler, 'batches', None)
            if pick is not None:  # a sampler that can draw given batches only (sampled subgraphs: costly to draw)
                yield from pick(epoch, [(start_batch + j) * self.world_size + self.rank
                                        for j in range(steps - start_batch)])
                return
            for b, batch in enumerate(self.sampler.epoch(epoch, start_batch * self.world_size)):
                step = start_batch + b // self.world_size
                if step >= steps:
                    break
                if b % self.world_size == self.rank:
                    yield batch
            return
        for batch in self.sampler.epoch(epoch, start_batch):
            if batch[0].numel() < self.world_size:
                continue
            yield type(batch)(*(t.tensor_split(self.world_size)[self.rank] for t in batch))

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.sampler!r}, rank={self.rank}, world_size={self.world_size}, '
                f'split={self.split!r})')


class LossModule(nn.Module):
    """``forward(adj, batch) = model.loss(adj, batch)``: what DDP wraps, since DDP synchronises gradients of
    the module's ``forward`` calls and a recommender's training entry point is its ``loss``."""
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, adj: Any, batch: NamedTuple) -> Tensor:
        return self.model.loss(adj, batch)


def wrap_ddp(model: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """:class:`LossModule` of :obj:`model` in :class:`~torch.nn.parallel.DistributedDataParallel`.

    Buffers are not re-broadcast before every step (every rank builds the same ones from the same data and
    seed; LD4MRec's step-sampler history stays per rank). ``static_graph=True``: the set of parameters a step
    reaches is the same at every step (an ablated branch is never reached), which DDP then learns once instead
    of searching the autograd graph at every step as ``find_unused_parameters`` would."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel
    ids = [device.index if device.index is not None else ctx.local_rank] if device.type == 'cuda' else None
    params = inspect.signature(DistributedDataParallel.__init__).parameters
    # torch >= 2.10 renamed broadcast_buffers (still accepted, with a warning) to forward_sync_buffers.
    sync = {'forward_sync_buffers': False} if 'forward_sync_buffers' in params else {'broadcast_buffers': False}
    return DistributedDataParallel(LossModule(model), device_ids=ids, static_graph=True, **sync)
