from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


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

    Args:
        tau (float, optional): Temperature :math:`\tau`. (default: :obj:`0.4`)
        symmetric (bool, optional): Average with the loss of the views swapped. (default: :obj:`False`)
    """
    def __init__(self, tau: float = 0.4, symmetric: bool = False) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError(f'tau must be positive, got {tau}')
        self.tau, self.symmetric = tau, symmetric

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        if z1.shape != z2.shape:
            raise ValueError(f'views must have the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}')
        z1, z2 = F.normalize(z1, dim=-1), F.normalize(z2, dim=-1)
        logits = z1 @ z2.t() / self.tau
        target = torch.arange(z1.size(0), device=z1.device)
        loss = F.cross_entropy(logits, target)
        if self.symmetric:
            loss = 0.5 * (loss + F.cross_entropy(logits.t(), target))
        return loss

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(tau={self.tau}, symmetric={self.symmetric})'
