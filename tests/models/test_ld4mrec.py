import pytest
import torch

from pyg_diffcl.datasets.sampler import UserBatch
from pyg_diffcl.models import LD4MRec, LD4MRecConfig
from pyg_diffcl.nn import timestep_embedding
from pyg_diffcl.ops import item_knn_graph

from tests.ops.test_adj import random_bipartite

SMALL = dict(fc_dim=16, hidden_dim=8, time_dim=4, svd_rank=3, dropout=0.0, item_graph_k=3)


def make(seed=0, modalities=(('image', 6), ('audio', 4)), **overrides):
    torch.manual_seed(seed)
    ei, R = random_bipartite(users=12, items=10, p=0.3, seed=seed)
    feats = {m: torch.randn(10, dim) for m, dim in modalities}
    cfg = LD4MRecConfig(**{**SMALL, **overrides})
    return LD4MRec(12, 10, ei, feats, config=cfg), R


def test_behaviour_rows_are_the_dense_training_rows():
    model, R = make()
    users = torch.tensor([3, 0, 11, 3])
    assert torch.equal(model.behaviours(users), R[users])


def test_conditions_match_independent_computations():
    model, R = make()
    ei = R.nonzero().t()
    # Preference signals: the light GCN of Eq. 16 over the 1-layer item graph, then column-standardised.
    torch.manual_seed(0)
    ei2, R2 = random_bipartite(users=12, items=10, p=0.3, seed=0)
    feats = {m: torch.randn(10, dim) for m, dim in (('image', 6), ('audio', 4))}
    assert torch.equal(R2, R)
    Rn = R / (R.sum(1).clamp(min=1).sqrt().view(-1, 1) * R.sum(0).clamp(min=1).sqrt().view(1, -1))
    for m in ('image', 'audio'):
        f = torch.nn.functional.normalize(feats[m], dim=1)  # feature_norm 'l2'
        sei, sw = item_knn_graph(feats[m], 3)
        S = torch.zeros(10, 10)
        S[sei[0], sei[1]] = sw
        p = Rn @ S @ f
        p = (p - p.mean(0)) / p.std(0)  # pref_norm 'standardize'
        assert torch.allclose(getattr(model, f'pref_{m}'), p, atol=1e-4)
    assert model.collab.shape == (12, 6)
    # Collaborative signals: first half spans the top left singular subspace of R.
    U = torch.linalg.svd(R)[0][:, :3]
    u = model.collab[:, :3] / model.collab[:, :3].norm(dim=0, keepdim=True)
    assert torch.allclose(u @ u.t(), U @ U.t(), atol=1e-3)


def test_forward_free_inference_is_one_cnet_call_at_the_least_noisy_step_embedding():
    model, R = make()
    model.eval()
    with torch.no_grad():
        model.initial_step.weight.normal_()
    users = torch.tensor([1, 4, 7])
    collab, prefs = model.conditions(users)
    # emb(0) + e_u: the embedding training uses for step 0 (the paper's step 1), plus the user's initial step.
    z_off = model.initial_step.weight[users]
    expect = model.cnet(R[users], torch.zeros(3), collab, prefs, z_off)
    assert torch.allclose(model.generate(users), expect, atol=1e-6)
    assert torch.allclose(model.cnet.step_embedding(torch.zeros(3), z_off),
                          model.cnet.time_lin(timestep_embedding(torch.zeros(3), 4) + z_off))
    step, _ = model.step_inputs(users, torch.tensor([0, 1, 4]))
    assert step.tolist() == [0.0, 1.0, 4.0]  # 0-based steps embedded as they are, as in DiffRec


def test_common_inference_corrupts_then_denoises_hand_worked():
    model, R = make(diffusion_steps=3, noise_scale=0.5, noise_min=0.1, noise_max=0.5)
    model.eval()
    with torch.no_grad():
        model.initial_step.weight.normal_()
    users = torch.tensor([0, 5])
    d = model.diffusion
    calls = []
    orig = model.cnet.forward
    model.cnet.forward = lambda *a, **k: calls.append(1) or orig(*a, **k)
    model.generate(users, 'forward_free')
    assert len(calls) == 1
    calls.clear()
    out = model.generate(users, 'common', steps=2, seed=7)
    assert len(calls) == 2
    # Hand-worked: x_2 = sqrt(a2) x0 + sqrt(1 - a2) eps (eps per user from (seed, user)); two reverse steps,
    # each x_{t-1} = c1_t f(x_t, emb(t - 1) + e_u) + c2_t x_t.
    eps = torch.stack([torch.randn(10, generator=torch.Generator().manual_seed(7 * 1_000_003 + u))
                       for u in (0, 5)])
    a = d.alphas_cumprod.float()
    c1, c2 = d.posterior_mean_coef1.float(), d.posterior_mean_coef2.float()
    cond = model.conditions(users)
    off = model.initial_step(users)
    x = a[1].sqrt() * R[users] + (1 - a[1]).sqrt() * eps
    for t in (2, 1):
        f = orig(x, torch.full((2,), float(t - 1)), *cond, off)
        x = c1[t - 1] * f + c2[t - 1] * x
    assert torch.allclose(out, x, atol=1e-5)
    calls.clear()
    model.generate(users, 'common')  # T' = T by default
    assert len(calls) == 3
    # A user's noise, hence its scores, do not depend on the block it is evaluated in.
    both = model.generate(torch.tensor([0, 5]), 'common', seed=1)
    assert torch.allclose(model.generate(torch.tensor([5]), 'common', seed=1)[0], both[1], atol=1e-6)


