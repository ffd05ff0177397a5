"""Every model that reads item features takes any number of modalities, with any names and widths."""
import pytest
import torch

from pyg_diffcl.datasets import BPRSampler
from pyg_diffcl.models import BM3, FREEDOM, MENTOR, VBPR, BM3Config, DiffMM, DiffMMConfig, FREEDOMConfig, \
    MENTORConfig, VBPRConfig

from tests.ops.test_adj import random_bipartite

U, I = 24, 18


def build(name, feats, ei):
    if name == 'vbpr':
        return VBPR(U, I, feats, VBPRConfig(embedding_dim=8))
    if name == 'freedom':
        return FREEDOM(U, I, ei, feats, config=FREEDOMConfig(embedding_dim=8, item_graph_k=3))
    if name == 'bm3':
        return BM3(U, I, feats, BM3Config(embedding_dim=8))
    if name == 'mentor':
        return MENTOR(U, I, feats, config=MENTORConfig(embedding_dim=8, item_graph_k=3, mlp_hidden=16))
    return DiffMM(U, I, ei, feats, DiffMMConfig(embedding_dim=8, denoiser_hidden=[16], diff_batch_size=8))


@pytest.mark.parametrize('widths', [{'only': 7}, {'photo-main': 5, 'Title Text': 11, 'z': 2}],
                         ids=['one modality', 'three modalities'])
@pytest.mark.parametrize('name', ['vbpr', 'freedom', 'bm3', 'mentor', 'diffmm'])
def test_feature_models_train_on_any_modalities(name, widths):
    torch.manual_seed(0)
    ei, _ = random_bipartite(users=U, items=I, p=0.3, seed=2)
    feats = {m: torch.randn(I, w) for m, w in widths.items()}
    model = build(name, feats, ei)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sampler = BPRSampler(ei, I, batch_size=32, seed=0)
    losses = []
    for epoch in range(4):
        model.pre_epoch(epoch)
        for batch in sampler.epoch(epoch):
            opt.zero_grad()
            loss = model.loss(ei, batch)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses)))
    model.eval()
    with torch.no_grad():
        u, i = model.get_embedding(ei)
    assert u.shape[0] == U and i.shape[0] == I and u.shape[1] == i.shape[1]
    assert torch.isfinite(u).all() and torch.isfinite(i).all()
