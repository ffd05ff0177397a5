import numpy as np
import torch

from pyg_diffcl.datasets import MMRecDataset
from pyg_diffcl.ops import Adjacency, item_knn_graph

from tests.helpers import write_dataset


def dense_reference(x, k, loop):
    """Dense cosine, per-row sort by (-similarity, index), binarise, D^-1/2 S D^-1/2 with row sums."""
    n = x.size(0)
    xn = x.double() / x.double().norm(dim=1, keepdim=True)
    sim = xn @ xn.t()
    S = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        cand = [j for j in range(n) if loop or j != i]
        cand.sort(key=lambda j: (-round(float(sim[i, j]), 9), j))
        S[i, cand[:k]] = 1.0
    d = S.sum(1)
    return d.pow(-0.5).view(-1, 1) * S * d.pow(-0.5).view(1, -1)


def test_matches_dense_reference():
    torch.manual_seed(0)
    x = torch.randn(30, 6)
    for loop in (True, False):
        ei, w = item_knn_graph(x, 4, loop=loop)
        got = Adjacency(ei, w, (30, 30), backend='index_add').to_dense().double()
        assert torch.allclose(got, dense_reference(x, 4, loop), atol=1e-6)
    ei, w = item_knn_graph(x, 4)
    assert bool((ei[0] == ei[1]).sum() == 30)  # the diagonal is in every row's top-K
    assert torch.allclose(w, torch.full_like(w, 0.25))


def test_dataset_caches_and_never_serves_stale(tmp_path):
    root = write_dataset(tmp_path / 'd', num_items=20, modalities={'a': 5})
    cache = str(tmp_path / 'c')
    ds = MMRecDataset(root, root=cache)
    e1, w1 = ds.item_graph('a', k=3)
    assert list((tmp_path / 'c').rglob('item_knn_v*_a_k3_*.pt'))
    e1b, _ = MMRecDataset(root, root=cache).item_graph('a', k=3)
    assert torch.equal(e1, e1b)
    x = np.load(root / 'a_feat.npy').astype(np.float32)
    rng = np.random.default_rng(9)
    np.save(root / 'a_feat.npy', rng.normal(size=x.shape).astype(np.float32))
    e2, _ = MMRecDataset(root, root=cache).item_graph('a', k=3)
    expect, _ = item_knn_graph(torch.from_numpy(np.load(root / 'a_feat.npy')), 3)
    assert torch.equal(e2, expect) and not torch.equal(e1, e2)
