import math

import pytest
import torch

from pyg_diffcl.nn import DenoisingMLP, DiffusionViewGenerator, GaussianDiffusion, timestep_embedding


@pytest.mark.parametrize('T,s,lo,hi', [(5, 0.1, 1e-4, 0.02), (50, 0.5, 1e-3, 0.1), (1, 0.2, 0.01, 0.02)])
def test_schedule_is_eq_11(T, s, lo, hi):
    d = GaussianDiffusion(T, s, lo, hi)
    for t in range(1, T + 1):
        frac = 0.0 if T == 1 else (t - 1) / (T - 1)
        expect = s * (lo + frac * (hi - lo))  # 1 - gamma_bar_t
        assert 1 - d.alphas_cumprod[t - 1].item() == pytest.approx(expect, rel=1e-5, abs=1e-9)
    # gamma_t = 1 - beta_t and gamma_bar_t = prod gamma
    assert torch.allclose(torch.cumprod(1 - d.betas, 0), d.alphas_cumprod, atol=1e-12)


def test_posterior_mean_is_the_gaussian_posterior():
    d = GaussianDiffusion(6, 0.3, 1e-3, 0.05)
    x0, xt = torch.randn(4, 3), torch.randn(4, 3)
    for t in range(2, 7):
        ab_prev = d.alphas_cumprod[t - 2].double()
        beta = d.betas[t - 1].double()
        # Bayes: q(x_{t-1}|x0) = N(sqrt(ab_prev) x0, 1-ab_prev), q(x_t|x_{t-1}) = N(sqrt(1-beta) x_{t-1}, beta)
        prec = 1 / (1 - ab_prev) + (1 - beta) / beta
        mean = (ab_prev.sqrt() * x0.double() / (1 - ab_prev) + (1 - beta).sqrt() * xt.double() / beta) / prec
        got = d.posterior_mean(x0, xt, torch.full((4,), t))
        assert torch.allclose(got.double(), mean, atol=1e-5)
        assert d.posterior_variance[t - 1].item() == pytest.approx(1 / prec.item(), rel=1e-4)
    # t = 1: the posterior mean is x0 itself
    assert torch.allclose(d.posterior_mean(x0, xt, torch.ones(4, dtype=torch.long)), x0, atol=1e-6)


def test_q_sample_moments():
    d = GaussianDiffusion(4, 1.0, 0.1, 0.5)
    x0 = torch.full((200000, 1), 2.0)
    t = torch.full((200000,), 3)
    xt = d.q_sample(x0, t)
    ab = d.alphas_cumprod[2].item()
    assert xt.mean().item() == pytest.approx(2 * math.sqrt(ab), abs=0.01)
    assert xt.var().item() == pytest.approx(1 - ab, rel=0.02)


def test_timestep_embedding_values():
    emb = timestep_embedding(torch.tensor([0, 3]), 6)
    assert torch.allclose(emb[0], torch.tensor([1.0, 1, 1, 0, 0, 0]))
    freqs = [10000 ** (-k / 3) for k in range(3)]
    assert torch.allclose(emb[1], torch.tensor([math.cos(3 * f) for f in freqs] + [math.sin(3 * f) for f in freqs]))
    assert timestep_embedding(torch.tensor([1]), 5).shape == (1, 5)


def test_reverse_with_oracle_denoiser_recovers_x0():
    d = GaussianDiffusion(5, 0.5, 0.01, 0.2)
    x0 = torch.randn(7, 4)
    xt = d.q_sample(x0, torch.full((7,), 5))
    out = d.p_sample_loop(lambda x, t: x0, xt)  # a perfect x0-predictor
    assert torch.allclose(out, x0, atol=1e-5)
    eps_pred = lambda x, t: (x - d._at(d.alphas_cumprod, t, x).sqrt() * x0) / d._at(1 - d.alphas_cumprod, t, x).sqrt()
    out = d.p_sample_loop(eps_pred, xt, predict='eps')
    assert torch.allclose(out, x0, atol=1e-4)


