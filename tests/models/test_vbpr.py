import pytest
import torch

from pyg_diffcl.datasets import BPRSampler
from pyg_diffcl.datasets.sampler import BPRBatch
from pyg_diffcl.models import VBPR, VBPRConfig

from tests.helpers import run_cli, write_dataset
from tests.ops.test_adj import random_bipartite


def make(**kw):
    torch.manual_seed(0)
    feats = {'v': torch.randn(10, 6), 'a': torch.randn(10, 3)}
    return VBPR(12, 10, feats, VBPRConfig(embedding_dim=4, **kw)), feats


def test_scores_are_the_papers_eq_3_on_concatenated_features():
    model, feats = make()
    f = torch.cat([feats['a'], feats['v']], dim=1)  # modalities in sorted order
    user, item = model.get_embedding()
    gamma_u, theta_u = model.user_emb[:, :4], model.user_emb[:, 4:]
    ref = gamma_u @ model.item_emb.t() + theta_u @ (f @ model.proj.weight.t() + model.proj.bias).t()
    assert torch.allclose(user @ item.t(), ref, atol=1e-5)
    assert torch.allclose(model.score((user, item), torch.tensor([3, 5])), ref[[3, 5]], atol=1e-5)


def test_biases_add_the_item_and_visual_bias():
    model, feats = make(biases=True)
    with torch.no_grad():
        model.item_bias.normal_()
        model.visual_bias.weight.normal_()
    f = torch.cat([feats['a'], feats['v']], dim=1)
    plain = model.user_emb @ torch.cat([model.item_emb, model.proj(f)], dim=1).t()
    user, item = model.get_embedding()
    ref = plain + (model.item_bias + f @ model.visual_bias.weight.view(-1)).view(1, -1)
    assert torch.allclose(user @ item.t(), ref, atol=1e-5)


@pytest.mark.parametrize('reg_type', ['norm', 'l2'])
def test_loss_is_bpr_plus_the_chosen_regulariser(reg_type):
    model, _ = make(reg_weight=0.3, reg_type=reg_type)
    batch = BPRBatch(torch.tensor([0, 4, 4]), torch.tensor([1, 2, 9]), torch.tensor([3, 3, 0]))
    user, item = model.get_embedding()
    u, p, n = user[batch.user], item[batch.pos_item], item[batch.neg_item]
    bpr = -torch.nn.functional.logsigmoid((u * p).sum(-1) - (u * n).sum(-1)).mean()
    if reg_type == 'norm':  # MMRec's EmbLoss: sum of Frobenius norms over the batch size
        reg = 0.3 * (u.norm() + p.norm() + n.norm()) / 3
    else:
        reg = 0.3 * (u.pow(2).sum() + p.pow(2).sum() + n.pow(2).sum()) / (2 * 3)
    assert torch.allclose(model.loss(None, batch), bpr + reg, atol=1e-6)


def test_trains_and_validates_its_config():
    model, _ = make(reg_weight=1e-4)
    ei, _ = random_bipartite(users=12, items=10, p=0.4, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for epoch in range(30):
        total = 0.0
        for batch in BPRSampler(ei, 10, 16, seed=0).epoch(epoch):
            opt.zero_grad()
            loss = model.loss(None, batch)
            loss.backward()
            opt.step()
            total += float(loss.detach())
        losses.append(total)
    assert losses[-1] < 0.5 * losses[0]
    with pytest.raises(ValueError, match='^reg_type: must be one of'):
        VBPRConfig(reg_type='l1')
    with pytest.raises(ValueError, match='^features: VBPR needs item features'):
        VBPR(3, 4, {})


def test_cli_trains_vbpr(tmp_path):
    data = write_dataset(tmp_path / 'mm', modalities={'v': 6, 't': 5})
    res = run_cli('train', '--model', 'vbpr', '--data', str(data), '--epochs', '2', '--set', 'train.batch_size=64',
                  '--out', str(tmp_path / 'r'), '--quiet')
    assert res.returncode == 0, res.stderr
    assert (tmp_path / 'r' / 'metrics.json').is_file()
    plain = write_dataset(tmp_path / 'plain', modalities={})
    res = run_cli('train', '--model', 'vbpr', '--data', str(plain), '--out', str(tmp_path / 'r2'))
    assert res.returncode == 2 and 'VBPR needs item features' in res.stderr and 'feat.npy' in res.stderr
