import pytest
import torch
import torch.nn.functional as F

from pyg_diffcl.datasets.sampler import BPRBatch
from pyg_diffcl.models import DiffMM, DiffMMConfig
from pyg_diffcl.models.diffmm import self_loop_adjacency
from pyg_diffcl.nn import GaussianDiffusion, ModalityGraphDiffusion

from tests.helpers import run_cli, write_dataset
from tests.ops.test_adj import random_bipartite

U, I = 9, 7


def dense_self_loop(R):
    n = R.size(0) + R.size(1)
    A = torch.zeros(n, n)
    A[:R.size(0), R.size(0):], A[R.size(0):, :R.size(0)] = R, R.t()
    A = A + torch.eye(n)
    d = A.sum(1).pow(-0.5)
    return d.view(-1, 1) * A * d.view(1, -1)


def to_dense(ei, w, n):
    M = torch.zeros(n, n)
    M.index_put_((ei[0], ei[1]), w, accumulate=True)
    return M


def test_self_loop_adjacency_is_the_normalised_graph_with_self_loops():
    ei, R = random_bipartite(users=U, items=I, p=0.4, seed=1)
    idx, w = self_loop_adjacency(ei[0], ei[1], U, I)
    assert torch.allclose(to_dense(idx, w, U + I), dense_self_loop(R), atol=1e-6)


def test_generation_follows_the_reverse_chain_from_the_clean_rows():
    diffusion = GaussianDiffusion(4, 0.1, 1e-4, 0.02, first_beta=1e-4)
    gen = ModalityGraphDiffusion(5, diffusion, hidden=[6], dropout=0.0)
    P = torch.tensor([[0.1, 0.9, 0.3, 0.2, 0.0], [0.5, 0.1, 0.4, 0.45, 0.2]])
    gen.denoiser.forward = lambda x, t: P  # a denoiser that always predicts P
    x0 = torch.tensor([[1.0, 0, 0, 0, 0], [0, 0, 0, 0, 1.0]])
    x = x0.clone()
    for t in (3, 2, 1, 0):  # posterior mean with the predicted x0, no noise
        x = diffusion.posterior_mean_coef1[t].float() * P + diffusion.posterior_mean_coef2[t].float() * x
    assert torch.equal(gen.generate(x0, k=2), x.topk(2, dim=1).indices)
    assert torch.equal(diffusion.posterior_mean_coef2[0], torch.tensor(0.0, dtype=torch.float64))
    excl = torch.zeros(2, 5, dtype=torch.bool)
    excl[0, 1] = True
    assert gen.generate(x0, k=1, exclude=excl)[0, 0] != 1


def test_diffusion_loss_hand_computed():
    torch.manual_seed(0)
    diffusion = GaussianDiffusion(5, 0.1, 1e-4, 0.02, first_beta=1e-4)
    gen = ModalityGraphDiffusion(6, diffusion, hidden=[4], dropout=0.0, msi_weight=0.3)
    x0 = (torch.rand(3, 6) < 0.4).float()
    feat, emb = torch.randn(6, 2), torch.randn(6, 2)
    torch.manual_seed(7)
    loss = gen.loss(x0, feat, emb)
    torch.manual_seed(7)
    t = torch.randint(0, 5, (3,))
    eps = torch.randn(3, 6)
    bar = torch.cumprod(1 - diffusion.betas, 0)
    x_t = bar[t].sqrt().float().view(-1, 1) * x0 + (1 - bar[t]).sqrt().float().view(-1, 1) * eps
    pred = gen.denoiser(x_t, t)
    snr = bar / (1 - bar)
    w = torch.cat([torch.ones(1, dtype=torch.float64), snr[:-1] - snr[1:]]).float()
    expect = (w[t] * ((x0 - pred) ** 2).mean(1)).mean() + 0.3 * ((pred @ feat - x0 @ emb) ** 2).mean(1).mean()
    assert torch.allclose(loss, expect, atol=1e-5)
    assert w[1] > 1000 * w[0]  # the official reweighting puts most weight on step 1


def make(**kw):
    torch.manual_seed(0)
    ei, R = random_bipartite(users=U, items=I, p=0.4, seed=5)
    feats = {'img': torch.randn(I, 5), 'txt': torch.randn(I, 3)}
    cfg = DiffMMConfig(**{'embedding_dim': 4, 'denoiser_hidden': [8], 'diff_batch_size': 4, **kw})
    return DiffMM(U, I, ei, feats, cfg), ei, R, feats


def set_graphs(model):
    """Hand-made generated graphs (any weights) in place of the diffusion's."""
    g = torch.Generator().manual_seed(3)
    dense = {}
    for m in model.modalities:
        M = (torch.rand(U + I, U + I, generator=g) < 0.2).float() * torch.rand(U + I, U + I, generator=g)
        model._graphs[m] = (M.nonzero().t(), M[M != 0])
        dense[m] = M
    model.__dict__.pop('_generated_adj', None)
    return dense


def dense_forward(model, R, feats, G, layers):
    A = dense_self_loop(R)
    X = torch.cat([model.user_emb.weight, model.item_emb.weight])
    w = torch.softmax(model.modality_logits, 0)
    h0, views = 0, {}
    for k, m in enumerate(('img', 'txt')):
        f = F.normalize(feats[m] @ model.proj[m].weight.t() + model.proj[m].bias, dim=1)
        P = A @ torch.cat([model.user_emb.weight, f])
        Q = A @ torch.cat([P[:U], model.item_emb.weight])
        h0 = h0 + w[k] * (P + Q + 0.2 * G[m] @ X)
        v, h = G[m] @ torch.cat([model.user_emb.weight, f]), None
        out = v.clone()
        h = v
        for _ in range(layers):
            h = A @ h
            out = out + h
        views[m] = out
    z, h = h0.clone(), h0
    for _ in range(layers):
        h = A @ h
        z = z + h
    return z + 0.5 * F.normalize(h0, dim=1), views


