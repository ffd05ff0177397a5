import pytest
import torch

from pyg_diffcl.ops import collaborative_maps, collaborative_signals, interaction_matrix, truncated_svd


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


def test_collaborative_maps_fold_in_against_a_dense_svd():
    R = _low_rank_interactions()
    R[3] = 0.0  # a user without interactions
    R[:, 5] = 0.0  # an item without interactions
    ei = R.nonzero().t()
    w1, w2, dui = collaborative_maps(ei, *R.shape, rank=4, niter=20, scale=False)
    U, S, Vt = torch.linalg.svd(R)
    du, di = R.sum(1), R.sum(0)
    assert torch.allclose(dui, torch.where(du > 0, du.rsqrt(), torch.zeros_like(du)))
    # x W_1 is the fold-in x V S^-1, i.e. U on the observed rows; W_2 is D_i^-1/2 V (column signs free).
    sign = torch.sign((R @ w1 * U[:, :4]).sum(0))
    assert torch.allclose(R @ w1 * sign, U[:, :4], atol=1e-4)
    want2 = Vt[:4].t() * torch.where(di > 0, di.rsqrt(), torch.zeros_like(di)).unsqueeze(-1)
    sign = torch.sign((w2 * want2).sum(0))
    assert torch.allclose(w2 * sign, want2, atol=1e-4)
    assert torch.equal(w2[5], torch.zeros(4))
    # scale=True: each half of the signal over all users has unit mean row norm.
    w1, w2, dui = collaborative_maps(ei, *R.shape, rank=4, niter=20)
    assert torch.isclose((R @ w1).norm(dim=1).mean(), torch.tensor(1.0), atol=1e-5)
    assert torch.isclose((dui[:, None] * (R @ w2)).norm(dim=1).mean(), torch.tensor(1.0), atol=1e-5)