def test_loss_is_the_importance_weighted_soft_reconstruction():
    model, R = make(diffusion_steps=3, soft_prob=0.0, noise_scale=0.5, noise_min=0.1, noise_max=0.5)
    s = model.step_sampler
    for _ in range(s.history_size):
        s.update(torch.tensor([0, 1, 2, 2]), torch.tensor([1.0, 4.0, 8.0, 10.0]))
    assert s.ready
    p = s.probabilities().clone()
    users = torch.arange(12)
    torch.manual_seed(3)
    loss = model.loss(None, UserBatch(users))
    # Same random draws, in the same order: the steps, then the forward noise.
    torch.manual_seed(3)
    t = torch.multinomial(p.float(), 12, replacement=True)  # 0-based steps
    noise = torch.randn(12, 10)
    a = model.diffusion.alphas_cumprod.float()[t].view(-1, 1)
    x_t = a.sqrt() * R + (1 - a).sqrt() * noise
    per = ((model.denoise(x_t, users, t) - R) ** 2).mean(dim=1)
    w = 1.0 / (3 * p[t].float())
    assert torch.allclose(loss, (w * per).mean(), rtol=1e-5)


def test_checkpoint_reloads_into_a_fresh_model_and_initial_steps_learn():
    model, _ = make(seed=0)
    model.eval()
    fresh, _ = make(seed=0)
    torch.manual_seed(123)  # a different SVD draw and initialisation in the fresh build
    fresh = LD4MRec(12, 10, random_bipartite(users=12, items=10, p=0.3, seed=0)[0],
                    {'image': torch.randn(10, 6), 'audio': torch.randn(10, 4)}, config=model.config)
    fresh.load_state_dict(model.state_dict())
    fresh.eval()
    users = torch.arange(12)
    for mode in ('forward_free', 'common'):
        assert torch.allclose(fresh.generate(users, mode), model.generate(users, mode), atol=1e-6)
    for mode in ('embedding', 'scalar'):
        m, _ = make(initial_step=mode)
        m.loss(None, UserBatch(torch.arange(12))).backward()
        assert m.initial_step.weight.grad is not None and m.initial_step.weight.grad.abs().sum() > 0