def test_embeddings_and_loss_match_a_dense_reference():
    model, ei, R, feats = make(num_layers=2, reg_weight=0.01, cl_weight=0.3, tau=0.5)
    G = set_graphs(model)
    z, views = dense_forward(model, R, feats, G, 2)
    u, i = model.get_embedding(ei)
    assert torch.allclose(torch.cat([u, i]), z, atol=1e-5)
    batch = BPRBatch(torch.tensor([0, 2, 2, 8]), torch.tensor([1, 3, 3, 6]), torch.tensor([0, 4, 2, 5]))
    zu, zi = z[:U], z[U:]
    s = (zu[batch.user] * zi[batch.pos_item]).sum(1) - (zu[batch.user] * zi[batch.neg_item]).sum(1)
    expect = -F.logsigmoid(s).mean() + 0.01 * (model.user_emb.weight.pow(2).sum() + model.item_emb.weight.pow(2).sum())

    def nce(a, b, idx):  # every row of b a negative, repeats of idx kept
        a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
        logits = a[idx] @ b.t() / 0.5
        return (torch.logsumexp(logits, 1) - logits[torch.arange(len(idx)), idx]).mean()
    for m in ('img', 'txt'):
        expect = expect + 0.3 * (nce(zu, views[m][:U], batch.user) + nce(zi, views[m][U:], batch.pos_item))
    assert torch.allclose(model.loss(ei, batch), expect, atol=1e-5)


def test_pre_epoch_trains_only_the_denoisers_and_builds_k_items_per_user():
    model, ei, R, feats = make(rebuild_k=2, keep_rate=1.0)
    rec = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith('graph_diffusion')
           and k != '_extra_state'}
    den = model.graph_diffusion['img'].denoiser.layers[0].weight.clone()
    model.pre_epoch(0)
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in rec.items())
    assert not torch.equal(model.graph_diffusion['img'].denoiser.layers[0].weight, den)
    assert all(p.grad is None for p in model.graph_diffusion.parameters())
    for m in model.modalities:
        idx, _ = model._graphs[m]
        edges = idx[:, (idx[0] < U) & (idx[1] >= U)]  # user -> item entries
        assert torch.equal(torch.bincount(edges[0], minlength=U), torch.full((U,), 2))
    graphs = {m: g[1].clone() for m, g in model._graphs.items()}
    model.pre_epoch(0)  # the same epoch again (a resumed one): nothing retrained or redrawn
    assert all(torch.equal(model._graphs[m][1], graphs[m]) for m in graphs)
    twin, *_ = make(rebuild_k=2, keep_rate=1.0)
    twin.load_state_dict(model.state_dict())
    assert twin._built_epoch == 0 and all(torch.equal(twin._graphs[m][1], graphs[m]) for m in graphs)
    assert twin._diff_opt is not None and len(twin._diff_opt.state) > 0


def test_edge_dropout_keeps_a_share_and_rescales():
    model, *_ = make(keep_rate=0.5, rebuild_k=1)
    tops = model.graph_diffusion['img'].generate(model._rows(torch.arange(U)), 1).view(-1)
    ref_idx, ref_w = self_loop_adjacency(torch.arange(U), tops, U, I)
    full = {(a, b): v for (a, b), v in zip(ref_idx.t().tolist(), ref_w.tolist())}
    torch.manual_seed(1)
    model.rebuild_graphs()
    idx, w = model._graphs['img']
    assert 0 < idx.size(1) < ref_idx.size(1)
    for (a, b), v in zip(idx.t().tolist(), w.tolist()):  # kept entries of the full graph, doubled
        assert v == pytest.approx(2 * full[(a, b)], rel=1e-5)


def test_bad_config_and_inputs_name_the_field():
    with pytest.raises(ValueError, match='^keep_rate'):
        DiffMMConfig(keep_rate=0.0).validate()
    with pytest.raises(ValueError, match='^cl_views'):
        DiffMMConfig(cl_views='all').validate()
    with pytest.raises(ValueError, match='^features: DiffMM needs'):
        DiffMM(3, 4, torch.tensor([[0], [0]]), {})


def test_trains_from_the_cli(tmp_path):
    data = write_dataset(tmp_path / 'mm', modalities={'v': 6, 't': 5})
    res = run_cli('train', '--model', 'diffmm', '--data', str(data), '--epochs', '2', '--set',
                  'train.batch_size=64', '--set', 'model.denoiser_hidden=[16]', '--out', str(tmp_path / 'r'),
                  '--quiet')
    assert res.returncode == 0, res.stderr
    # best.pt keeps what scoring needs (the generated graphs), not the denoisers' optimizer, and loads back
    best = torch.load(tmp_path / 'r' / 'best.pt', weights_only=True)['model']['_extra_state']
    assert best['diff_opt'] is None and best['graphs']
    res = run_cli('evaluate', str(tmp_path / 'r'))
    assert res.returncode == 0 and 'recall@20' in res.stdout, res.stderr
    plain = write_dataset(tmp_path / 'plain', modalities={})
    res = run_cli('train', '--model', 'diffmm', '--data', str(plain), '--out', str(tmp_path / 'r2'))
    assert res.returncode == 2 and 'DiffMM needs item features' in res.stderr
