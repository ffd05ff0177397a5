from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from .denoiser import DenoisingMLP
from .gaussian_diffusion import PREDICTION_TYPES, GaussianDiffusion
from .step_sampler import StepSampler


class DiffusionViewGenerator(torch.nn.Module):
    r"""Diffusion-generated contrastive views of an embedding matrix (DiffCL Eq. 6-12).

    A view of :math:`\mathbf{X}_0` (one row per node) is the forward corruption to step :math:`T_s` followed
    by :math:`T_s` learned reverse steps:

    .. math::
        \mathbf{X}_{T_s} = \sqrt{\bar{\gamma}_{T_s}}\,\mathbf{X}_0 + \sqrt{1-\bar{\gamma}_{T_s}}\,
        \boldsymbol{\varepsilon}, \qquad \mathbf{X}^{\text{view}} = p_\theta^{(1)} \circ \cdots \circ
        p_\theta^{(T_s)}(\mathbf{X}_{T_s}),

    and two calls with independent :math:`\boldsymbol{\varepsilon}` give the two views of Eq. 13-16. The
    paper leaves open what is made switchable here (defaults from DiffRec / DiffMM):

    * what the denoiser predicts: :math:`\mathbf{x}_0` (:obj:`predict='x0'`, "predicting the original state")
      or the noise (``'eps'``);
    * its training loss (:meth:`loss`): :math:`\|f_\theta(\mathbf{x}_t, t) - \mathrm{sg}(\mathbf{x}_0)\|^2`
      averaged over rows and dimensions, with :math:`t \sim \mathcal{U}\{0..T-1\}` (uniform weighting, or
      LD4MRec's importance sampling with :obj:`step_sampling='importance'`, :class:`StepSampler`; the
      target is detached so that this loss trains the denoiser only);
    * :math:`T` and the number of reverse steps :math:`T_s` (:obj:`view_steps`, default :math:`T`);
    * whether gradients flow through the views back into :math:`\mathbf{X}_0` (:obj:`detach_views=False`,
      the default: otherwise the contrastive loss could not reach the encoders, since views are not used at
      inference).

    The reverse steps are :meth:`GaussianDiffusion.step`. The denoiser is given the step's *number*
    :math:`t + 1 \in 1..T` (the 0-based step plus one), the convention of this model's first release, kept so
    that trained weights and results carry over; it is a fixed relabelling of the step embedding.

    Args:
        dim (int): Embedding size.
        diffusion (GaussianDiffusion, optional): The process; its :obj:`prediction_type` must be
            :obj:`predict`. (default: :obj:`GaussianDiffusion(prediction_type=predict)`)
        hidden (Sequence[int], optional): Denoiser hidden sizes. (default: :obj:`(256,)`)
        dropout (float, optional): Denoiser input dropout. (default: :obj:`0.5`)
        predict (str, optional): ``'x0'`` or ``'eps'``. (default: :obj:`'x0'`)
        view_steps (int, optional): :math:`T_s`; :obj:`None` means :math:`T`. (default: :obj:`None`)
        detach_views (bool, optional): Stop gradients from the views into :math:`\mathbf{X}_0`.
            (default: :obj:`False`)
        sampling_noise (bool, optional): Add the posterior noise in reverse steps. (default: :obj:`False`)
        step_sampling (str, optional): How :meth:`loss` draws steps, ``'uniform'`` or ``'importance'``.
            (default: :obj:`'uniform'`)
    """
    def __init__(self, dim: int, diffusion: Optional[GaussianDiffusion] = None, hidden: Sequence[int] = (256,),
                 dropout: float = 0.5, predict: str = 'x0', view_steps: Optional[int] = None,
                 detach_views: bool = False, sampling_noise: bool = False, step_sampling: str = 'uniform') -> None:
        super().__init__()
        if predict not in PREDICTION_TYPES:
            raise ValueError(f"predict: must be one of {list(PREDICTION_TYPES)}, got {predict!r}")
        self.diffusion = diffusion if diffusion is not None else GaussianDiffusion(prediction_type=predict)
        if self.diffusion.prediction_type != predict:
            raise ValueError(f"predict: {predict!r}, but the diffusion's prediction_type is "
                             f"{self.diffusion.prediction_type!r}")
        T = self.diffusion.num_steps
        self.view_steps = T if view_steps is None else int(view_steps)
        if not 1 <= self.view_steps <= T:
            raise ValueError(f'view_steps: must be in 1..{T}, got {self.view_steps}')
        self.denoiser = DenoisingMLP(dim, hidden, dropout=dropout)
        self.step_sampler = StepSampler(T, step_sampling)
        self.predict, self.detach_views, self.sampling_noise = predict, detach_views, sampling_noise

    def reset_parameters(self) -> None:
        self.denoiser.reset_parameters()
        self.step_sampler.reset_parameters()

    def forward(self, x0: Tensor) -> Tensor:
        """One view of :obj:`x0` ``[N, d]``."""
        if self.detach_views:
            x0 = x0.detach()
        t = torch.full((x0.size(0),), self.view_steps - 1, device=x0.device, dtype=torch.long)
        x_t = self.diffusion.add_noise(x0, torch.randn_like(x0), t)
        return self.diffusion.p_sample_loop(self._denoise, x_t, self.view_steps, self.sampling_noise)

    def _denoise(self, x_t: Tensor, t: Tensor) -> Tensor:
        """The denoiser at 0-based steps :obj:`t`, given the step numbers ``t + 1`` (see the class notes)."""
        return self.denoiser(x_t, t + 1)

    def pair(self, x0: Tensor) -> Tuple[Tensor, Tensor]:
        """Two independent views of :obj:`x0`, generated in one pass over the stacked rows ``[x0; x0]``
        (the same as two calls: the denoiser acts on rows independently, and each copy gets its own noise)."""
        views = self(torch.cat([x0, x0], dim=0))
        return views[:x0.size(0)], views[x0.size(0):]

    def loss(self, x0: Tensor) -> Tensor:
        r"""The denoiser's training loss on :obj:`x0` (detached), one step per row drawn by
        :attr:`step_sampler` (uniform by default) and weighted to stay unbiased."""
        x0 = x0.detach()
        t, weight = self.step_sampler.sample(x0.size(0), x0.device)
        noise = torch.randn_like(x0)
        out = self._denoise(self.diffusion.add_noise(x0, noise, t), t)
        target = x0 if self.predict == 'x0' else noise
        per_row = (out - target).pow(2).mean(dim=1)
        self.step_sampler.update(t, per_row)
        return (weight * per_row).mean()

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.denoiser.dim}, {self.diffusion}, predict={self.predict!r}, '
                f'view_steps={self.view_steps}, detach_views={self.detach_views})')
