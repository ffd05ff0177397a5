"""RowSparseAdam against torch.optim.SparseAdam (an independent implementation of the same algorithm) and
against Adam's update written out by hand."""
import math

import pytest
import torch

from pyg_diffcl.training.optim import RowSparseAdam


def lookups(table, steps, gen):
    """Row ids per step: distinct ones, repeated ones (summed), and an empty step."""
    n = table.num_embeddings
    out = []
    for s in range(steps):
        if s == 2:
            out.append(torch.randint(0, n, (9,), generator=gen))  # repeats
        elif s == 4:
            out.append(torch.randint(0, n, (300,), generator=gen))  # many repeats: sums of many terms
        elif s == 3:
            out.append(torch.zeros(0, dtype=torch.long))
        else:
            out.append(torch.randperm(n, generator=gen)[:5])
    return out


@pytest.mark.parametrize('maximize', [False, True])
def test_same_bits_as_torch_sparse_adam(maximize):
    gen = torch.Generator().manual_seed(0)
    ours, ref = torch.nn.Embedding(12, 4, sparse=True), torch.nn.Embedding(12, 4, sparse=True)
    ref.load_state_dict(ours.state_dict())
    opt_ours = RowSparseAdam(ours.parameters(), lr=0.05, betas=(0.8, 0.95), maximize=maximize)
    opt_ref = torch.optim.SparseAdam(ref.parameters(), lr=0.05, betas=(0.8, 0.95), maximize=maximize)
    target = torch.randn(12, 4, generator=gen)
    for ids in lookups(ours, 7, gen):
        for table, opt in ((ours, opt_ours), (ref, opt_ref)):
            opt.zero_grad()
            if ids.numel():
                ((table(ids) - target[ids]) ** 3).sum().backward()
            else:
                table.weight.grad = torch.sparse_coo_tensor(torch.zeros(1, 0, dtype=torch.long), torch.zeros(0, 4),
                                                            (12, 4), check_invariants=True)
            opt.step()
        assert torch.equal(ours.weight, ref.weight)
    for key in ('exp_avg', 'exp_avg_sq'):
        assert torch.equal(opt_ours.state[ours.weight][key], opt_ref.state[ref.weight][key])
    # each loads the other's state
    opt_ref.load_state_dict(opt_ours.state_dict())
    RowSparseAdam(ours.parameters(), lr=0.05).load_state_dict(opt_ref.state_dict())


def test_first_steps_by_hand():
    """Step 1 on rows {1, 3}: m = (1 - b1) g, v = (1 - b2) g^2, W -= lr sqrt(1 - b2)/(1 - b1) m/(sqrt v + eps);
    step 2 on row {3} only: row 1 and its moments stay, and the bias correction uses t = 2."""
    table = torch.nn.Embedding(5, 2, sparse=True)
    w0 = table.weight.detach().clone()
    b1, b2, lr, eps = 0.9, 0.999, 0.1, 1e-8
    opt = RowSparseAdam(table.parameters(), lr=lr, betas=(b1, b2), eps=eps)
    g1 = torch.tensor([[1.0, -2.0], [0.5, 4.0]])
    (table(torch.tensor([1, 3])) * g1).sum().backward()
    opt.step()
    m = (1 - b1) * g1
    v = (1 - b2) * g1 ** 2
    want = w0.clone()
    want[[1, 3]] -= lr * math.sqrt(1 - b2) / (1 - b1) * m / (v.sqrt() + eps)
    torch.testing.assert_close(table.weight.detach(), want)
    opt.zero_grad()
    g2 = torch.tensor([[3.0, 1.0]])
    (table(torch.tensor([3])) * g2).sum().backward()
    opt.step()
    m3, v3 = b1 * m[1] + (1 - b1) * g2[0], b2 * v[1] + (1 - b2) * g2[0] ** 2
    want[3] -= lr * math.sqrt(1 - b2 ** 2) / (1 - b1 ** 2) * m3 / (v3.sqrt() + eps)
    torch.testing.assert_close(table.weight.detach(), want)
    torch.testing.assert_close(opt.state[table.weight]['exp_avg'][1], m[0])  # row 1: untouched at step 2


def test_refuses_dense_gradients_and_bad_arguments():
    table = torch.nn.Embedding(5, 2)
    opt = RowSparseAdam(table.parameters())
    table(torch.tensor([1])).sum().backward()
    with pytest.raises(RuntimeError, match='row-sparse'):
        opt.step()
    for kwargs, match in (({'lr': 0.0}, 'lr'), ({'eps': -1.0}, 'eps'), ({'betas': (1.0, 0.9)}, 'betas')):
        with pytest.raises(ValueError, match=match):
            RowSparseAdam(table.parameters(), **kwargs)
