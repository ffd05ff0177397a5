from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

STEP_SAMPLINGS = ('uniform', 'importance')
RECORDS = ('batch', 'example')


class StepSampler(torch.nn.Module):
    r"""Draws the 0-based diffusion step :math:`t \in \{0..T-1\}` of each training example, uniformly or by
    importance sampling, and returns the weight that keeps the loss unbiased. Shared by DiffCL's view
    generator and LD4MRec.

    **Importance sampling** (LD4MRec Eq. 8, following `"Improved Denoising Diffusion Probabilistic Models"
    <https://arxiv.org/abs/2102.09672>`_ and DiffRec): the sampler keeps the last :math:`H` losses seen at
    every step and, once every step has :math:`H` of them,

    .. math::
        p_t \propto \sqrt{\mathbb{E}\big[\mathcal{L}_t^2\big]}, \qquad
        p_t \leftarrow (1 - u)\, p_t + u / T, \qquad
        \mathcal{L} = \mathbb{E}_{t \sim p}\Big[\frac{\mathcal{L}_t}{T\, p_t}\Big]

    so harder (later, noisier) steps are drawn more often and the weighted loss has the expectation of the
    uniformly sampled one. Before the history is full, steps are uniform with weight 1. The :math:`1/T`
    in the weight (DiffRec's code multiplies :math:`p_t` by :math:`T` likewise) keeps the loss on the scale
    of uniform sampling, so the learning rate means the same with either sampler.

    What is recorded (:obj:`record`): DiffRec and Improved DDPM keep one loss per *example*. When example
    losses are heavy-tailed (LD4MRec's per-user losses grow with the user's number of interactions), ten of
    them estimate :math:`\mathbb{E}[\mathcal{L}_t^2]` so poorly that one heavy user makes :math:`p_t` of the
    other steps collapse to :math:`u/T` and their weights reach :math:`1/u` (on tiktok the training loss
    jumped 1.6x within an epoch). The default ``'batch'`` records, per step, the mean loss of the batch's
    examples at that step, an estimate of the same expectation with far less variance.

    In importance mode the history is a buffer, saved and restored with the model's ``state_dict``; in
    uniform mode it is not saved (it is never used), so state dicts of uniform samplers carry no entries.

    Args:
        num_steps (int): :math:`T`.
        mode (str, optional): ``'uniform'`` or ``'importance'``. (default: :obj:`'importance'`)
        history (int, optional): :math:`H`, losses kept per step (DiffRec: 10). (default: :obj:`10`)
        uniform_prob (float, optional): :math:`u`, the uniform share mixed into :math:`p`
            (DiffRec: 0.001). (default: :obj:`0.001`)
        record (str, optional): ``'batch'`` (per-step batch means) or ``'example'`` (DiffRec's per-example
            losses). (default: :obj:`'batch'`)
    """
    def __init__(self, num_steps: int, mode: str = 'importance', history: int = 10,
                 uniform_prob: float = 0.001, record: str = 'batch') -> None:
        super().__init__()
        if num_steps < 1:
            raise ValueError(f'num_steps must be >= 1, got {num_steps}')
        if mode not in STEP_SAMPLINGS:
            raise ValueError(f'mode must be one of {list(STEP_SAMPLINGS)}, got {mode!r}')
        if record not in RECORDS:
            raise ValueError(f'record must be one of {list(RECORDS)}, got {record!r}')
        if history < 1:
            raise ValueError(f'history must be >= 1, got {history}')
        if not 0.0 <= uniform_prob <= 1.0:
            raise ValueError(f'uniform_prob must be in [0, 1], got {uniform_prob}')
        self.num_steps, self.mode, self.history_size, self.uniform_prob = num_steps, mode, history, uniform_prob
        self.record = record
        saved = mode == 'importance'
        self.register_buffer('loss_history', torch.zeros(num_steps, history, dtype=torch.float64),
                             persistent=saved)
        self.register_buffer('loss_count', torch.zeros(num_steps, dtype=torch.long), persistent=saved)

    def reset_parameters(self) -> None:
        self.loss_history.zero_()
        self.loss_count.zero_()

    @property
    def ready(self) -> bool:
        """Whether importance sampling is active (every step has a full history)."""
        return self.mode == 'importance' and bool((self.loss_count >= self.history_size).all())

    def probabilities(self) -> Tensor:
        """:math:`p_0..p_{T-1}` (``float64``) of the next draw."""
        T = self.num_steps
        if not self.ready:
            return torch.full((T,), 1.0 / T, dtype=torch.float64, device=self.loss_history.device)
        p = self.loss_history.pow(2).mean(dim=1).sqrt()
        total = p.sum()
        p = p / total if total > 0 else torch.full_like(p, 1.0 / T)
        return p * (1.0 - self.uniform_prob) + self.uniform_prob / T

    def sample(self, n: int, device: torch.device | str = 'cpu',
               generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor]:
        r"""``(t, weight)``: :obj:`n` 0-based steps in :math:`0..T-1` (``long``) and their weights
        :math:`1 / (T p_t)` (``float32``; all 1 while sampling is uniform). Drawn on the CPU (with
        :obj:`generator`, a CPU generator, when given) and moved to :obj:`device`."""
        if not self.ready:
            t = torch.randint(0, self.num_steps, (n,), generator=generator)
            return t.to(device), torch.ones(n, device=device)
        p = self.probabilities().cpu()
        idx = torch.multinomial(p, n, replacement=True, generator=generator)
        weight = 1.0 / (self.num_steps * p[idx])
        return idx.to(device), weight.float().to(device)

    @torch.no_grad()
    def update(self, t: Tensor, losses: Tensor) -> None:
        r"""Record per-example losses (before weighting) at their steps :obj:`t` (0-based), each one
        (``record='example'``) or their mean per step (``'batch'``): each step keeps its most recent
        :math:`H` values, oldest first (DiffRec's first-in-first-out history)."""
        if self.mode != 'importance':
            return
        t = t.detach().long().cpu()
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.num_steps):
            raise ValueError(f't: steps are 0-based, in 0..{self.num_steps - 1}; got {int(t.min())}..{int(t.max())}')
        losses = losses.detach().double().cpu()
        hist, count = self.loss_history.cpu(), self.loss_count.cpu()
        H = self.history_size
        for step in torch.unique(t).tolist():
            new = losses[t == step]
            if self.record == 'batch':
                new = new.mean().view(1)
            kept = min(int(count[step]), H)
            row = torch.cat([hist[step, :kept], new])[-H:]
            hist[step, :row.numel()] = row
            count[step] += new.numel()
        self.loss_history.copy_(hist)
        self.loss_count.copy_(count)

    def extra_repr(self) -> str:
        return (f'num_steps={self.num_steps}, mode={self.mode!r}, history={self.history_size}, '
                f'record={self.record!r}')
