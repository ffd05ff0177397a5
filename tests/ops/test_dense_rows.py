import torch

from pyg_diffcl.ops import csr_rows, dense_rows


def test_dense_rows_are_the_binary_rows_of_the_interaction_matrix():
    ei = torch.tensor([[0, 2, 2, 3, 2], [1, 0, 4, 4, 0]])  # a repeated pair counts once
    R = torch.zeros(4, 5)
    R[ei[0], ei[1]] = 1.0
    rowptr, col = csr_rows(ei, 4)
    users = torch.tensor([2, 1, 0, 2])
    assert torch.equal(dense_rows(rowptr, col, users, 5), R[users])
