import pytest
import torch

from pyg_diffcl.ops import collaborative_signals, interaction_matrix, truncated_svd


def _low_rank_interactions(U=40, I=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    # Two blocks of users with distinct tastes plus sparse noise: a clear rank-2 structure.
    R = (torch.rand(U, I, generator=g) < 0.05).float()
    R[:U // 2, :I // 2] = (torch.rand(U // 2, I // 2, generator=g) < 0.7).float()
    R[U // 2:, I // 2:] = (torch.rand(U - U // 2, I - I // 2, generator=g) < 0.7).float()
    return R


def test_interaction_matrix_is_binary_and_sparse():
    ei = torch.tensor([[0, 0, 1, 0], [1, 2, 2, 1]])  # (0, 1) twice
    X = interaction_matrix(ei, 2, 3)
    assert X.is_sparse and torch.equal(X.to_dense(), torch.tensor([[0., 1., 1.], [0., 0., 1.]]))


def test_truncated_svd_matches_dense_svd():
    R = _low_rank_interactions()
    torch.manual_seed(0)
    u, s, v = truncated_svd(R.nonzero().t(), *R.shape, rank=4, niter=6)
    U, S, Vh = torch.linalg.svd(R, full_matrices=False)
    assert torch.allclose(s, S[:4], rtol=1e-3)
    # Singular vectors are defined up to sign: compare the projectors.
    for a, b in ((u, U[:, :4]), (v, Vh[:4].t())):
        assert torch.allclose(a @ a.t(), b @ b.t(), atol=1e-3)
    with pytest.raises(ValueError, match='rank'):
        truncated_svd(R.nonzero().t(), *R.shape, rank=31)


def test_collaborative_signals_against_a_dense_computation():
    R = _low_rank_interactions(seed=1)
    ei = R.nonzero().t()
    torch.manual_seed(3)
    u, _, v = truncated_svd(ei, *R.shape, rank=3)
    torch.manual_seed(3)
    c = collaborative_signals(ei, *R.shape, rank=3, scale=False)
    Rn = R / (R.sum(1).clamp(min=1).sqrt().view(-1, 1) * R.sum(0).clamp(min=1).sqrt().view(1, -1))
    assert c.shape == (40, 6)
    assert torch.allclose(c[:, :3], u, atol=1e-6) and torch.allclose(c[:, 3:], Rn @ v, atol=1e-5)
    torch.manual_seed(3)
    cs = collaborative_signals(ei, *R.shape, rank=3, scale=True)
    assert torch.allclose(cs[:, :3].norm(dim=1).mean(), torch.tensor(1.0))
    assert torch.allclose(cs[:, 3:].norm(dim=1).mean(), torch.tensor(1.0))
    # Users of the same block get similar signals, users of different blocks dissimilar ones.
    cos = torch.nn.functional.normalize(cs[:, :3], dim=1)
    sim = cos @ cos.t()
    assert sim[:20, :20].mean() > sim[:20, 20:].mean() + 0.5
