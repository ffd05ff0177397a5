import pytest
import torch
import torch.nn.functional as F

from pyg_diffcl.datasets.sampler import BPRBatch
from pyg_diffcl.models import BM3, BM3Config
from pyg_diffcl.nn import BootstrapLatent

from tests.helpers import run_cli, write_dataset
from tests.ops.test_adj import dense_norm, random_bipartite


def make(**kw):
    torch.manual_seed(0)
    ei, R = random_bipartite(users=9, items=7, p=0.4, seed=5)
    feats = {'img': torch.randn(7, 5), 'txt': torch.randn(7, 3)}
    return BM3(9, 7, feats, BM3Config(**{'embedding_dim': 4, **kw})), ei, R, feats


def dense_encode(model, R, layers):
    N = dense_norm(R)
    A = torch.zeros(16, 16)
    A[:9, 9:], A[9:, :9] = N, N.t()
    x = torch.cat([model.user_emb.weight, model.item_emb.weight])
    out, h = x.clone(), x
    for _ in range(layers):
        h = A @ h
        out = out + h
    out = out / (layers + 1)
    return out[:9], out[9:] + model.item_emb.weight


def test_scores_are_predicted_lightgcn_embeddings():
    model, ei, R, _ = make(num_layers=2)
    u, i = dense_encode(model, R, 2)
    pu, pi = model.get_embedding(ei)
    W, b = model.bootstrap.predictor.weight, model.bootstrap.predictor.bias
    assert torch.allclose(pu, u @ W.t() + b, atol=1e-5) and torch.allclose(pi, i @ W.t() + b, atol=1e-5)


def test_loss_hand_computed_without_target_dropout():
    model, ei, R, feats = make(num_layers=1, dropout=0.0, reg_weight=0.2, cl_weight=1.5)
    batch = BPRBatch(torch.tensor([0, 2, 8]), torch.tensor([1, 3, 6]), torch.tensor([0, 0, 0]))
    u, i = dense_encode(model, R, 1)
    pred = lambda x: model.bootstrap.predictor(x)
    cos = lambda a, b: 1 - F.cosine_similarity(a, b, dim=-1).mean()
    users, items = batch.user, batch.pos_item
    expect = cos(pred(u)[users], i[items]) + cos(pred(i)[items], u[users])
    mm = 0.0
    for m in ('img', 'txt'):
        f = feats[m] @ model.features.proj[m].weight.t() + model.features.proj[m].bias
        mm = mm + cos(pred(f)[items], i[items]) + cos(pred(f)[items], f[items])
    expect = expect + 1.5 * mm + 0.2 * (u.norm() + i.norm()) / 7
    assert torch.allclose(model.loss(ei, batch), expect, atol=1e-5)


def test_bootstrap_targets_are_detached_dropout_views():
    b = BootstrapLatent(6, dropout=0.5)
    h = torch.randn(2000, 6, requires_grad=True)
    t = b.target(h)
    assert not t.requires_grad
    kept = t != 0
    assert abs(kept.float().mean().item() - 0.5) < 0.02
    assert torch.allclose(t[kept], 2 * h.detach()[kept])  # inverted dropout: scaled by 1 / (1 - p)
    target = torch.randn(4, 6, requires_grad=True)
    b(b.predict(h[:4]), target).backward()
    assert target.grad is None and h.grad is not None
    b.eval()
    assert (b.target(h) == 0).any()  # the targets' dropout applies in eval mode too (the official code's)
    with pytest.raises(ValueError, match='dropout'):
        BootstrapLatent(4, dropout=1.0)


def test_trains_from_the_cli(tmp_path):
    data = write_dataset(tmp_path / 'mm', modalities={'v': 6, 't': 5})
    res = run_cli('train', '--model', 'bm3', '--data', str(data), '--epochs', '2', '--set', 'train.batch_size=64',
                  '--out', str(tmp_path / 'r'), '--quiet')
    assert res.returncode == 0, res.stderr
    with pytest.raises(ValueError, match='^features: BM3 needs'):
        BM3(3, 4, {})
