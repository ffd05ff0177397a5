"""CUDA code paths against the CPU and dense references (skipped without a GPU)."""
import pytest
import torch

from pyg_diffcl.nn import LightGCNPropagation
from pyg_diffcl.ops import BipartiteAdj, available_backends, knn_graph

from tests.ops.test_adj import dense_norm, random_bipartite

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize('backend', available_backends())
def test_backends_match_dense_on_cuda(backend):
    ei, R = random_bipartite(users=60, items=40, p=0.1, seed=2)
    N = dense_norm(R).cuda()
    A = BipartiteAdj(ei.cuda(), 60, 40, backend=backend)
    x = torch.randn(40, 16, device='cuda', requires_grad=True)
    y = A.item_to_user.matmul(x)
    assert torch.allclose(y, N @ x.detach(), atol=1e-5)
    g = torch.randn_like(y)
    y.backward(g)
    assert torch.allclose(x.grad, N.t() @ g, atol=1e-5)


@pytest.mark.parametrize('backend', available_backends())
def test_fused_propagation_on_cuda_matches_cpu(backend):
    ei, _ = random_bipartite(users=50, items=30, p=0.15, seed=3)
    xu, xi = torch.randn(50, 8), torch.randn(30, 8)
    outs = []
    for dev in ('cpu', 'cuda'):
        u, i = xu.to(dev).clone().requires_grad_(), xi.to(dev).clone().requires_grad_()
        out_u, out_i = LightGCNPropagation(3)(BipartiteAdj(ei.to(dev), 50, 30, backend=backend), u, i)
        (out_u.sum() + out_i.pow(2).sum()).backward()
        outs.append([t.detach().cpu() for t in (out_u, out_i, u.grad, i.grad)])
    for a, b in zip(*outs):
        assert torch.allclose(a, b, atol=1e-5)


def test_knn_graph_on_cuda_matches_cpu():
    x = torch.randn(300, 32)
    for cosine in (False, True):
        cpu = knn_graph(x, 5, cosine=cosine, use_pyg=False)
        gpu = knn_graph(x.cuda(), 5, cosine=cosine, use_pyg=False).cpu()
        assert torch.equal(cpu, gpu)


def test_ld4mrec_on_cuda_matches_cpu():
    from pyg_diffcl.datasets.sampler import UserBatch
    from pyg_diffcl.models import LD4MRec, LD4MRecConfig
    ei, _ = random_bipartite(users=20, items=15, p=0.3, seed=4)
    feats = {'a': torch.randn(15, 6), 'b': torch.randn(15, 3)}
    cfg = LD4MRecConfig(fc_dim=16, hidden_dim=8, time_dim=4, svd_rank=3, item_graph_k=3, dropout=0.0)
    torch.manual_seed(0)
    cpu = LD4MRec(20, 15, ei, feats, config=cfg)
    gpu = LD4MRec(20, 15, ei, feats, config=cfg)
    gpu.load_state_dict(cpu.state_dict())
    gpu = gpu.cuda()
    loss = gpu.loss(None, UserBatch(torch.arange(20, device='cuda')))
    loss.backward()
    assert torch.isfinite(loss) and gpu.cnet.fc_in.weight.grad is not None
    cpu.eval()
    gpu.eval()
    users = torch.arange(20)
    for mode in ('forward_free', 'common'):
        assert torch.allclose(gpu.generate(users.cuda(), mode).cpu(), cpu.generate(users, mode), atol=1e-4)


def _to_cpu(obj):
    if torch.is_tensor(obj):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    return obj


def train_on_and_compare_with_cpu(tmp_path, device: str) -> None:
    """Every model trains two epochs on :obj:`device`; the trained weights, copied to a CPU model of the same
    configuration, give the same full-ranking scores there (an independent CPU computation)."""
    from pyg_diffcl.datasets.mmrec import EDGE_TYPE
    from pyg_diffcl.models import MODELS
    from pyg_diffcl.training import Trainer
    from pyg_diffcl.training.config import parse_set, resolve_config
    from pyg_diffcl.training.run import prepare
    from tests.helpers import write_dataset
    data = write_dataset(tmp_path / 'mm', num_users=120, num_items=80, per_user=8, modalities={'v': 6, 'a': 4})
    users = torch.arange(120)
    for model in sorted(MODELS):
        cfg = resolve_config(model, [parse_set([f'data.name={data}', 'train.batch_size=64'])])
        dev = prepare(cfg, device=torch.device(device))
        cpu = prepare(cfg, device=torch.device('cpu'))
        edges = dev.dataset[0][EDGE_TYPE].edge_index
        sampler = dev.model.make_sampler(edges, 64, 0)
        trainer = Trainer(dev.model, dev.adj, sampler, dev.evaluator('valid'), epochs=2, show_progress=False,
                          handle_sigint=False)
        result = trainer.fit()
        assert all(torch.isfinite(torch.tensor(r.loss)) for r in result.history), model
        cpu.model.load_state_dict(_to_cpu(dev.model.state_dict()))
        dev.model.eval()
        cpu.model.eval()
        with torch.no_grad():
            got = dev.model.scorer(dev.adj)(users.to(device)).cpu()
            want = cpu.model.scorer(cpu.adj)(users)
        assert got.shape == (120, 80), model
        assert torch.allclose(got, want, atol=1e-4, rtol=1e-4), (model, (got - want).abs().max())


def test_every_model_trains_on_cuda_and_scores_as_on_cpu(tmp_path):
    train_on_and_compare_with_cpu(tmp_path, 'cuda')
