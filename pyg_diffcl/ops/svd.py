r"""Collaborative signals from a randomized truncated SVD of the training interactions (LD4MRec Eq. 14-15)."""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

from .adj import Adjacency
from .norm import bipartite_gcn_norm, inv_sqrt_degree


def interaction_matrix(edge_index: Tensor, num_users: int, num_items: int) -> Tensor:
    r"""The binary users x items matrix :math:`\mathbf{X}` of (user, item) pairs as a coalesced sparse COO
    tensor (duplicates count once). Never densified."""
    ei = edge_index.long()
    x = torch.sparse_coo_tensor(ei, torch.ones(ei.size(1), device=ei.device), (num_users, num_items),
                                check_invariants=False)
    x = x.coalesce()
    return torch.sparse_coo_tensor(x.indices(), x.values().clamp(max=1.0), x.shape, check_invariants=False).coalesce()


def truncated_svd(edge_index: Tensor, num_users: int, num_items: int, rank: int, niter: int = 4,
                  oversample: int = 10) -> Tuple[Tensor, Tensor, Tensor]:
    r"""Rank-:math:`q` randomized SVD :math:`\mathbf{X} \approx \mathbf{U}_q \boldsymbol{\Sigma}_q
    \mathbf{V}_q^\top` of the binary interaction matrix (Halko et al.'s scheme, :func:`torch.svd_lowrank`,
    on the sparse matrix: memory :math:`O((|\mathcal{U}| + |\mathcal{I}|)\, q + |\mathcal{E}|)`). The
    random subspace has :math:`q + p` columns (:obj:`oversample` :math:`p`, Halko et al.'s advice) and the
    top :math:`q` are kept: with exactly :math:`q` columns the last singular values come out several
    per cent off. Draws from torch's global generator.

    Returns:
        ``(U [num_users, q], S [q], V [num_items, q])``, singular values in descending order.
    """
    if not 1 <= rank <= min(num_users, num_items):
        raise ValueError(f'rank must be in 1..{min(num_users, num_items)} (min of users and items), got {rank}')
    x = interaction_matrix(edge_index, num_users, num_items)
    q = min(rank + max(oversample, 0), num_users, num_items)
    u, s, v = torch.svd_lowrank(x, q=q, niter=niter)
    return u[:, :rank], s[:rank], v[:, :rank]


def collaborative_signals(edge_index: Tensor, num_users: int, num_items: int, rank: int, niter: int = 4,
                          scale: bool = True) -> Tensor:
    r"""LD4MRec's collaborative signal of every user (Eq. 14-15): the user's singular vector next to the
    degree-normalised sum of the singular vectors of the items the user clicked,

    .. math::
        \mathbf{X} \approx \mathbf{U}_q \boldsymbol{\Sigma}_q \mathbf{V}_q^\top, \qquad
        \mathbf{c}_u = \Big[\, \mathbf{U}_{q,u} \;\Big\|\; \big(\mathbf{D}_\mathcal{U}^{-1/2} \mathbf{X}
        \mathbf{D}_\mathcal{I}^{-1/2} \mathbf{V}_q\big)_u \Big]

    The equations lost their symbols in conversion; the text says the user eigenvector is "fused with the
    clicked item eigenvectors" by concatenation and that the degree matrices "avoid the scale of eigenvector
    increasing", read here as LightGCN's symmetric normalisation. (With the normalised matrix in the SVD
    itself the second half would equal :math:`\mathbf{U}_q\boldsymbol{\Sigma}_q`, a rescaled copy of the
    first, so the SVD is of the raw :math:`\mathbf{X}`.) With :obj:`scale`, each half is divided by its mean
    row norm: singular-vector entries are :math:`O(1/\sqrt{n})`, too small for a linear layer trained with
    Adam to pick up at a normal learning rate.

    Returns:
        ``[num_users, 2 q]``.
    """
    u, _, v = truncated_svd(edge_index, num_users, num_items, rank, niter)
    ei = edge_index.long()
    w = bipartite_gcn_norm(ei, num_users, num_items)
    av = Adjacency(ei, w, (num_users, num_items)).matmul(v)
    if scale:
        halves = []
        for h in (u, av):
            norm = h.norm(dim=1).mean()
            halves.append(h / norm if norm > 0 else h)
        u, av = halves
    return torch.cat([u, av], dim=1)


def collaborative_maps(edge_index: Tensor, num_users: int, num_items: int, rank: int, niter: int = 4,
                       scale: bool = True) -> Tuple[Tensor, Tensor, Tensor]:
    r""":func:`collaborative_signals` written as a linear function of a user's behaviour row
    :math:`\mathbf{x}_u`, so that it can be applied to a corrupted row:

    .. math::
        \mathbf{c}_u = \Big[\, \mathbf{x}_u \mathbf{W}_1 \;\Big\|\; d_u^{-1/2}\, \mathbf{x}_u \mathbf{W}_2 \Big],
        \qquad \mathbf{W}_1 = \mathbf{V}_q \boldsymbol{\Sigma}_q^{-1} / n_1, \quad
        \mathbf{W}_2 = \mathbf{D}_\mathcal{I}^{-1/2} \mathbf{V}_q / n_2

    The first half uses :math:`\mathbf{U}_q = \mathbf{X}\mathbf{V}_q\boldsymbol{\Sigma}_q^{-1}` (exact for
    the SVD, and to the randomized SVD's accuracy here); :math:`n_1, n_2` are the mean row norms of the two
    halves over all users (1 without :obj:`scale`), so that on the observed rows this gives
    :func:`collaborative_signals`' signal, computed from the same factors. Items without training
    interactions get zero rows of :math:`\mathbf{W}_2`.

    Returns:
        ``(W_1 [num_items, q], W_2 [num_items, q], d_u^{-1/2} [num_users])``.
    """
    _, s, v = truncated_svd(edge_index, num_users, num_items, rank, niter)
    ei = edge_index.long()
    x = interaction_matrix(ei, num_users, num_items)
    row, col = x.indices()
    dinv_u, dinv_i = inv_sqrt_degree(row, num_users), inv_sqrt_degree(col, num_items)
    w1 = v / s.clamp(min=torch.finfo(s.dtype).tiny)
    w2 = v * dinv_i.unsqueeze(-1)
    if scale:
        for w, rows in ((w1, None), (w2, dinv_u)):
            h = torch.sparse.mm(x, w)
            if rows is not None:
                h = h * rows.unsqueeze(-1)
            norm = h.norm(dim=1).mean()
            if norm > 0:
                w.div_(norm)
    return w1, w2, dinv_u
