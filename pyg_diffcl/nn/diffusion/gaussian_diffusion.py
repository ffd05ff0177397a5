from __future__ import annotations

import math
from typing import Callable, Optional

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


#: Noise schedules of :class:`GaussianDiffusion`.
SCHEDULES = ('linear-var', 'cosine')
#: What a denoiser predicts: the clean sample (``'x0'``, diffusers' ``'sample'``) or the noise (``'eps'``,
#: diffusers' ``'epsilon'``).
PREDICTION_TYPES = ('x0', 'eps')


class GaussianDiffusion(torch.nn.Module):
    r"""The Gaussian diffusion process of DiffRec / DiffCL / LD4MRec as a scheduler in the manner of diffusers'
    ``DDPMScheduler``: the noise schedule, :meth:`add_noise` (the forward corruption
    :math:`q(\mathbf{x}_t \mid \mathbf{x}_0)`), and :meth:`step` (one reverse step given a denoiser's
    output), from which :meth:`p_sample_loop`, and any sampling loop of a user's own, is built. It has no
    learnable parameters.

    **Timesteps are 0-based**, as in diffusers: :math:`t \in \{0, \ldots, T-1\}`, :math:`t = 0` the least
    noisy step. (The papers number them :math:`1..T`; their step :math:`k` is :math:`t = k - 1` here.) Every
    method checks its steps and raises :class:`ValueError` outside the range.

    **Schedules** (:obj:`schedule`), as :math:`\bar{\gamma}_t = \prod_{s \le t} \gamma_s`,
    :math:`\gamma_t = 1 - \beta_t`:

    * ``'linear-var'`` (DiffCL Eq. 11, DiffRec's default): :math:`1 - \bar{\gamma}_t = s \left[\gamma_{\min}
      + \tfrac{t}{T-1}(\gamma_{\max} - \gamma_{\min})\right]`, :math:`\beta_t = 1 - \bar{\gamma}_t /
      \bar{\gamma}_{t-1}` (the paper's text swaps the names "maximum" and "minimum": :math:`\gamma_{\min}` is
      the lower bound; with :math:`T = 1` the fraction is 0);
    * ``'cosine'`` (Nichol and Dhariwal, `"Improved Denoising Diffusion Probabilistic Models"
      <https://arxiv.org/abs/2102.09672>`_, Eq. 17): :math:`\bar{\gamma}_t = f(t + 1) / f(0)`,
      :math:`f(u) = \cos^2\!\big(\frac{u/T + 0.008}{1.008}\cdot\frac{\pi}{2}\big)` (:obj:`noise_scale`,
      :obj:`noise_min` and :obj:`noise_max` do not apply).

    :math:`\beta_t` is clipped at :obj:`max_beta` and :math:`\bar{\gamma}` recomputed from the clipped values,
    as DDPM and DiffRec do. :obj:`first_beta` fixes :math:`\beta_0` instead (DiffRec's and DiffMM's
    ``beta_fixed``; DiffMM's code sets it to :math:`10^{-4}`).

    **Forward** (:meth:`add_noise`, Eq. 7, 10): :math:`\mathbf{x}_t = \sqrt{\bar{\gamma}_t}\,\mathbf{x}_0 +
    \sqrt{1 - \bar{\gamma}_t}\,\boldsymbol{\varepsilon}`, :math:`\boldsymbol{\varepsilon} \sim
    \mathcal{N}(0, \mathbf{I})`.

    **Reverse** (:meth:`step`, Eq. 12): :math:`p_\theta(\mathbf{x}_{t-1} \mid \mathbf{x}_t) =
    \mathcal{N}(\tilde{\mu}_t, \tilde{\beta}_t \mathbf{I})` with the posterior mean at the predicted
    :math:`\hat{\mathbf{x}}_0`,

    .. math::
        \tilde{\mu}_t = \frac{\beta_t \sqrt{\bar{\gamma}_{t-1}}}{1 - \bar{\gamma}_t}\,\hat{\mathbf{x}}_0
        + \frac{(1 - \bar{\gamma}_{t-1})\sqrt{\gamma_t}}{1 - \bar{\gamma}_t}\,\mathbf{x}_t,
        \qquad \tilde{\beta}_t = \frac{1 - \bar{\gamma}_{t-1}}{1 - \bar{\gamma}_t}\,\beta_t

    (:math:`\bar{\gamma}_{-1} = 1`). The paper's "two learnable networks" for mean and covariance are read as
    in DiffRec and DiffMM: the denoiser predicts :math:`\mathbf{x}_0` (:obj:`prediction_type='x0'`; ``'eps'``
    is the alternative, :math:`\hat{\mathbf{x}}_0 = (\mathbf{x}_t - \sqrt{1-\bar{\gamma}_t}\,
    \hat{\boldsymbol{\varepsilon}}) / \sqrt{\bar{\gamma}_t}`) and the variance is the fixed posterior
    variance; a step is deterministic (the mean) unless :obj:`sampling_noise=True`.

    A sampling loop of one's own, for example with fewer steps than were trained or with guidance::

        x = diffusion.add_noise(x0, torch.randn_like(x0), torch.full((n,), k - 1))
        for t in range(k - 1, -1, -1):
            x = diffusion.step(denoiser(x, torch.tensor([t])), t, x)

    Args:
        num_steps (int): :math:`T`. (default: :obj:`5`)
        noise_scale (float): :math:`s`. (default: :obj:`0.1`)
        noise_min (float): :math:`\gamma_{\min}`. (default: :obj:`1e-4`)
        noise_max (float): :math:`\gamma_{\max}`. (default: :obj:`0.02`)
        max_beta (float): Upper clip of :math:`\beta_t` (DiffRec's 0.999). (default: :obj:`0.999`)
        schedule (str): One of :data:`SCHEDULES`. (default: :obj:`'linear-var'`)
        prediction_type (str): What the denoiser predicts, one of :data:`PREDICTION_TYPES`.
            (default: :obj:`'x0'`)
        first_beta (float, optional): A fixed :math:`\beta_0`. (default: :obj:`None`, from the schedule)
    """
    def __init__(self, num_steps: int = 5, noise_scale: float = 0.1, noise_min: float = 1e-4,
                 noise_max: float = 0.02, max_beta: float = 0.999, schedule: str = 'linear-var',
                 prediction_type: str = 'x0', first_beta: Optional[float] = None) -> None:
        super().__init__()
        if num_steps < 1:
            raise ValueError(f'num_steps: must be >= 1, got {num_steps}')
        if schedule not in SCHEDULES:
            raise ValueError(f'schedule: must be one of {list(SCHEDULES)}, got {schedule!r}')
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f'prediction_type: must be one of {list(PREDICTION_TYPES)}, got {prediction_type!r}')
        if not 0 < noise_scale <= 1:
            raise ValueError(f'noise_scale: must be in (0, 1], got {noise_scale}')
        if not 0 <= noise_min <= noise_max < 1:
            raise ValueError(f'noise_min, noise_max: need 0 <= noise_min <= noise_max < 1, got {noise_min}, '
                             f'{noise_max}')
        if not 0 < max_beta < 1:
            raise ValueError(f'max_beta: must be in (0, 1), got {max_beta}')
        if first_beta is not None and not 0 < first_beta < 1:
            raise ValueError(f'first_beta: must be in (0, 1), got {first_beta}')
        self.num_steps, self.noise_scale = num_steps, noise_scale
        self.noise_min, self.noise_max = noise_min, noise_max
        self.max_beta, self.schedule, self.prediction_type = max_beta, schedule, prediction_type
        T = num_steps
        if schedule == 'linear-var':
            frac = torch.arange(T, dtype=torch.float64) / max(T - 1, 1)
            bar = 1.0 - noise_scale * (noise_min + frac * (noise_max - noise_min))
        else:
            u = torch.arange(T + 1, dtype=torch.float64) / T
            f = torch.cos((u + 0.008) / 1.008 * math.pi / 2).pow(2)
            bar = f[1:] / f[0]
        bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), bar[:-1]])
        betas = (1.0 - bar / bar_prev).clamp(max=max_beta)
        betas[0] = min(1.0 - float(bar[0]), max_beta) if first_beta is None else float(first_beta)
        self.first_beta = first_beta
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

    @property
    def timesteps(self) -> Tensor:
        """The reverse process's steps, :math:`T-1, \\ldots, 0` (diffusers' ``scheduler.timesteps``)."""
        return torch.arange(self.num_steps - 1, -1, -1)

    def _check(self, t: Tensor | int, name: str = 'timesteps') -> None:
        if isinstance(t, Tensor):
            if t.numel() == 0:
                return
            if t.is_floating_point():
                raise ValueError(f'{name}: integer steps expected, got {t.dtype}')
            lo, hi = int(t.min()), int(t.max())
        else:
            lo = hi = int(t)
        if lo < 0 or hi >= self.num_steps:
            raise ValueError(f'{name}: steps are 0-based, in 0..{self.num_steps - 1}; got {lo}..{hi}')

    @staticmethod
    def _at(values: Tensor, t: Tensor, x: Tensor) -> Tensor:
        """Gather ``values[t]`` (0-based steps) and broadcast over the trailing dims of :obj:`x`."""
        out = values.to(device=x.device, dtype=x.dtype)[t.long()]
        return out.view(-1, *([1] * (x.dim() - 1)))

    def add_noise(self, original_samples: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor:
        r""":math:`\mathbf{x}_t = \sqrt{\bar{\gamma}_t}\,\mathbf{x}_0 + \sqrt{1 - \bar{\gamma}_t}\,
        \boldsymbol{\varepsilon}` for per-row steps :obj:`timesteps` (0-based, ``[B]``, or one for every
        row)."""
        self._check(timesteps)
        x0 = original_samples
        return self._at(self.alphas_cumprod, timesteps, x0).sqrt() * x0 + \
            self._at(1.0 - self.alphas_cumprod, timesteps, x0).sqrt() * noise

    def snr_weights(self) -> Tensor:
        r"""DiffRec's and DiffMM's reweighting of the :math:`\mathbf{x}_0`-prediction loss by step,
        :math:`w_t = \mathrm{SNR}(t-1) - \mathrm{SNR}(t)` with :math:`\mathrm{SNR}(t) = \bar{\gamma}_t /
        (1 - \bar{\gamma}_t)`, and :math:`w_0 = 1`: ``[T]`` (float64)."""
        snr = self.alphas_cumprod / (1.0 - self.alphas_cumprod)
        w = torch.ones_like(snr)
        w[1:] = snr[:-1] - snr[1:]
        return w

    def posterior_mean(self, x0_pred: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        r""":math:`\tilde{\mu}_t(\mathbf{x}_t, \hat{\mathbf{x}}_0)` for 0-based steps :obj:`t` (``[B]``, or
        one for every row)."""
        self._check(t, 't')
        if t.numel() == 1:  # one step for every row: scalar coefficients, one fused multiply-add
            k = int(t.reshape(()))
            return torch.add(x0_pred * float(self.posterior_mean_coef1[k]), x_t,
                             alpha=float(self.posterior_mean_coef2[k]))
        return self._at(self.posterior_mean_coef1, t, x_t) * x0_pred + \
            self._at(self.posterior_mean_coef2, t, x_t) * x_t

    def x0_from_eps(self, x_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        r""":math:`\hat{\mathbf{x}}_0 = (\mathbf{x}_t - \sqrt{1-\bar{\gamma}_t}\,\hat{\varepsilon}) /
        \sqrt{\bar{\gamma}_t}` for a noise-predicting denoiser (0-based :obj:`t`)."""
        self._check(t, 't')
        return (x_t - self._at(1.0 - self.alphas_cumprod, t, x_t).sqrt() * eps) / \
            self._at(self.alphas_cumprod, t, x_t).sqrt()

    def step(self, model_output: Tensor, timestep: int, sample: Tensor, sampling_noise: bool = False,
             generator: Optional[torch.Generator] = None) -> Tensor:
        r"""One reverse step from :math:`\mathbf{x}_t` (:obj:`sample`, every row at the 0-based step
        :obj:`timestep`) to :math:`\mathbf{x}_{t-1}`: :math:`\tilde{\mu}_t`, plus
        :math:`\sqrt{\tilde{\beta}_t}\,\mathbf{z}` for :math:`t > 0` when :obj:`sampling_noise`.
        :obj:`model_output` is the denoiser's prediction, read as :obj:`prediction_type` says.
        Differentiable in both tensors."""
        self._check(int(timestep), 'timestep')
        t = torch.full((1,), int(timestep), device=sample.device, dtype=torch.long)
        x0_pred = model_output if self.prediction_type == 'x0' else self.x0_from_eps(sample, t, model_output)
        x = self.posterior_mean(x0_pred, sample, t)
        if sampling_noise and timestep > 0:
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + self._at(self.posterior_variance, t, x).sqrt() * z
        return x

    def p_sample_loop(self, denoiser: Callable[[Tensor, Tensor], Tensor], x_t: Tensor,
                      num_steps: Optional[int] = None, sampling_noise: bool = False) -> Tensor:
        r"""The reverse process over the last :obj:`num_steps` steps (default :math:`T`): from
        :obj:`x_t` at step ``num_steps - 1`` down to step 0, one :meth:`step` each. :obj:`denoiser(x, t)`
        is called with :obj:`t` a one-element tensor holding the 0-based step (every row is at that step).
        Differentiable: gradients flow through every step."""
        k = self.num_steps if num_steps is None else int(num_steps)
        if not 1 <= k <= self.num_steps:
            raise ValueError(f'num_steps: must be in 1..{self.num_steps}, got {k}')
        x = x_t
        for step in range(k - 1, -1, -1):
            t = torch.full((1,), step, device=x.device, dtype=torch.long)
            x = self.step(denoiser(x, t), step, x, sampling_noise)
        return x

    def __repr__(self) -> str:
        extra = '' if self.schedule == 'linear-var' else f', schedule={self.schedule!r}'
        extra += '' if self.prediction_type == 'x0' else f', prediction_type={self.prediction_type!r}'
        return (f'{self.__class__.__name__}(num_steps={self.num_steps}, noise_scale={self.noise_scale}, '
                f'noise_min={self.noise_min}, noise_max={self.noise_max}{extra})')
