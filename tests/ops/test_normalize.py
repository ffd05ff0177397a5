"""row_normalize: value and gradient against torch.nn.functional.normalize (zero and tiny rows included)."""
import torch

from pyg_diffcl.ops import row_normalize


def test_row_normalize_matches_functional_normalize():
    torch.manual_seed(0)
    x = torch.randn(40, 6, dtype=torch.double)
    x[3] = 0.0
    x[7] = 1e-15  # below eps: clamped
    x.requires_grad_()
    g = torch.randn(40, 6, dtype=torch.double)
    y = row_normalize(x)
    (gx,) = torch.autograd.grad((y * g).sum(), x)
    y_ref = torch.nn.functional.normalize(x, dim=-1)
    (gx_ref,) = torch.autograd.grad((y_ref * g).sum(), x)
    assert torch.allclose(y, y_ref, atol=1e-15)
    assert torch.allclose(gx, gx_ref, rtol=1e-12, atol=1e-12)
    # unit rows, and the gradient is orthogonal to the row (the norm does not change to first order)
    ok = torch.ones(40, dtype=torch.bool)
    ok[[3, 7]] = False
    assert torch.allclose(y[ok].norm(dim=-1), torch.ones(38, dtype=torch.double))
    assert torch.allclose((gx[ok] * x[ok]).sum(-1), torch.zeros(38, dtype=torch.double), atol=1e-10)
    assert torch.autograd.gradcheck(row_normalize, (torch.randn(5, 3, dtype=torch.double, requires_grad=True),))


def test_row_normalize_without_grad_is_functional_normalize():
    x = torch.randn(5, 4)
    assert torch.equal(row_normalize(x), torch.nn.functional.normalize(x, dim=-1))
