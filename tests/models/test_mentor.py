import math

import pytest
import torch
import torch.nn.functional as F

from pyg_diffcl.datasets.sampler import BPRBatch
from pyg_diffcl.models import MENTOR, MENTORConfig

from tests.helpers import run_cli, write_dataset
from tests.ops.test_adj import dense_norm, random_bipartite

U, I = 9, 7


def item_graphs():
    """Two hand-made item graphs (edge_index, weight) and their dense matrices."""
    g = torch.Generator().manual_seed(1)
    out, dense = {}, {}
    for m in ('img', 'txt'):
        S = (torch.rand(I, I, generator=g) < 0.4).float() * torch.rand(I, I, generator=g)
        out[m] = (S.nonzero().t(), S[S != 0])
        dense[m] = S
    return out, dense


def make(**kw):
    torch.manual_seed(0)
    ei, R = random_bipartite(users=U, items=I, p=0.4, seed=5)
    feats = {'img': torch.randn(I, 5), 'txt': torch.randn(I, 3)}
    graphs, S = item_graphs()
    cfg = MENTORConfig(**{'embedding_dim': 4, 'modality_weights': [0.25, 0.75], **kw})
    return MENTOR(U, I, feats, graphs, cfg), ei, R, feats, 0.25 * S['img'] + 0.75 * S['txt']


def dense_branch(enc, items, R, layers, noise=None):
    """normalize([P; MLP(F)]) propagated by sum_l A^l, the MLP written out from its two linear maps."""
    lin1, lin2 = enc.mlp.lins
    h = F.leaky_relu(items @ lin1.weight.t() + lin1.bias) @ lin2.weight.t() + lin2.bias
    x = F.normalize(torch.cat([enc.preference, h]), dim=1)
    A = torch.zeros(U + I, U + I)
    A[:U, U:], A[U:, :U] = dense_norm(R), dense_norm(R).t()
    out, cur = x.clone(), x
    for _ in range(layers):
        cur = A @ cur
        out = out + cur
    return out[:U], out[U:]


def dense_model(model, R, feats, S, layers, ii_layers=1):
    branches = {}
    for b, enc in model.encoders.items():
        u, i = dense_branch(enc, model.id_item if b == 'id' else feats[b], R, layers)
        h = i
        for _ in range(ii_layers):
            h = S @ h
        branches[b] = (u, i + h)
    w = model.user_weights
    user = torch.cat([w[:, 0:1] * branches['img'][0], w[:, 1:2] * branches['txt'][0]], dim=1)
    item = torch.cat([branches['img'][1], branches['txt'][1]], dim=1)
    return branches, user, item


def test_scores_are_fused_branches_on_the_frozen_item_graph():
    model, ei, R, feats, S = make(num_layers=2, item_graph_layers=2)
    _, user, item = dense_model(model, R, feats, S, 2, ii_layers=2)
    u, i = model.get_embedding(ei)
    assert u.shape == (U, 8) and i.shape == (I, 8)
    assert torch.allclose(u, user, atol=1e-5) and torch.allclose(i, item, atol=1e-5)
    # softmax-initialised fusion weights: rows on the simplex
    assert torch.allclose(model.user_weights.sum(1), torch.ones(U)) and bool((model.user_weights > 0).all())


def test_loss_hand_computed_without_views():
    model, ei, R, feats, S = make(num_layers=1, cl_weight=0.0, reg_weight=0.3, align_weight=0.7)
    batch = BPRBatch(torch.tensor([0, 2, 8, 2]), torch.tensor([1, 3, 6, 0]), torch.tensor([0, 4, 2, 5]))
    br, user, item = dense_model(model, R, feats, S, 1)
    u = user[batch.user]
    bpr = -torch.log2(torch.sigmoid((u * item[batch.pos_item]).sum(1) - (u * item[batch.neg_item]).sum(1))).mean()
    reg = sum(model.encoders[m].preference[batch.user].pow(2).mean() for m in ('img', 'txt'))
    reg = reg + model.user_weights.pow(2).mean()
    mats = [torch.cat(br['id']), torch.cat([user, item]), torch.cat(br['img']), torch.cat(br['txt'])]
    stats = [(x.mean(), x.var(unbiased=False)) for x in mats]
    align = sum((stats[a][0] - stats[b][0]).abs() + (stats[a][1] - stats[b][1]).abs()
                for a in range(4) for b in range(a + 1, 4))
    expect = bpr + 0.3 * reg + 0.7 * align
    assert torch.allclose(model.loss(ei, batch), expect, atol=1e-5)
    off = dict(reg_weight=0.0, align_weight=0.0, cl_weight=0.0)
    natural, logged = make(bpr_log2=False, **off)[0], make(**off)[0]  # the same seed: the same parameters
    assert natural.loss(ei, batch).item() / math.log(2) == pytest.approx(logged.loss(ei, batch).item(), rel=1e-5)


