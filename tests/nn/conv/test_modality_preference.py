import torch

from pyg_diffcl.nn import ModalityPreference
from pyg_diffcl.ops import Adjacency, BipartiteAdj, item_knn_graph


def test_matches_dense_normalised_products():
    torch.manual_seed(0)
    U, I, F = 7, 9, 4
    R = (torch.rand(U, I) < 0.35).float()
    R[0, 0] = 1.0
    ei = R.nonzero().t()
    adj = BipartiteAdj(ei, U, I)
    x = torch.randn(I, F)
    du, di = R.sum(1), R.sum(0)
    Rn = R / (du.clamp(min=1).sqrt().view(-1, 1) * di.clamp(min=1).sqrt().view(1, -1))
    assert torch.allclose(ModalityPreference(0)(x, adj), Rn @ x, atol=1e-5)
    sei, sw = item_knn_graph(x, k=3)
    S = torch.zeros(I, I)
    S[sei[0], sei[1]] = sw
    item_adj = Adjacency(sei, sw, (I, I))
    assert torch.allclose(ModalityPreference(2)(x, adj, item_adj), Rn @ S @ S @ x, atol=1e-5)
    assert torch.allclose(ModalityPreference(2)(x, adj), Rn @ x, atol=1e-5)  # no graph: no smoothing
