import pytest
import torch

from pyg_diffcl.nn import knn_graph


def brute_force(x, k, loop, cosine, batch=None):
    """Dense pairwise similarities, Python sort by (-similarity, index): the reference."""
    n = x.size(0)
    x = x.double()
    if cosine:
        norm = x.norm(dim=1, keepdim=True)
        xn = torch.where(norm > 0, x / norm.clamp_min(1e-300), torch.zeros_like(x))
        sim = xn @ xn.t()
    else:
        sim = -torch.cdist(x, x).pow(2)
    batch = torch.zeros(n, dtype=torch.long) if batch is None else batch
    edges = []
    for i in range(n):
        cand = [j for j in range(n) if batch[j] == batch[i] and (loop or j != i)]
        cand.sort(key=lambda j: (-round(float(sim[i, j]), 9), j))
        edges += [(j, i) for j in cand[:k]]
    return edges


@pytest.mark.parametrize('cosine', [False, True])
@pytest.mark.parametrize('loop', [False, True])
@pytest.mark.parametrize('chunk_size', [None, 1, 7])
def test_matches_brute_force_with_ties(cosine, loop, chunk_size):
    g = torch.Generator().manual_seed(0)
    # Entries in {-1, 0, 1}: many exact ties and duplicate points, and no two parallel vectors of different
    # length, so that cosine ties are exact in float32 too.
    x = torch.randint(-1, 2, (40, 3), generator=g).float()
    x[5] = 0  # a zero vector
    for k in (1, 3, 8):
        got = knn_graph(x, k, loop=loop, cosine=cosine, chunk_size=chunk_size, use_pyg=False)
        assert list(map(tuple, got.t().tolist())) == brute_force(x, k, loop, cosine)


def test_flow_and_batch():
    x = torch.tensor([[0.0], [1.0], [3.0], [10.0], [11.0], [20.0]])
    batch = torch.tensor([0, 0, 0, 1, 1, 1])
    s2t = knn_graph(x, 1, batch=batch, use_pyg=False)
    # nearest within the example: 0->1, 1->0, 2->1 | 3->4, 4->3, 5->4 ; edge (neighbour, centre)
    assert s2t.tolist() == [[1, 0, 1, 4, 3, 4], [0, 1, 2, 3, 4, 5]]
    t2s = knn_graph(x, 1, batch=batch, flow='target_to_source', use_pyg=False)
    assert torch.equal(t2s, s2t.flip(0))
    assert list(map(tuple, knn_graph(x, 2, batch=batch, use_pyg=False).t().tolist())) == \
        brute_force(x, 2, False, False, batch)


def test_fewer_candidates_than_k_and_errors():
    x = torch.randn(3, 2)
    assert knn_graph(x, 10, use_pyg=False).size(1) == 3 * 2
    assert knn_graph(x, 10, loop=True, use_pyg=False).size(1) == 3 * 3
    assert knn_graph(x[:1], 2, use_pyg=False).shape == (2, 0)
    with pytest.raises(ValueError, match='k must be'):
        knn_graph(x, -1)
    with pytest.raises(ValueError, match='flow'):
        knn_graph(x, 1, flow='sideways')
    with pytest.raises(ValueError, match='sorted'):
        knn_graph(x, 1, batch=torch.tensor([1, 0, 1]), use_pyg=False)


def test_float16_input_is_upcast():
    x = torch.full((4, 2), 300.0, dtype=torch.float16)  # 300^2 * 2 overflows float16
    x[0] = 0
    out = knn_graph(x, 1, use_pyg=False)
    assert out.shape == (2, 4)


@pytest.mark.parametrize('cosine', [False, True])
def test_near_ties_below_float32_resolution_are_decided_exactly(cosine):
    # Both candidates score the same in float32 against node 0, but node 2 is truly nearer: the float64
    # re-scoring must pick it (a float32 top-k with ties by index would pick node 1).
    x = torch.tensor([[1000.0, 0.0, 0.0], [1000.0, 2e-3, 0.0], [1000.0, 1e-3, 0.0], [-1000.0, 5.0, 3.0]])
    ei = knn_graph(x, 1, cosine=cosine, use_pyg=False)
    assert int(ei[0][ei[1] == 0]) == 2
    # both selected: the order counts scores within rounding of each other as equal, and goes by index
    ei = knn_graph(x, 2, cosine=cosine, use_pyg=False)
    assert ei[0][ei[1] == 0].tolist() == [1, 2]
