from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class BootstrapLatent(torch.nn.Module):
    r"""BM3's self-supervision without negatives, from the `"Bootstrap Latent Representations for Multi-modal
    Recommendation" <https://arxiv.org/abs/2207.05969>`_ paper (Zhou et al., WWW 2023, Sec. 3.2-3.3), read
    with its official code (MMRec's ``src/models/bm3.py``): a shared linear *predictor* maps online
    embeddings, and the *target* of each is a dropout view of the (detached) online embedding itself, with no
    momentum network:

    .. math::
        \tilde{\mathbf{h}} = \mathrm{dropout}_p(\mathrm{sg}(\mathbf{h})), \qquad
        \mathcal{L}(\mathbf{a}, \mathbf{b}) = 1 - \frac{1}{B}\sum_{r=1}^{B}
        \cos\big(f_\theta(\mathbf{a}_r), \tilde{\mathbf{b}}_r\big)

    (:meth:`forward`; :math:`f_\theta` is :attr:`predictor`, :math:`\mathrm{sg}` stops the gradient). The
    dropout of the targets is applied whether or not the module is in training mode, as in the official code,
    since targets exist only in the loss.

    Args:
        dim (int): The embedding size :math:`d` (the predictor is :math:`d \to d`).
        dropout (float, optional): :math:`p`, the targets' dropout rate. (default: :obj:`0.5`)
    """
    def __init__(self, dim: int, dropout: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f'dropout: must be in [0, 1), got {dropout}')
        self.dim, self.dropout = dim, dropout
        self.predictor = torch.nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.xavier_normal_(self.predictor.weight)
        bound = 1.0 / self.dim ** 0.5  # nn.Linear's default bias initialisation, as the official code keeps
        torch.nn.init.uniform_(self.predictor.bias, -bound, bound)

    def predict(self, h: Tensor) -> Tensor:
        r""":math:`f_\theta(\mathbf{h})`."""
        return self.predictor(h)

    def target(self, h: Tensor) -> Tensor:
        r""":math:`\mathrm{dropout}_p(\mathrm{sg}(\mathbf{h}))`."""
        return F.dropout(h.detach(), self.dropout, training=True)

    def forward(self, predicted: Tensor, target: Tensor) -> Tensor:
        r""":math:`1 - \overline{\cos}(\text{predicted}, \text{target})` over rows, for already predicted
        online rows and target rows (detached here again)."""
        return 1.0 - F.cosine_similarity(predicted, target.detach(), dim=-1).mean()

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({self.dim}, dropout={self.dropout})'
