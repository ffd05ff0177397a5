r"""Row L2 normalisation as one autograd node (the same map as :func:`torch.nn.functional.normalize` with
``p=2, dim=-1``, with a shorter backward)."""
from __future__ import annotations

from typing import Any, Tuple

import torch
from torch import Tensor


class _RowNormalize(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, eps: float) -> Tensor:  # type: ignore[override]
        raw = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        clamped = raw < eps
        norm = raw.clamp_min_(eps)
        y = x / norm
        ctx.save_for_backward(y, norm, clamped)  # the mask is [N, 1]: no need to ask (and sync) whether any is set
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tuple[Tensor, None]:  # type: ignore[override]
        y, norm, clamped = ctx.saved_tensors
        # y = x / eps is linear in x on a clamped row: no projection there
        proj = (grad * y).sum(-1, keepdim=True).masked_fill_(clamped, 0.0)
        return torch.addcmul(grad, y, proj, value=-1.0).div_(norm), None


def row_normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    r"""Each row divided by its Euclidean norm, :math:`\mathbf{y}_i = \mathbf{x}_i / \max(\|\mathbf{x}_i\|_2,
    \epsilon)`, the value of ``F.normalize(x, dim=-1)``. Its backward is the projection

    .. math::
        \frac{\partial L}{\partial \mathbf{x}_i} = \frac{\mathbf{g}_i - \mathbf{y}_i\,
        (\mathbf{g}_i^\top \mathbf{y}_i)}{\|\mathbf{x}_i\|}

    (:math:`\mathbf{g}_i / \epsilon` on a clamped row), three passes over the matrix where autograd's
    composition of norm, clamp and division takes about twice as many; it matters for the
    :math:`(|\mathcal{U}|+|\mathcal{I}|) \times d` layer-0 matrices normalised at every step."""
    if not (torch.is_grad_enabled() and x.requires_grad):
        return torch.nn.functional.normalize(x, dim=-1, eps=eps)
    return _RowNormalize.apply(x, eps)