def dense_info_nce(a, b, tau):
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    s = a @ b.t() / tau
    return (torch.logsumexp(s, dim=1) - s.diagonal()).mean()


def test_noise_free_shared_views_give_infonce_of_the_model_with_itself():
    kw = dict(num_layers=2, reg_weight=0.0, align_weight=0.0, view_encoders='shared', noise_eps=0.0, tau=0.5)
    model, ei, R, feats, S = make(cl_weight=0.0, **kw)
    with_cl, *_ = make(cl_weight=0.4, **kw)
    batch = BPRBatch(torch.tensor([0, 1, 5]), torch.tensor([1, 3, 6]), torch.tensor([0, 4, 2]))
    _, user, item = dense_model(model, R, feats, S, 2)
    cl = dense_info_nce(user, user, 0.5) + dense_info_nce(item, item, 0.5)
    assert torch.allclose(with_cl.loss(ei, batch) - model.loss(ei, batch), 0.4 * cl, atol=1e-5)
    capped, *_ = make(cl_weight=0.4, cl_max_nodes=2, **kw)
    users = torch.unique(batch.user)  # 3 unique users: a sample of 2 enters the contrast
    assert capped._cl_nodes(batch.user).numel() == 2 and set(capped._cl_nodes(batch.user).tolist()) <= set(
        users.tolist())


def test_separate_views_train_their_own_encoders_and_the_fusion_weights_only():
    model, ei, *_ = make(view_encoders='separate')
    (u1, i1), (u2, i2) = model.perturbed_view(ei, 0), model.perturbed_view(ei, 1)
    assert not torch.allclose(u1, u2)  # different encoders and noise
    (model.info_nce(u1, u2) + model.info_nce(i1, i2)).backward()
    assert all(p.grad is None for p in model.encoders.parameters())
    assert model.view_encoders[0]['img'].preference.grad.abs().sum() > 0
    assert model.view_encoders[1]['txt'].mlp.lins[0].weight.grad.abs().sum() > 0
    assert model.user_weights.grad.abs().sum() > 0
    shared, ei, *_ = make(view_encoders='shared')
    assert len(shared.view_encoders) == 0
    (u1, i1) = shared.perturbed_view(ei, 0)
    (u1.sum() + i1.sum()).backward()
    assert shared.encoders['img'].preference.grad.abs().sum() > 0


def test_the_id_item_table_is_frozen_unless_asked():
    batch = BPRBatch(torch.tensor([0, 1]), torch.tensor([1, 3]), torch.tensor([0, 4]))
    for train, grad in ((False, False), (True, True)):
        model, ei, *_ = make(train_id_items=train)
        model.loss(ei, batch).backward()
        assert (model.id_item.grad is not None) == grad
        assert model.encoders['id'].mlp.lins[0].weight.grad.abs().sum() > 0


def test_feature_masking_trains_the_predictor_only_when_weighted():
    batch = BPRBatch(torch.tensor([0, 1]), torch.tensor([1, 3]), torch.tensor([0, 4]))
    off, ei, *_ = make(cl_weight=0.0)
    off.loss(ei, batch).backward()
    assert off.feature_mask.predictor.weight.grad is None
    on, ei, *_ = make(cl_weight=0.0, feature_mask_weight=1.5)
    on.loss(ei, batch).backward()
    assert on.feature_mask.predictor.weight.grad.abs().sum() > 0


def test_bad_config_and_inputs_name_the_field():
    with pytest.raises(ValueError, match='^view_encoders'):
        MENTORConfig(view_encoders='twin').validate()
    with pytest.raises(ValueError, match='^modality_weights'):
        MENTORConfig(modality_weights=[0.5, 0.6]).validate()
    with pytest.raises(ValueError, match='modality_weights has 3 values'):
        make(modality_weights=[0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match='^features: MENTOR needs'):
        MENTOR(3, 4, {})


def test_trains_from_the_cli(tmp_path):
    data = write_dataset(tmp_path / 'mm', modalities={'v': 6, 't': 5})
    res = run_cli('train', '--model', 'mentor', '--data', str(data), '--epochs', '2', '--set',
                  'train.batch_size=64', '--out', str(tmp_path / 'r'), '--quiet')
    assert res.returncode == 0, res.stderr
    plain = write_dataset(tmp_path / 'plain', modalities={})
    res = run_cli('train', '--model', 'mentor', '--data', str(plain), '--out', str(tmp_path / 'r2'))
    assert res.returncode == 2 and 'MENTOR needs item features' in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
