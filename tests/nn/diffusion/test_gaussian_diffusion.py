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
        got = d.posterior_mean(x0, xt, torch.full((4,), t - 1))  # the paper's step t is 0-based t - 1
        assert torch.allclose(got.double(), mean, atol=1e-5)
        assert d.posterior_variance[t - 1].item() == pytest.approx(1 / prec.item(), rel=1e-4)
    # the first step (0-based 0): the posterior mean is x0 itself
    assert torch.allclose(d.posterior_mean(x0, xt, torch.zeros(4, dtype=torch.long)), x0, atol=1e-6)


def test_add_noise_moments():
    d = GaussianDiffusion(4, 1.0, 0.1, 0.5)
    x0 = torch.full((200000, 1), 2.0)
    t = torch.full((200000,), 2)  # the paper's step 3
    xt = d.add_noise(x0, torch.randn_like(x0), t)
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
    xt = d.add_noise(x0, torch.randn_like(x0), torch.full((7,), 4))
    out = d.p_sample_loop(lambda x, t: x0, xt)  # a perfect x0-predictor
    assert torch.allclose(out, x0, atol=1e-5)
    e = GaussianDiffusion(5, 0.5, 0.01, 0.2, prediction_type='eps')
    eps_pred = lambda x, t: (x - e._at(e.alphas_cumprod, t, x).sqrt() * x0) / e._at(1 - e.alphas_cumprod, t, x).sqrt()
    out = e.p_sample_loop(eps_pred, xt)
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
    t = torch.randint(0, 3, (6,))  # uniform 0-based steps 0..T-1, drawn first
    noise = torch.randn(6, 4)
    ab = gen.diffusion.alphas_cumprod[t].float().view(-1, 1)
    x_t = ab.sqrt() * x0.detach() + (1 - ab).sqrt() * noise
    expect = (gen.denoiser(x_t, t + 1) - x0.detach()).pow(2).mean()  # the denoiser sees step numbers t + 1
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
    for step in range(5):
        assert torch.allclose(d.posterior_mean(x0, xt, torch.tensor([step])),
                              d.posterior_mean(x0, xt, torch.full((6,), step)), atol=1e-15)


def test_steps_are_zero_based_and_checked():
    d = GaussianDiffusion(4, 0.5, 0.01, 0.2)
    x0 = torch.randn(3, 2)
    assert d.timesteps.tolist() == [3, 2, 1, 0]
    noise = torch.randn(3, 2)
    # step 0 is the least noisy: sqrt(alpha_bar_0) x0 + sqrt(1 - alpha_bar_0) eps
    ab0 = d.alphas_cumprod[0].item()
    assert torch.allclose(d.add_noise(x0, noise, torch.zeros(3, dtype=torch.long)),
                          math.sqrt(ab0) * x0 + math.sqrt(1 - ab0) * noise, atol=1e-6)
    for bad in (torch.full((3,), 4), torch.full((3,), -1), torch.tensor([0, 1, 4])):
        with pytest.raises(ValueError, match=r'timesteps: steps are 0-based, in 0\.\.3'):
            d.add_noise(x0, noise, bad)
    with pytest.raises(ValueError, match='integer steps'):
        d.add_noise(x0, noise, torch.zeros(3))
    with pytest.raises(ValueError, match='timestep'):
        d.step(x0, 4, x0)
    with pytest.raises(ValueError, match='num_steps'):
        d.p_sample_loop(lambda x, t: x, x0, num_steps=5)


def test_step_is_the_posterior_and_a_hand_written_loop_equals_p_sample_loop():
    torch.manual_seed(0)
    d = GaussianDiffusion(5, 0.5, 0.01, 0.2)
    x = torch.randn(4, 3)
    w = torch.randn(3, 3)
    denoiser = lambda x, t: torch.tanh(x @ w) * (t.float() + 1)
    t = 3
    # one step: the posterior mean at the denoiser's x0, coefficients from the Gaussian posterior
    x0_hat = denoiser(x, torch.tensor([t]))
    ab, ab_prev, beta = d.alphas_cumprod[t].item(), d.alphas_cumprod[t - 1].item(), d.betas[t].item()
    mean = beta * math.sqrt(ab_prev) / (1 - ab) * x0_hat + (1 - ab_prev) * math.sqrt(1 - beta) / (1 - ab) * x
    assert torch.allclose(d.step(x0_hat, t, x), mean, atol=1e-6)
    # a loop of one's own over the last 3 steps
    y = x
    for s in range(2, -1, -1):
        y = d.step(denoiser(y, torch.tensor([s])), s, y)
    assert torch.allclose(y, d.p_sample_loop(denoiser, x, num_steps=3), atol=1e-6)
    # posterior noise is added except at the last step (0)
    g = torch.Generator().manual_seed(1)
    noisy = d.step(x0_hat, t, x, sampling_noise=True, generator=g)
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(noisy, mean + d.posterior_variance[t].sqrt().float() * z, atol=1e-6)
    assert torch.equal(d.step(x0_hat, 0, x, sampling_noise=True), d.step(x0_hat, 0, x))


def test_cosine_schedule_is_improved_ddpm_eq_17():
    T = 10
    d = GaussianDiffusion(T, schedule='cosine')
    f = lambda u: math.cos((u / T + 0.008) / 1.008 * math.pi / 2) ** 2
    for t in range(T - 1):  # the last beta is clipped at 0.999
        assert d.alphas_cumprod[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-9)
    assert d.betas.max().item() <= 0.999
    assert torch.all(d.alphas_cumprod[1:] < d.alphas_cumprod[:-1])  # ever noisier
    assert 'cosine' in repr(d)
    with pytest.raises(ValueError, match='schedule'):
        GaussianDiffusion(5, schedule='quadratic')
    with pytest.raises(ValueError, match='prediction_type'):
        GaussianDiffusion(5, prediction_type='v')
    with pytest.raises(ValueError, match="prediction_type is 'x0'"):
        DiffusionViewGenerator(4, GaussianDiffusion(3), predict='eps')
