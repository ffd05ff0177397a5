from __future__ import annotations

from typing import Any, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ...ops import row_normalize


class _InfoNCE(torch.autograd.Function):
    r"""Mean over rows of :math:`\mathrm{logsumexp}_b S_{ab} - S_{aa}` with :math:`\mathbf{S} = c\,
    \mathbf{Z}_1\mathbf{Z}_2^\top`, as one node whose backward is
    :math:`(\mathrm{softmax}(\mathbf{S}) - \mathbf{I})\,\mathbf{Z}_2\,c / n` (and its transpose times
    :math:`\mathbf{Z}_1` for :math:`\mathbf{Z}_2`): two passes over the :math:`n \times n` matrix, where
    cross-entropy's autograd adds a zero-filled one-hot gradient and more :math:`n \times n` temporaries."""
    @staticmethod
    def forward(ctx: Any, z1: Tensor, z2: Tensor, scale: float) -> Tensor:  # type: ignore[override]
        s = torch.mm(z1, z2.t()).mul_(scale)
        lse = torch.logsumexp(s, dim=1, keepdim=True)
        loss = (lse.sum() - s.diagonal().sum()) / s.size(0)
        ctx.save_for_backward(z1, z2, s, lse)
        ctx.scale = scale
        return loss

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tuple[Tensor, Tensor, None]:  # type: ignore[override]
        z1, z2, s, lse = ctx.saved_tensors
        n = s.size(0)
        g = (s - lse).exp_()  # softmax (a new buffer: the saved s stays valid for a second backward)
        g.diagonal().sub_(1.0)
        g.mul_(grad * (ctx.scale / n))
        return g @ z2, g.t() @ z1, None


class InfoNCE(torch.nn.Module):
    r"""InfoNCE between two views with cosine similarity, from the `"Representation Learning with Contrastive
    Predictive Coding" <https://arxiv.org/abs/1807.03748>`_ paper, as used by SGL / SimGCL and DiffCL
    (Eq. 13-14). For :math:`n` anchors :math:`\mathbf{z}^1_a` and their positives :math:`\mathbf{z}^2_a`,
    averaged over anchors:

    .. math::
        \mathcal{L} = \frac{1}{n} \sum_{a=1}^{n} -\log
        \frac{\exp(s(\mathbf{z}^1_a, \mathbf{z}^2_a) / \tau)}{\sum_{b=1}^{n} \exp(s(\mathbf{z}^1_a,
        \mathbf{z}^2_b) / \tau)}, \qquad s(\mathbf{x}, \mathbf{y}) = \frac{\mathbf{x}^\top \mathbf{y}}
        {\|\mathbf{x}\| \|\mathbf{y}\|}

    DiffCL's Eq. 13-14 as printed put :math:`\tau` outside the exponential and only positive pairs
    :math:`s(\mathbf{z}^1_b, \mathbf{z}^2_b)` in the denominator, which has no negatives and is not InfoNCE;
    this is the standard form, with the other view's embeddings of the other anchors as negatives (the
    denominator includes the positive). The caller picks the anchors (DiffCL: the batch's unique users, and
    its unique positive items), so the cost is :math:`O(n^2 d)` per call.

    With :obj:`index` (:meth:`forward`), the anchors are the rows :math:`a \in` :obj:`index` of
    :math:`\mathbf{Z}^1` and the negatives are **every** row of :math:`\mathbf{Z}^2`, as in DiffMM's
    cross-modal contrast (its ``contrastLoss``: the batch's users or positive items, repeats kept, against
    all users or all items), at cost :math:`O(|\text{index}|\, N d)`:

    .. math::
        \mathcal{L} = \frac{1}{|\text{index}|} \sum_{a \in \text{index}} -\log
        \frac{\exp(s(\mathbf{z}^1_a, \mathbf{z}^2_a) / \tau)}{\sum_{b=1}^{N} \exp(s(\mathbf{z}^1_a,
        \mathbf{z}^2_b) / \tau)}

    Args:
        tau (float, optional): Temperature :math:`\tau`. (default: :obj:`0.4`)
        symmetric (bool, optional): Average with the loss of the views swapped. (default: :obj:`False`)
    """
    def __init__(self, tau: float = 0.4, symmetric: bool = False) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError(f'tau must be positive, got {tau}')
        self.tau, self.symmetric = tau, symmetric

    def forward(self, z1: Tensor, z2: Tensor, index: Optional[Tensor] = None) -> Tensor:
        if z1.shape != z2.shape:
            raise ValueError(f'views must have the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}')
        if index is not None:  # each distinct anchor once, weighted by its count: the same mean, fewer rows
            anchors, counts = torch.unique(index, return_counts=True)
            a = row_normalize(z1[anchors]) * (1.0 / self.tau)
            loss = F.cross_entropy(a @ row_normalize(z2).t(), anchors, reduction='none')
            return (loss * counts.to(loss.dtype)).sum() / index.numel()
        z1, z2 = row_normalize(z1), row_normalize(z2)
        if self.symmetric:
            logits = (z1 * (1.0 / self.tau)) @ z2.t()
            target = torch.arange(z1.size(0), device=z1.device)
            return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
        return _InfoNCE.apply(z1, z2, 1.0 / self.tau)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(tau={self.tau}, symmetric={self.symmetric})'
