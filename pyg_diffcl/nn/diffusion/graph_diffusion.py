from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from .denoiser import DenoisingMLP
from .gaussian_diffusion import GaussianDiffusion


class ModalityGraphDiffusion(torch.nn.Module):
    r"""DiffMM's modality-aware graph diffusion, from the `"DiffMM: Multi-Modal Diffusion Model for
    Recommendation" <https://arxiv.org/abs/2406.11781>`_ paper (Jiang et al., ACM MM 2024, Sec. 3.1), read with
    its official code (``github.com/HKUDS/DiffMM``, ``Model.py``: ``GaussianDiffusion``, ``Denoise``;
    ``Main.py``: the diffusion phase and the graph rebuild). One instance per modality.

    Each user's training row :math:`\mathbf{x}_0 \in \{0, 1\}^{|\mathcal{I}|}` is diffused
    (:class:`GaussianDiffusion`, :meth:`~GaussianDiffusion.add_noise`) and a denoiser
    (:class:`DenoisingMLP` over the :math:`|\mathcal{I}|`-dimensional rows) predicts :math:`\hat{\mathbf{x}}_0`.
    :meth:`loss` is the step-reweighted reconstruction plus the *modality-aware signal injection* (MSI),
    which asks the predicted row, read through the modality's item features, to match the true row read
    through the item ID embeddings:

    .. math::
        \mathcal{L} = \frac{1}{B}\sum_u w_{t_u} \frac{\|\mathbf{x}_{0,u} - \hat{\mathbf{x}}_{0,u}\|^2}{|\mathcal{I}|}
        + \lambda_{msi} \frac{1}{B}\sum_u \frac{\|\hat{\mathbf{x}}_{0,u}\mathbf{F}_m -
        \mathbf{x}_{0,u}\mathbf{E}_\mathcal{I}\|^2}{d}

    with :math:`t_u` uniform over the steps and :math:`w_t` :meth:`GaussianDiffusion.snr_weights`
    (:obj:`reweight`; :math:`w_0 = 1`). :math:`\mathbf{F}_m` and :math:`\mathbf{E}_\mathcal{I}` come from the
    recommender and are detached here: the MSI trains only the denoiser, as in the official code.

    :meth:`generate` builds the modality's user-item graph: from the **clean** row :math:`\mathbf{x}_0`
    (the official ``sampling_steps = 0``), :math:`T` deterministic reverse steps
    (:meth:`GaussianDiffusion.p_sample_loop`), then each user's top-:math:`k` items of the result. The
    official code keeps :math:`k = 1` and does not mask the user's training items (:obj:`exclude`).

    Args:
        num_items (int): :math:`|\mathcal{I}|`, the rows' width.
        diffusion (GaussianDiffusion): The noise schedule (DiffMM: 5 steps, scale 0.1, 1e-4 to 0.02,
            ``first_beta=1e-4``).
        hidden (Sequence[int], optional): The denoiser's hidden sizes. (default: :obj:`(1000,)`)
        time_dim (int, optional): Its step-embedding size. (default: :obj:`10`)
        dropout (float, optional): Its input dropout while training. (default: :obj:`0.5`)
        msi_weight (float, optional): :math:`\lambda_{msi}` (the official ``e_loss``). (default: :obj:`0.1`)
        reweight (bool, optional): Weigh each row's loss by :math:`w_t`. (default: :obj:`True`)
    """
    def __init__(self, num_items: int, diffusion: GaussianDiffusion, hidden: Sequence[int] = (1000,),
                 time_dim: int = 10, dropout: float = 0.5, msi_weight: float = 0.1, reweight: bool = True) -> None:
        super().__init__()
        if msi_weight < 0:
            raise ValueError(f'msi_weight: must be non-negative, got {msi_weight}')
        self.num_items, self.msi_weight, self.reweight = int(num_items), float(msi_weight), bool(reweight)
        self.diffusion = diffusion
        self.denoiser = DenoisingMLP(num_items, hidden, time_dim, dropout)

    def reset_parameters(self) -> None:
        self.denoiser.reset_parameters()

    def loss(self, x0: Tensor, item_features: Optional[Tensor] = None, item_embedding: Optional[Tensor] = None
             ) -> Tensor:
        r"""The diffusion loss of a batch of rows :obj:`x0` ``[B, |I|]``, with the MSI term when
        :obj:`item_features` :math:`\mathbf{F}_m` and :obj:`item_embedding` :math:`\mathbf{E}_\mathcal{I}`
        (``[|I|, d]`` each) are given."""
        T = self.diffusion.num_steps
        t = torch.randint(0, T, (x0.size(0),), device=x0.device)
        x_t = self.diffusion.add_noise(x0, torch.randn_like(x0), t)
        pred = self.denoiser(x_t, t)
        mse = (x0 - pred).pow(2).mean(dim=1)
        if self.reweight:
            mse = self.diffusion.snr_weights().to(device=x0.device, dtype=x0.dtype)[t] * mse
        loss = mse.mean()
        if self.msi_weight > 0 and item_features is not None and item_embedding is not None:
            msi = (pred @ item_features.detach() - x0 @ item_embedding.detach()).pow(2).mean(dim=1)
            loss = loss + self.msi_weight * msi.mean()
        return loss

    @torch.no_grad()
    def generate(self, x0: Tensor, k: int = 1, exclude: Optional[Tensor] = None) -> Tensor:
        r"""Each row's top-:obj:`k` items after the reverse chain from the clean :obj:`x0`: ``[B, k]`` item
        indices. :obj:`exclude`, a boolean ``[B, |I|]`` mask, removes items from the candidates."""
        was_training = self.denoiser.training
        self.denoiser.eval()
        try:
            x = self.diffusion.p_sample_loop(self.denoiser, x0)
        finally:
            self.denoiser.train(was_training)
        if exclude is not None:
            x = x.masked_fill(exclude, float('-inf'))
        return x.topk(k, dim=1).indices

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.num_items}, hidden={self.denoiser.hidden}, '
                f'steps={self.diffusion.num_steps}, msi_weight={self.msi_weight})')