def test_training_step_decreases_the_loss_and_learns_the_rows():
    model, R = make(step_sampling='uniform', soft_prob=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    users = UserBatch(torch.arange(12))
    torch.manual_seed(0)
    first = float(model.loss(None, users).detach())
    for _ in range(150):
        opt.zero_grad()
        model.loss(None, users).backward()
        opt.step()
    model.eval()
    assert float(model.loss(None, users).detach()) < first / 5
    # The denoiser has learned to reproduce the observed rows: clicked items score higher.
    scores = model.generate(torch.arange(12))
    assert scores[R == 1].mean() > scores[R == 0].mean() + 0.5


@pytest.mark.parametrize('mode', ['embedding', 'scalar', 'none'])
def test_initial_step_modes(mode):
    model, _ = make(initial_step=mode)
    t = torch.tensor([0.0, 2.0])
    step, off = model.step_inputs(torch.tensor([0, 1]), t)
    base = torch.tensor([0.0, 2.0])  # forward-free (0) and 0-based step 2, embedded as they are
    if mode == 'embedding':
        assert torch.equal(step, base) and off.shape == (2, 4)
    elif mode == 'scalar':
        assert off is None and torch.all(step > base) and torch.all(step - base < 0.05)
    else:
        assert off is None and torch.equal(step, base)


def test_ablations_and_errors():
    model, _ = make(use_pg=False)
    assert model.modalities == [] and len(model.cnet.pg) == 0
    model, _ = make(use_cg=False)
    assert model.collab.shape == (12, 0)
    model.generate(torch.arange(3))
    with pytest.raises(ValueError, match='need item features'):
        make(modalities=())
    make(modalities=(), use_pg=False)  # ID-only data works without PG blocks
    with pytest.raises(ValueError, match='inference_steps'):
        make(inference_steps=9)
    with pytest.raises(ValueError, match='initial_step'):
        make(initial_step='learned')
    with pytest.warns(UserWarning, match='svd_rank 11 exceeds'):
        model, _ = make(svd_rank=11)
    assert model.collab.shape == (12, 20)  # rank min(users, items) = 10
    with pytest.raises(ValueError, match='svd_rank: must be positive'):
        make(svd_rank=0)
    with pytest.raises(ValueError, match='svd_niter: must be non-negative'):
        make(svd_niter=-1)
    with pytest.raises(ValueError, match='item_graph_k: must be positive'):
        make(item_graph_k=0)


def test_condition_dropout_zeroes_conditions_in_training_only():
    model, R = make(cond_dropout=0.999999)
    users = torch.arange(4)
    t = torch.tensor([0, 1, 2, 0])
    collab, prefs = model.conditions(users)
    step, off = model.step_inputs(users, t)
    x = R[users]
    dropped = model.cnet(x, step, torch.zeros_like(collab), [torch.zeros_like(p) for p in prefs], off)
    assert torch.allclose(model.denoise(x, users, t), dropped, atol=1e-6)
    model.eval()
    assert torch.allclose(model.denoise(x, users, t), model.cnet(x, step, collab, prefs, off), atol=1e-6)
    with pytest.raises(ValueError, match='cond_dropout'):
        make(cond_dropout=1.0)


def test_conditions_from_the_input_row_are_the_same_linear_maps():
    # cond_source='input': every condition is a fixed linear map of the behaviour row (plus the preference
    # standardisation fitted on the observed rows). On the observed rows it gives the stored signals; on any
    # other row it is the dense formula, computed here from R, the SVD factors and the item graph directly.
    model, R = make(cond_source='input', svd_niter=30)
    ref, _ = make(svd_niter=30)  # the default: signals of the observed rows, computed the usual way
    users = torch.arange(12)
    collab, prefs = model.conditions(users, R)
    assert torch.allclose(collab, model.collab, atol=1e-5)
    for m, p in zip(model.modalities, prefs):
        assert torch.allclose(p, getattr(model, f'pref_{m}'), atol=1e-5)
        assert torch.allclose(p, getattr(ref, f'pref_{m}'), atol=1e-4)  # Eq. 16's light GCN, standardised
    # With a converged SVD, x V S^-1 is U (up to the column signs), so the two readings agree.
    sign = torch.sign((model.collab * ref.collab).sum(0))
    assert torch.allclose(model.collab * sign, ref.collab, atol=1e-4)

    # A corrupted row, by hand: [x V S^-1 / n1 || d_u^-1/2 x D_i^-1/2 V / n2].
    U_, S_, Vt = torch.linalg.svd(R)
    du, di = R.sum(1), R.sum(0)
    dui = torch.where(du > 0, du.rsqrt(), torch.zeros_like(du))
    dii = torch.where(di > 0, di.rsqrt(), torch.zeros_like(di))
    V, s = Vt[:3].t(), S_[:3]
    n1 = (R @ V / s).norm(dim=1).mean()
    n2 = (dui[:, None] * (R * dii) @ V).norm(dim=1).mean()
    g = torch.Generator().manual_seed(1)
    x = R * (torch.rand(R.shape, generator=g) > 0.5) * 2.0
    c, _ = model.conditions(users, x)
    want = torch.cat([x @ V / s / n1, dui[:, None] * (x * dii) @ V / n2], dim=1)
    sign = torch.sign((c * want).sum(0))
    assert torch.allclose(c * sign, want, atol=1e-4)


def test_input_conditions_see_the_same_dropped_items_as_the_cnet():
    model, R = make(cond_source='input', dropout=0.5)
    assert model.cnet.dropout_p == 0.0  # the model draws the mask itself
    seen = {}

    def spy(x, step, collab, prefs, offset):
        seen.update(x=x, collab=collab, prefs=prefs)
        return torch.zeros_like(x)
    model.cnet.forward = spy
    model.train()
    users = torch.arange(12)
    model.loss(None, UserBatch(users))
    keep = (seen['x'] != 0).float()  # x_t is noisy everywhere, so its zeros are exactly the dropped entries
    assert 0.3 < keep.mean() < 0.7
    collab, prefs = model.conditions(users, R * keep * 2.0)
    assert torch.allclose(seen['collab'], collab, atol=1e-6)
    for got, want in zip(seen['prefs'], prefs):
        assert torch.allclose(got, want, atol=1e-6)
    with pytest.raises(ValueError, match='cond_source'):
        make(cond_source='noisy')


@pytest.mark.parametrize('inference', ['forward_free', 'common'])
def test_get_embedding_inner_products_are_the_generated_scores(inference):
    """LD4MRec honours the Recommender contract: its (user, item) embeddings score every item as generate
    does, and the trainer's default scorer path (score over get_embedding) gives the same ranking."""
    model, _ = make(seed=2, inference=inference)
    with torch.no_grad():
        model.initial_step.weight.normal_()
    model.eval()
    with torch.no_grad():
        user, item = model.get_embedding(None, block_size=5)  # blocks of users: 5 + 5 + 2
        assert user.shape == (12, SMALL['fc_dim'] + 1) and item.shape == (10, SMALL['fc_dim'] + 1)
        users = torch.tensor([0, 3, 7, 11])
        ref = model.generate(users)
        assert torch.allclose(model.score((user, item), users), ref, atol=1e-5)
