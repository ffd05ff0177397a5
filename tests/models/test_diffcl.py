import itertools

import pytest
import torch
import torch.nn.functional as F

from pyg_diffcl.datasets.sampler import BPRBatch
from pyg_diffcl.models import DiffCL, DiffCLConfig
from pyg_diffcl.ops import prepare_features
from pyg_diffcl.ops import Adjacency, BipartiteAdj, item_knn_graph

from tests.ops.test_adj import dense_norm, random_bipartite


def make(cfg=None, modalities=(('image', 6), ('audio', 4)), seed=0):
    torch.manual_seed(seed)
    ei, R = random_bipartite(users=12, items=10, p=0.3, seed=seed)
    feats = {m: torch.randn(10, dim) for m, dim in modalities}
    model = DiffCL(12, 10, feats, config=cfg or DiffCLConfig(embedding_dim=8, denoiser_hidden=[8]))
    return model, BipartiteAdj(ei, 12, 10), R, feats


def dense_adjacency(R):
    """The symmetric normalised (users + items) x (users + items) adjacency of a 12 x 10 interaction matrix."""
    N = dense_norm(R)
    A = torch.zeros(22, 22)
    A[:12, 12:], A[12:, :12] = N, N.t()
    return A


def batch():
    return BPRBatch(torch.tensor([0, 1, 1, 3]), torch.tensor([0, 2, 5, 1]), torch.tensor([4, 3, 3, 9]))


def test_needs_features():
    with pytest.raises(ValueError, match='DiffCL needs item features'):
        DiffCL(3, 4, {})


def test_encoder_is_lightgcn_sum_with_dense_reference():
    model, adj, R, feats = make()
    model.eval()
    A = dense_adjacency(R)
    e_id, mods = model.encode(adj)
    x0 = torch.cat([F.normalize(model.id_user.weight, dim=-1), F.normalize(model.id_item.weight, dim=-1)])
    ref = x0 + A @ x0 + A @ A @ x0  # Eq. 4: the sum of layers 0..2
    assert torch.allclose(torch.cat(e_id), ref, atol=1e-5)
    f = feats['image']
    z = (f - f.mean(0)) / f.std(0)  # feature_norm='standardize' (default), by hand
    item0 = F.normalize(model.proj['image'](z), dim=-1)
    x0 = torch.cat([F.normalize(model.user_pref['image'].weight, dim=-1), item0])
    assert torch.allclose(torch.cat(mods['image']), x0 + A @ x0 + A @ A @ x0, atol=1e-5)


def test_normalize_modalities_only_and_mean_combination():
    cfg = DiffCLConfig(embedding_dim=8, denoiser_hidden=[8], normalize_input='modalities', layer_combine='mean',
                       feature_norm='none')
    model, adj, R, feats = make(cfg)
    model.eval()
    A = dense_adjacency(R)
    e_id, mods = model.encode(adj)
    x0 = torch.cat([model.id_user.weight, model.id_item.weight])  # the ID branch is not normalised
    assert torch.allclose(torch.cat(e_id), (x0 + A @ x0 + A @ A @ x0) / 3, atol=1e-5)
    x0 = torch.cat([F.normalize(model.user_pref['audio'].weight, dim=-1),
                    F.normalize(model.proj['audio'](feats['audio']), dim=-1)])
    assert torch.allclose(torch.cat(mods['audio']), (x0 + A @ x0 + A @ A @ x0) / 3, atol=1e-5)


def test_modality_branches_have_their_own_depth_and_combination():
    """num_layers=2 with the mean for the ID branch, one summed layer for the modalities (dense reference)."""
    cfg = DiffCLConfig(embedding_dim=8, denoiser_hidden=[8], normalize_input='modalities', layer_combine='mean',
                       modality_layers=1, modality_combine='sum', feature_norm='none')
    model, adj, R, feats = make(cfg)
    model.eval()
    A = dense_adjacency(R)
    e_id, mods = model.encode(adj)
    x0 = torch.cat([model.id_user.weight, model.id_item.weight])
    assert torch.allclose(torch.cat(e_id), (x0 + A @ x0 + A @ A @ x0) / 3, atol=1e-5)
    x0 = torch.cat([F.normalize(model.user_pref['image'].weight, dim=-1),
                    F.normalize(model.proj['image'](feats['image']), dim=-1)])
    assert torch.allclose(torch.cat(mods['image']), x0 + A @ x0, atol=1e-5)
    with pytest.raises(ValueError, match='modality_combine'):
        make(DiffCLConfig(embedding_dim=8, modality_combine='max'))
    with pytest.raises(ValueError, match='fusion'):
        make(DiffCLConfig(embedding_dim=8, fusion='learned'))


