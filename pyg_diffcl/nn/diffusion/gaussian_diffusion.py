from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    r"""Sinusoidal embedding of diffusion steps (as in DDPM / DiffRec):

    .. math::
        \mathrm{emb}(t) = \big[\cos(t\,\omega_0), \ldots, \cos(t\,\omega_{h-1}), \sin(t\,\omega_0), \ldots,
        \sin(t\,\omega_{h-1})\big], \quad \omega_k = P^{-k/h}, \quad h = \lfloor d/2 \rfloor

    (a zero column is appended when :obj:`dim` is odd).

    Args:
        t (Tensor): Steps ``[B]`` (integers or floats).
        dim (int): Embedding size.
        max_period (float): :math:`P`. (default: :obj:`10000.0`)
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / max(half, 1))
    args = t.float().view(-1, 1) * freqs.view(1, -1)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, emb.new_zeros(emb.size(0), 1)], dim=-1)
    return emb


class GaussianDiffusion(torch.nn.Module):
    r"""The Gaussian diffusion process of DiffRec / DiffCL / LD4MRec: the noise schedule, the forward
    corruption :math:`q(\mathbf{x}_t \mid \mathbf{x}_0)`, the posterior
    :math:`q(\mathbf{x}_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0)` and the reverse steps given a
    denoiser's :math:`\hat{\mathbf{x}}_0` prediction. It has no learnable parameters.

    **Schedule** (DiffCL Eq. 11, DiffRec's "linear-var"): for :math:`t = 1..T`

    .. math::
        1 - \bar{\gamma}_t = s \left[\gamma_{\min} + \tfrac{t-1}{T-1}(\gamma_{\max} - \gamma_{\min})\right],
        \qquad \beta_t = 1 - \bar{\gamma}_t / \bar{\gamma}_{t-1} \ (\bar{\gamma}_0 = 1),
        \qquad \gamma_t = 1 - \beta_t

    (the paper's text swaps the names "maximum" and "minimum": :math:`\gamma_{\min}` is the lower bound; with
    :math:`T = 1` the fraction is taken as 0).

    **Forward** (Eq. 7, 10): :math:`\mathbf{x}_t = \sqrt{\bar{\gamma}_t}\,\mathbf{x}_0 +
    \sqrt{1 - \bar{\gamma}_t}\,\boldsymbol{\varepsilon}`, :math:`\boldsymbol{\varepsilon} \sim
    \mathcal{N}(0, \mathbf{I})`.

    **Reverse** (Eq. 12): :math:`p_\theta(\mathbf{x}_{t-1} \mid \mathbf{x}_t) = \mathcal{N}(\tilde{\mu}_t,
    \tilde{\beta}_t \mathbf{I})` with the posterior mean at the predicted :math:`\hat{\mathbf{x}}_0`,

    .. math::
        \tilde{\mu}_t = \frac{\beta_t \sqrt{\bar{\gamma}_{t-1}}}{1 - \bar{\gamma}_t}\,\hat{\mathbf{x}}_0
        + \frac{(1 - \bar{\gamma}_{t-1})\sqrt{\gamma_t}}{1 - \bar{\gamma}_t}\,\mathbf{x}_t,
        \qquad \tilde{\beta}_t = \frac{1 - \bar{\gamma}_{t-1}}{1 - \bar{\gamma}_t}\,\beta_t .

    The paper's "two learnable networks" for mean and covariance are read as in DiffRec and DiffMM: the
    denoiser predicts :math:`\mathbf{x}_0` (``'x0'``; ``'eps'`` is the alternative) and the variance is the
    fixed posterior variance; reverse sampling is deterministic (the mean) unless
    :obj:`sampling_noise=True`.

    Args:
        num_steps (int): :math:`T`. (default: :obj:`5`)
        noise_scale (float): :math:`s`. (default: :obj:`0.1`)
        noise_min (float): :math:`\gamma_{\min}`. (default: :obj:`1e-4`)
        noise_max (float): :math:`\gamma_{\max}`. (default: :obj:`0.02`)
        max_beta (float): Upper clip of :math:`\beta_t` (DiffRec's 0.999). (default: :obj:`0.999`)
    """
    def __init__(self, num_steps: int = 5, noise_scale: float = 0.1, noise_min: float = 1e-4,
                 noise_max: float = 0.02, max_beta: float = 0.999) -> None:
        super().__init__()
        if num_steps < 1:
            raise ValueError(f'num_steps must be >= 1, got {num_steps}')
        if not 0 < noise_scale <= 1:
            raise ValueError(f'noise_scale must be in (0, 1], got {noise_scale}')
        if not 0 <= noise_min <= noise_max < 1:
            raise ValueError(f'need 0 <= noise_min <= noise_max < 1, got {noise_min}, {noise_max}')
        self.num_steps, self.noise_scale = num_steps, noise_scale
        self.noise_min, self.noise_max = noise_min, noise_max
        T = num_steps
        frac = torch.arange(T, dtype=torch.float64) / max(T - 1, 1)
        one_minus_bar = noise_scale * (noise_min + frac * (noise_max - noise_min))
        bar = 1.0 - one_minus_bar
        bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), bar[:-1]])
        betas = (1.0 - bar / bar_prev).clamp(max=max_beta)
        betas[0] = 1.0 - bar[0]
        alphas = 1.0 - betas
        # Recompute the cumulative product from the (possibly clipped) betas, as DDPM / DiffRec do.
        bar = torch.cumprod(alphas, 0)
        bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), bar[:-1]])
        post_var = betas * (1.0 - bar_prev) / (1.0 - bar)
        for name, value in (
            ('betas', betas), ('alphas', alphas), ('alphas_cumprod', bar), ('alphas_cumprod_prev', bar_prev),
            ('posterior_variance', post_var),
            ('posterior_mean_coef1', betas * bar_prev.sqrt() / (1.0 - bar)),
            ('posterior_mean_coef2', (1.0 - bar_prev) * alphas.sqrt() / (1.0 - bar)),
        ):
            self.register_buffer(name, value)  # float64: cast to the input's dtype on use

    @staticmethod
    def _at(values: Tensor, t: Tensor, x: Tensor) -> Tensor:
        """Gather ``values[t - 1]`` (1-based steps) and broadcast over the trailing dims of :obj:`x`."""
        out = values.to(device=x.device, dtype=x.dtype)[t.long() - 1]
        return out.view(-1, *([1] * (x.dim() - 1)))

    def q_sample(self, x0: Tensor, t: Tensor, noise: Optional[Tensor] = None) -> Tensor:
        r""":math:`\mathbf{x}_t \sim q(\mathbf{x}_t \mid \mathbf{x}_0)` for per-row steps :obj:`t` (1-based)."""
        if noise is None:
            noise = torch.randn_like(x0)
        return self._at(self.alphas_cumprod, t, x0).sqrt() * x0 + \
            self._at(1.0 - self.alphas_cumprod, t, x0).sqrt() * noise

    def posterior_mean(self, x0_pred: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        r""":math:`\tilde{\mu}_t(\mathbf{x}_t, \hat{\mathbf{x}}_0)`."""
        if t.numel() == 1:  # one step for every row: scalar coefficients, one fused multiply-add
            k = int(t.reshape(())) - 1
            return torch.add(x0_pred * float(self.posterior_mean_coef1[k]), x_t,
                             alpha=float(self.posterior_mean_coef2[k]))
        return self._at(self.posterior_mean_coef1, t, x_t) * x0_pred + \
            self._at(self.posterior_mean_coef2, t, x_t) * x_t

    def x0_from_eps(self, x_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        r""":math:`\hat{\mathbf{x}}_0 = (\mathbf{x}_t - \sqrt{1-\bar{\gamma}_t}\,\hat{\varepsilon}) /
        \sqrt{\bar{\gamma}_t}` for a noise-predicting denoiser."""
        return (x_t - self._at(1.0 - self.alphas_cumprod, t, x_t).sqrt() * eps) / \
            self._at(self.alphas_cumprod, t, x_t).sqrt()

    def p_sample_loop(self, denoiser, x_t: Tensor, start_step: Optional[int] = None,
                      predict: str = 'x0', sampling_noise: bool = False) -> Tensor:
        r"""Run the reverse process from step :obj:`start_step` (default :math:`T`) down to 1:
        :math:`\mathbf{x}_{t-1} = \tilde{\mu}_t` (plus :math:`\sqrt{\tilde{\beta}_t}\,\mathbf{z}` for
        :math:`t > 1` when :obj:`sampling_noise`). :obj:`denoiser(x_t, t)` predicts :math:`\mathbf{x}_0`
        (``predict='x0'``) or the noise (``'eps'``), with :obj:`t` a one-element tensor (every row is at that
        step; :class:`DenoisingMLP` broadcasts it). Differentiable: gradients flow through every step."""
        start = self.num_steps if start_step is None else int(start_step)
        if not 1 <= start <= self.num_steps:
            raise ValueError(f'start_step must be in 1..{self.num_steps}, got {start}')
        x = x_t
        for step in range(start, 0, -1):
            # one step for all rows: a one-element t, which the coefficients broadcast and a denoiser may too
            t = torch.full((1,), step, device=x.device, dtype=torch.long)
            out = denoiser(x, t)
            x0_pred = out if predict == 'x0' else self.x0_from_eps(x, t, out)
            x = self.posterior_mean(x0_pred, x, t)
            if sampling_noise and step > 1:
                x = x + self._at(self.posterior_variance, t, x).sqrt() * torch.randn_like(x)
        return x

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_steps={self.num_steps}, noise_scale={self.noise_scale}, '
                f'noise_min={self.noise_min}, noise_max={self.noise_max})')