def test_view_generator_gradients_and_independent_views():
    torch.manual_seed(0)
    gen = DiffusionViewGenerator(8, GaussianDiffusion(3, 0.5, 0.01, 0.1), hidden=(16,), dropout=0.0)
    x0 = torch.randn(10, 8, requires_grad=True)
    v1, v2 = gen(x0), gen(x0)
    assert v1.shape == x0.shape and not torch.allclose(v1, v2)
    (v1 - v2).pow(2).sum().backward()
    assert x0.grad is not None and x0.grad.abs().sum() > 0
    gen_det = DiffusionViewGenerator(8, GaussianDiffusion(3), hidden=(16,), detach_views=True)
    x1 = torch.randn(10, 8, requires_grad=True)
    gen_det(x1).sum().backward()
    assert x1.grad is None


def test_denoiser_loss_is_mse_to_detached_x0():
    gen = DiffusionViewGenerator(4, GaussianDiffusion(3, 0.5, 0.01, 0.1), hidden=(8,), dropout=0.0)
    x0 = torch.randn(6, 4, requires_grad=True)
    torch.manual_seed(5)
    loss = gen.loss(x0)
    torch.manual_seed(5)
    t = torch.randint(1, 4, (6,))  # uniform steps 1..T, drawn first
    noise = torch.randn(6, 4)
    expect = (gen.denoiser(gen.diffusion.q_sample(x0.detach(), t, noise), t) - x0.detach()).pow(2).mean()
    assert torch.allclose(loss, expect)
    loss.backward()
    assert x0.grad is None  # the denoiser's loss does not pull the encoder


def test_errors_and_reprs():
    with pytest.raises(ValueError):
        GaussianDiffusion(0)
    with pytest.raises(ValueError):
        GaussianDiffusion(5, noise_min=0.5, noise_max=0.1)
    with pytest.raises(ValueError, match='view_steps'):
        DiffusionViewGenerator(4, GaussianDiffusion(3), view_steps=4)
    assert repr(DenoisingMLP(8)) == 'DenoisingMLP(8, hidden=[256], time_dim=10, dropout=0.5)'


def test_pair_is_two_independent_views():
    gen = DiffusionViewGenerator(4, GaussianDiffusion(2, 0.5, 0.01, 0.1), hidden=(8,), dropout=0.0)
    x0 = torch.randn(5, 4)
    torch.manual_seed(3)
    v1, v2 = gen.pair(x0)
    torch.manual_seed(3)
    both = gen(torch.cat([x0, x0]))  # the same noise draw over the stacked rows
    assert torch.allclose(v1, both[:5]) and torch.allclose(v2, both[5:])
    assert not torch.allclose(v1, v2)


def test_denoiser_is_the_mlp_on_the_concatenation_for_shared_and_per_row_steps():
    """The split first layer and the once-per-step embedding against the textbook form, computed here from
    the layer weights: MLP([x || W_t emb(t) + b_t])."""
    torch.manual_seed(3)
    f = DenoisingMLP(6, hidden=[5], time_dim=4, dropout=0.0).double()
    x = torch.randn(8, 6, dtype=torch.double)

    def reference(t):
        temb = f.time_lin(timestep_embedding(t, 4).double())
        h = torch.tanh(f.layers[0](torch.cat([x, temb], dim=-1)))
        return f.layers[1](h)
    steps = torch.tensor([1, 3, 3, 2, 1, 5, 5, 2])
    assert torch.allclose(f(x, steps), reference(steps), atol=1e-12)
    shared = f(x, torch.tensor([4]))
    assert shared.shape == (8, 6)
    assert torch.allclose(shared, reference(torch.full((8,), 4)), atol=1e-12)


def test_posterior_mean_shared_step_equals_per_row_step():
    d = GaussianDiffusion(5, 0.1, 1e-4, 0.02)
    x0, xt = torch.randn(6, 3, dtype=torch.double), torch.randn(6, 3, dtype=torch.double)
    for step in range(1, 6):
        assert torch.allclose(d.posterior_mean(x0, xt, torch.tensor([step])),
                              d.posterior_mean(x0, xt, torch.full((6,), step)), atol=1e-15)