def test_prepare_features():
    x = torch.tensor([[1.0, 5.0, 2.0], [3.0, 5.0, 2.0], [5.0, 5.0, 8.0]])
    z = prepare_features(x, 'standardize')
    # column 0: mean 3, sample std 2; column 1 constant -> 0; column 2: mean 4, std sqrt(12)
    assert torch.allclose(z[:, 0], torch.tensor([-1.0, 0.0, 1.0]))
    assert torch.equal(z[:, 1], torch.zeros(3))
    assert torch.allclose(z[:, 2], torch.tensor([-2.0, -2.0, 4.0]) / 12 ** 0.5)
    assert torch.allclose(prepare_features(x, 'l2').norm(dim=1), torch.ones(3))
    assert torch.equal(prepare_features(x, 'none'), x)
    with pytest.raises(ValueError, match='unknown feature normalisation'):
        prepare_features(x, 'zscore')
    with pytest.raises(ValueError, match='feature_norm'):
        make(DiffCLConfig(embedding_dim=4, feature_norm='zscore'))
    with pytest.raises(ValueError, match='normalize_input'):
        make(DiffCLConfig(embedding_dim=4, normalize_input='ids'))


def test_item_graph_enhancement_and_score_are_eq_23_and_30():
    model, adj, R, feats = make()
    model.eval()
    e_id, mods = model.encode(adj)
    enh = model.enhance(mods)
    for m in ('image', 'audio'):
        ei, w = item_knn_graph(feats[m], 10)
        S = Adjacency(ei, w, (10, 10)).to_dense()
        assert torch.allclose(enh[m][1], mods[m][1] + S @ mods[m][1], atol=1e-5)
        assert torch.equal(enh[m][0], mods[m][0])
    mu = torch.sigmoid(model.fusion.mu)  # convex fusion (default): mu = sigmoid(theta)
    fu = mu * enh['audio'][0] + (1 - mu) * enh['image'][0]  # modalities sorted: audio, image
    fi = mu * enh['audio'][1] + (1 - mu) * enh['image'][1]
    u, i = model.get_embedding(adj)
    scores = model.score((u, i), torch.arange(12))
    assert torch.allclose(scores, fu @ fi.t() + e_id[0] @ e_id[1].t(), atol=1e-5)


def test_all_off_loss_is_bpr_plus_reg():
    cfg = DiffCLConfig(embedding_dim=8, use_diffusion=False, use_alignment=False, use_item_graph=False,
                       emb_reg_weight=0.5, feat_dropout=0.0)
    model, adj, R, feats = make(cfg)
    b = batch()
    u, i = model.get_embedding(adj)
    pos, neg = (u[b.user] * i[b.pos_item]).sum(-1), (u[b.user] * i[b.neg_item]).sum(-1)
    reg = sum(model.user_pref[m].weight[b.user].pow(2).mean() for m in ('image', 'audio'))
    expect = -F.logsigmoid(pos - neg).mean() + 0.5 * reg
    assert torch.allclose(model.loss(adj, b), expect, atol=1e-6)


def test_full_loss_trains_every_part():
    model, adj, R, feats = make()
    model.train()
    loss = model.loss(adj, batch())
    loss.backward()
    assert torch.isfinite(loss)
    for name in ('id_user.weight', 'user_pref.image.weight', 'proj.audio.weight', 'fusion.mu',
                 'views.image.denoiser.layers.0.weight'):
        p = dict(model.named_parameters())[name]
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize('flags', list(itertools.product([False, True], repeat=3)))
def test_all_eight_ablation_variants_run(flags):
    cfg = DiffCLConfig(embedding_dim=8, denoiser_hidden=[8], use_diffusion=flags[0], use_alignment=flags[1],
                       use_item_graph=flags[2])
    model, adj, _, _ = make(cfg)
    loss = model.loss(adj, batch())
    loss.backward()
    assert torch.isfinite(loss)


@pytest.mark.parametrize('mods', [(('a', 3),), (('a', 3), ('b', 5), ('c', 2))])
def test_any_number_of_modalities(mods):
    model, adj, _, _ = make(DiffCLConfig(embedding_dim=4, denoiser_hidden=[4]), modalities=mods)
    assert torch.isfinite(model.loss(adj, batch()))
    u, i = model.get_embedding(adj)
    assert u.shape == (12, 8) and i.shape == (10, 8)


def test_cl_max_nodes_limits_the_contrasted_rows(monkeypatch):
    model, adj, _, _ = make(DiffCLConfig(embedding_dim=8, denoiser_hidden=[8], cl_max_nodes=2))
    sizes = []
    real = model.info_nce.forward
    monkeypatch.setattr(model.info_nce, 'forward', lambda a, b: sizes.append(a.size(0)) or real(a, b))
    b = batch()  # 3 unique users, 4 unique positive items
    assert torch.isfinite(model.loss(adj, b))
    assert sizes == [2, 2, 2, 2]  # (users, items) x 2 modalities, each capped at 2
    model.config.cl_max_nodes = None
    sizes.clear()
    model.loss(adj, b)
    assert sizes == [3, 4, 3, 4]


def test_feature_dropout_is_inverted_dropout():
    model, _, _, _ = make(DiffCLConfig(embedding_dim=8, feat_dropout=0.5))
    x = torch.ones(200, 50)
    model.train()
    y = model._dropout(x)
    assert set(y.unique().tolist()) <= {0.0, 2.0}  # dropped, or scaled by 1 / (1 - p)
    assert abs((y == 0).float().mean().item() - 0.5) < 0.03  # 10,000 draws: 5 sigma = 0.025
    model.eval()
    assert torch.equal(model._dropout(x), x)
    with pytest.raises(ValueError, match='feat_dropout'):
        make(DiffCLConfig(embedding_dim=8, feat_dropout=1.0))


def test_modality_users_items_is_the_mean_of_training_items_and_id_is_the_id_embedding():
    cfg = DiffCLConfig(embedding_dim=8, denoiser_hidden=[8], modality_users='items', normalize_input='none',
                       feature_norm='none')
    model, adj, R, feats = make(cfg)
    model.eval()
    assert len(model.user_pref) == 0  # no free user parameters
    item0 = model.proj['audio'](feats['audio'])
    ref = (R @ item0) / R.sum(1, keepdim=True).clamp_min(1)  # users without items: zero rows
    assert torch.allclose(model._modality_user0('audio', adj, item0), ref, atol=1e-5)
    model, adj, _, feats = make(DiffCLConfig(embedding_dim=8, denoiser_hidden=[8], modality_users='id'))
    assert model._modality_user0('audio', adj, feats['audio']) is model.id_user.weight
    with pytest.raises(ValueError, match='modality_users'):
        make(DiffCLConfig(embedding_dim=8, modality_users='shared'))


@pytest.mark.parametrize('change,expect', [
    (dict(cl_max_nodes=0), 'cl_max_nodes: must be positive'),  # nothing contrasted: a NaN loss
    (dict(cl_max_nodes=-1), 'cl_max_nodes: must be positive'),  # randperm[:-1] would drop one node
    (dict(cl_weight=-0.1), 'cl_weight: must be a non-negative number'),
    (dict(align_weight=float('nan')), 'align_weight: must be a non-negative number'),
    (dict(emb_reg_weight=-1.0), 'emb_reg_weight'),
    (dict(diff_weight=float('inf')), 'diff_weight'),
    (dict(denoiser_hidden=[8, -2]), 'denoiser_hidden: every size must be positive'),
    (dict(denoiser_hidden=[0]), 'denoiser_hidden'),
    (dict(item_graph_k=0), 'item_graph_k: must be positive'),
    (dict(item_graph_layers=-1), 'item_graph_layers: must be non-negative'),
])
def test_out_of_range_options_are_refused_by_name(change, expect):
    values = dict(embedding_dim=8, denoiser_hidden=[8])
    values.update(change)
    with pytest.raises(ValueError, match=expect.replace('(', r'\(').replace(')', r'\)')):
        make(DiffCLConfig(**values))


def test_a_modality_name_with_a_dot_is_refused_with_the_file_to_rename(tmp_path):
    """'.' separates nested module names in PyTorch, so a modality 'clip.v2' cannot key the per-modality
    modules and buffers: the model says so naming the argument, and a data set directory names the file to
    rename (not a KeyError from ``register_buffer``)."""
    with pytest.raises(ValueError, match=r"^features: modality name 'clip\.v2'.*'clip_v2'"):
        make(modalities=(('clip.v2', 6),))
    from pyg_diffcl.datasets.io import find_data_files
    from pyg_diffcl.errors import DataError
    from tests.helpers import write_dataset
    data = write_dataset(tmp_path / 'd', modalities={'clip.v2': 3})
    with pytest.raises(DataError, match=r"clip\.v2_feat\.npy: modality name 'clip\.v2'.*clip_v2_feat\.npy"):
        find_data_files(data)


def test_configs_validate_themselves_on_construction_and_in_the_model():
    from pyg_diffcl.models.ld4mrec import LD4MRecConfig
    from pyg_diffcl.models.lightgcn import LightGCNConfig
    with pytest.raises(ValueError, match=r"^tau: must be positive, got 0"):
        DiffCLConfig(tau=0.0)
    with pytest.raises(ValueError, match=r"^view_steps: must be in 1\.\.diffusion_steps=5"):
        DiffCLConfig(view_steps=9)
    with pytest.raises(ValueError, match=r"^inference_steps"):
        LD4MRecConfig(inference_steps=7)
    with pytest.raises(ValueError, match=r"^alpha: needs num_layers \+ 1 = 3 values"):
        LightGCNConfig(num_layers=2, alpha=[1.0])
    cfg = DiffCLConfig(embedding_dim=8, denoiser_hidden=[8])
    cfg.fusion = 'learned'  # changed after construction: the model checks again
    with pytest.raises(ValueError, match=r"^fusion: must be one of"):
        make(cfg)
