from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.nn import MLP
from torch_geometric.typing import Adj

from ..checks import Validated, check_choice, check_non_negative, check_positive, check_probability
from ..datasets.sampler import BPRBatch
from ..nn import BPRLoss, BootstrapLatent, IDGuidedAlignment, InfoNCE, LightGCNPropagation, SimGCLNoise
from ..ops import BipartiteAdj, row_normalize
from .base import (Pair, Recommender, check_modality_weights, dataset_inputs, frozen_item_graph,
                   modality_inputs)

#: How :class:`MENTOR`'s two perturbed views are encoded (see its docstring).
VIEW_ENCODERS = ('separate', 'shared')


@dataclass
class MENTORConfig(Validated):
    """Hyper-parameters of :class:`MENTOR` (see its docstring for each symbol; the official names in
    brackets)."""
    embedding_dim: int = 64
    #: Graph layers of every branch on the user-item graph, summed with the input (two in the official code).
    num_layers: int = 2
    #: The hidden width of each branch's feature MLP (``None``: 4 x embedding_dim, the official).
    mlp_hidden: Optional[int] = None
    #: Layers on the frozen item-item graph (``n_mm_layers``).
    item_graph_layers: int = 1
    item_graph_k: int = 10
    #: One weight per modality, in sorted modality order, summing to one (``None``: equal weights); the
    #: official ``mm_image_weight`` = 0.1 weighs image against text.
    modality_weights: Optional[List[float]] = None
    #: The L2 weight on the batch users' modality preferences and on the user fusion weights (``reg_weight``).
    reg_weight: float = 1e-3
    #: lambda_align (``align_weight``).
    align_weight: float = 0.1
    #: 'var' compares variances (the official code), 'std' standard deviations.
    align_stat: str = 'var'
    #: 'all': every pair of (ID, fused, each modality), the official; 'guide': ID against each other one.
    align_pairs: str = 'all'
    #: lambda_g, the weight of the perturbed views' InfoNCE (``mask_weight_g``; grid 1e-4, 1e-3).
    cl_weight: float = 1e-3
    #: The InfoNCE temperature (``temp``; grid 0.2, 0.4, 0.6).
    tau: float = 0.2
    #: epsilon of the SimGCL noise added after every layer of a perturbed view (0.1 in the official code).
    noise_eps: float = 0.1
    #: 'separate': each view has encoders of its own (the official code); 'shared': the views are the main
    #: encoders perturbed (SimGCL).
    view_encoders: str = 'separate'
    #: None: contrast all users and all items (the official); k: at most k of the batch's unique users and k
    #: of its unique positive items.
    cl_max_nodes: Optional[int] = None
    #: lambda_f, the feature-masking loss (``mask_weight_f``): 0 by default, since the official code
    #: computes it without gradients (see the docstring).
    feature_mask_weight: float = 0.0
    #: The feature-masking targets' dropout rate (``dropout``).
    feature_mask_dropout: float = 0.5
    #: BPR with log2, as the official code (a 1 / ln 2 = 1.44 scale of the usual ln).
    bpr_log2: bool = True
    #: Train the ID branch's item table, as the official code does (``False`` freezes it; see the docstring).
    train_id_items: bool = True

    def validate(self) -> None:
        """Check every value; raises :class:`ValueError` naming the field."""
        check_positive('embedding_dim', self.embedding_dim)
        check_non_negative('num_layers', self.num_layers)
        check_positive('mlp_hidden', self.mlp_hidden, allow_none=True)
        check_non_negative('item_graph_layers', self.item_graph_layers)
        check_positive('item_graph_k', self.item_graph_k)
        check_modality_weights(self.modality_weights)
        for key in ('reg_weight', 'align_weight', 'cl_weight', 'noise_eps', 'feature_mask_weight'):
            check_non_negative(key, getattr(self, key))
        check_choice('align_stat', self.align_stat, ('std', 'var'))
        check_choice('align_pairs', self.align_pairs, ('all', 'guide'))
        check_positive('tau', self.tau)
        check_choice('view_encoders', self.view_encoders, VIEW_ENCODERS)
        check_positive('cl_max_nodes', self.cl_max_nodes, allow_none=True)
        check_probability('feature_mask_dropout', self.feature_mask_dropout)


class MENTOR(Recommender):
    r"""MENTOR, from the `"MENTOR: Multi-level Self-supervised Learning for Multimodal Recommendation"
    <https://arxiv.org/abs/2402.19407>`_ paper (Xu et al., AAAI 2025), read with its official code
    (``github.com/Jinfeng-Xu/MENTOR``, ``src/models/mentor.py``), for :math:`M \geq 1` modalities. DiffCL's
    design is MENTOR's with diffusion views (``docs/design/diffcl-reading.md``).

    **Branch encoders.** One graph encoder per branch :math:`b \in \{id\} \cup \mathcal{M}`: free user
    preferences :math:`\mathbf{P}_b` stacked on an MLP of the item side (:class:`torch_geometric.nn.MLP`,
    :math:`F_b \to 4d \to d`, leaky ReLU), rows L2-normalised, then :math:`L` LightGCN layers
    (:class:`~pyg_diffcl.nn.LightGCNPropagation`) **summed** with the input:

    .. math::
        \mathbf{X}_b = \mathrm{norm}\big[\mathbf{P}_b \,;\, \mathrm{MLP}_b(\mathbf{F}_b)\big], \qquad
        \mathbf{E}_b = \sum_{l=0}^{L} \hat{\mathbf{A}}^l \mathbf{X}_b

    A modality's :math:`\mathbf{F}_m` are its raw item features; the ID branch's are a random item table
    :math:`\mathbf{F}_{id}` (Xavier-normal). The official code creates that table as
    ``nn.Parameter(xavier_normal_(...).to(device))``, a registered parameter that its optimizer trains (run
    through ``benchmarks/official_mentor.py``, the table moves from epoch to epoch), and
    :obj:`train_id_items=True` (the default) does the same; ``False`` freezes it at its random start, so that
    only the ID branch's MLP and user preferences learn. (The official code's ``result_embed`` tables are the
    ones written as ``nn.Parameter(...).to(device)``; its forward pass overwrites them, and nothing here needs
    them.)

    **Fusion and the item graph.** Users weigh the modalities with their own weights
    :math:`\mathbf{w}_u \in \mathbb{R}^M` (trainable; initialised as the official code does, the softmax of
    a Xavier-normal draw of standard deviation :math:`\sqrt{2/(|\mathcal{U}|+M)}`, so near :math:`1/M`); items
    concatenate them, and add their propagation on the frozen multimodal item graph :math:`\mathbf{S} =
    \sum_m \alpha_m \hat{\mathbf{S}}_m` (FREEDOM's, :func:`~pyg_diffcl.ops.weighted_graph_sum`,
    :obj:`modality_weights`):

    .. math::
        \mathbf{e}_u = \big\Vert_m\, w_{um} \mathbf{e}^m_u, \qquad
        \mathbf{e}_i = \big\Vert_m\, \bar{\mathbf{e}}^m_i, \quad \bar{\mathbf{e}}^m_i = \mathbf{e}^m_i +
        (\mathbf{S}^{L_{ii}} \mathbf{E}^m_\mathcal{I})_i, \qquad \hat{y}_{ui} = \mathbf{e}_u^\top\mathbf{e}_i

    **Loss.**

    .. math::
        \begin{aligned}
        \mathcal{L} = {} & \mathcal{L}_{BPR} + \lambda \Big(\sum_m \tfrac{1}{Bd}\|\mathbf{P}_m[B]\|^2 +
        \tfrac{1}{UM}\|\mathbf{W}\|^2\Big) + \lambda_{align} \sum_{a<b} \big(|\mu_a - \mu_b| +
        |\sigma^2_a - \sigma^2_b|\big) \\
        & + \lambda_g \big(\mathcal{L}^{u}_{NCE} + \mathcal{L}^{i}_{NCE}\big) + \lambda_f \mathcal{L}_{f}
        \end{aligned}

    :math:`\mathcal{L}_{BPR}` uses :math:`\log_2` as the official code does (:obj:`bpr_log2`). The
    **alignment** (:class:`~pyg_diffcl.nn.IDGuidedAlignment`, :obj:`align_pairs='all'`, :obj:`align_stat=
    'var'`) compares the scalar mean and variance of four matrices, every pair: the ID branch (the guide),
    the fused one and each modality's, each as (users; items after the item graph). The official code tiles
    the single-branch matrices :math:`M` times to the fused width; tiling leaves the scalar mean and variance
    unchanged, so they are compared untiled. The **perturbed views** are two more encodings of every
    modality with SimGCL's noise (:class:`~pyg_diffcl.nn.SimGCLNoise`, :math:`\epsilon` = :obj:`noise_eps`)
    after each layer, fused like the main one, and :class:`~pyg_diffcl.nn.InfoNCE` (temperature :obj:`tau`)
    contrasts the two views over all users and, separately, all items (:obj:`cl_max_nodes` caps them to a
    sample of the batch's). In the official code each view has encoders of its own
    (:obj:`view_encoders='separate'`, the default), which are trained by this term only and never score:
    the term then reaches the scoring model only through the users' fusion weights. ``'shared'`` perturbs
    the main encoders instead, as SimGCL does.

    The **feature masking** :math:`\mathcal{L}_f = 1 - \overline{\cos}(f(\mathbf{e}), \mathrm{dropout}
    (\mathbf{e}))` over the fused users and items is BM3's bootstrap (:class:`~pyg_diffcl.nn.BootstrapLatent`).
    The official code computes both of its inputs (the predictor's output and the dropout view) inside
    ``torch.no_grad()``, so the term adds a constant and trains nothing; :obj:`feature_mask_weight` is
    therefore 0 by default, and a positive weight gives it the gradient that the paper describes.

    The official code also loads a user-user graph (``user_graph_dict``) and resamples it every epoch, and
    draws a tenth of the items and drops the edges of the first third of them for the image modality and of
    the last third for the text one, but its forward pass uses neither; neither is built here.

    Args:
        num_users (int): The number of users.
        num_items (int): The number of items.
        features (Dict[str, Tensor]): ``[num_items, F_m]`` per modality (at least one).
        item_graphs (Dict[str, Tuple[Tensor, Tensor]], optional): Each modality's normalised k-NN graph;
            computed when missing. (default: :obj:`None`)
        config (MENTORConfig, optional): Hyper-parameters. (default: :obj:`MENTORConfig()`)
    """
    config_cls = MENTORConfig

    def __init__(self, num_users: int, num_items: int, features: Dict[str, Tensor],
                 item_graphs: Optional[Dict[str, Pair]] = None, config: Optional[MENTORConfig] = None) -> None:
        super().__init__(num_users, num_items)
        if not features:
            raise ValueError('features: MENTOR needs item features of at least one modality, got none')
        c = self.config = config if config is not None else MENTORConfig()
        c.validate()
        self.modalities = sorted(features)
        d = c.embedding_dim
        hidden = c.mlp_hidden if c.mlp_hidden is not None else 4 * d
        graphs = modality_inputs(features, item_graphs, num_items, c.item_graph_k, with_graphs=True)
        ii_index, ii_weight = frozen_item_graph(graphs, self.modalities, c.modality_weights, num_items)
        self.register_buffer('ii_index', ii_index, persistent=False)
        self.register_buffer('ii_weight', ii_weight, persistent=False)
        for m in self.modalities:
            self.register_buffer(f'feat_{m}', features[m].detach().float(), persistent=False)
        dims = {'id': d, **{m: features[m].size(1) for m in self.modalities}}
        self.id_item = torch.nn.Parameter(torch.empty(num_items, d), requires_grad=c.train_id_items)
        self.encoders = torch.nn.ModuleDict({b: _BranchEncoder(num_users, dims[b], d, hidden) for b in dims})
        self.view_encoders = torch.nn.ModuleList(
            [torch.nn.ModuleDict({m: _BranchEncoder(num_users, dims[m], d, hidden) for m in self.modalities})
             for _ in range(2)] if c.view_encoders == 'separate' else [])
        self.user_weights = torch.nn.Parameter(torch.empty(num_users, len(self.modalities)))
        self.propagation = LightGCNPropagation(c.num_layers, 'sum')
        self.noise = SimGCLNoise(c.noise_eps)
        self.alignment = IDGuidedAlignment('all', c.align_stat, pairs=c.align_pairs)
        self.info_nce = InfoNCE(c.tau)
        self.bpr = BPRLoss(0.0)
        self.feature_mask = BootstrapLatent(len(self.modalities) * d, c.feature_mask_dropout)
        self.reset_parameters()

    @classmethod
    def from_config(cls, config: MENTORConfig, dataset: Any) -> 'MENTOR':
        features, graphs = dataset_inputs(dataset, config.item_graph_k)
        return cls(dataset.num_users, dataset.num_items, features, graphs, config)

    def reset_parameters(self) -> None:
        torch.nn.init.xavier_normal_(self.id_item)
        for enc in [*self.encoders.values(), *(e for views in self.view_encoders for e in views.values())]:
            enc.reset_parameters()
        with torch.no_grad():  # the official initialisation: softmax over a small Xavier-normal draw
            self.user_weights.copy_(torch.softmax(torch.nn.init.xavier_normal_(torch.empty_like(self.user_weights)),
                                                  dim=1))
        self.feature_mask.reset_parameters()

    # ------------------------------------------------------------------------------------------ encoders
    def _items(self, branch: str) -> Tensor:
        return self.id_item if branch == 'id' else getattr(self, f'feat_{branch}')

    def _enhance(self, item: Tensor) -> Tensor:
        r""":math:`\mathbf{E}_\mathcal{I} + \mathbf{S}^{L_{ii}}\mathbf{E}_\mathcal{I}` on the frozen item graph."""
        ii = self.buffer_adjacency('ii_index', 'ii_weight', (self.num_items, self.num_items))
        h = item
        for _ in range(self.config.item_graph_layers):
            h = ii.matmul(h)
        return item + h if self.config.item_graph_layers > 0 else item

    def _fuse(self, per_modality: Dict[str, Pair]) -> Pair:
        """The users' weighted concatenation and the items' concatenation of the enhanced modality pairs."""
        w = self.user_weights
        user = torch.cat([w[:, k:k + 1] * per_modality[m][0] for k, m in enumerate(self.modalities)], dim=1)
        return user, torch.cat([per_modality[m][1] for m in self.modalities], dim=1)

    def encode(self, adj: Union[Adj, BipartiteAdj]) -> Dict[str, Pair]:
        """Every branch's ``(user, item)`` embeddings, the item side enhanced by the item graph: ``'id'`` and
        one per modality."""
        adj = self.prepare_adj(adj)
        out = {}
        for b, enc in self.encoders.items():
            user, item = enc(adj, self._items(b), self.propagation)
            out[b] = (user, self._enhance(item))
        return out

    def get_embedding(self, adj: Union[Adj, BipartiteAdj]) -> Pair:
        """The fused ``(user, item)`` embeddings, whose inner products are the scores."""
        branches = self.encode(adj)
        return self._fuse({m: branches[m] for m in self.modalities})

    def perturbed_view(self, adj: Union[Adj, BipartiteAdj], view: int) -> Pair:
        """Fused ``(user, item)`` embeddings of perturbed view :obj:`view` (0 or 1)."""
        adj = self.prepare_adj(adj)
        encoders = self.view_encoders[view] if len(self.view_encoders) else self.encoders
        per = {}
        for m in self.modalities:
            user, item = encoders[m](adj, self._items(m), self.propagation, self.noise)
            per[m] = (user, self._enhance(item))
        return self._fuse(per)

    # ---------------------------------------------------------------------------------------------- loss
    def loss(self, adj: Union[Adj, BipartiteAdj], batch: BPRBatch) -> Tensor:
        c = self.config
        branches = self.encode(adj)
        user, item = self._fuse({m: branches[m] for m in self.modalities})
        u = user[batch.user]
        loss = self.bpr((u * item[batch.pos_item]).sum(-1), (u * item[batch.neg_item]).sum(-1))
        if c.bpr_log2:
            loss = loss / math.log(2.0)
        if c.reg_weight > 0:
            prefs = sum(self.encoders[m].preference[batch.user].pow(2).mean() for m in self.modalities)
            loss = loss + c.reg_weight * (prefs + self.user_weights.pow(2).mean())
        if c.align_weight > 0:
            loss = loss + c.align_weight * self.alignment(branches['id'], (user, item),
                                                          *[branches[m] for m in self.modalities])
        if c.cl_weight > 0:
            (u1, i1), (u2, i2) = self.perturbed_view(adj, 0), self.perturbed_view(adj, 1)
            users, items = self._cl_nodes(batch.user), self._cl_nodes(batch.pos_item)
            if users is not None:
                u1, u2, i1, i2 = u1[users], u2[users], i1[items], i2[items]
            loss = loss + c.cl_weight * (self.info_nce(u1, u2) + self.info_nce(i1, i2))
        if c.feature_mask_weight > 0:
            f = self.feature_mask
            loss = loss + c.feature_mask_weight * (f(f.predict(user), f.target(user))
                                                   + f(f.predict(item), f.target(item)))
        return loss

    def _cl_nodes(self, nodes: Tensor) -> Optional[Tensor]:
        """``None`` (all rows) or a uniform sample of at most :obj:`cl_max_nodes` of the unique :obj:`nodes`."""
        k = self.config.cl_max_nodes
        if k is None:
            return None
        nodes = torch.unique(nodes)
        return nodes if nodes.numel() <= k else nodes[torch.randperm(nodes.numel(), device=nodes.device)[:k]]

    def __repr__(self) -> str:
        c = self.config
        return (f'{self.__class__.__name__}({self.num_users}, {self.num_items}, modalities={self.modalities}, '
                f'embedding_dim={c.embedding_dim}, num_layers={c.num_layers}, view_encoders={c.view_encoders!r})')


class _BranchEncoder(torch.nn.Module):
    r"""One MENTOR graph encoder: free user preferences :math:`\mathbf{P}` on an MLP of the item side, rows
    L2-normalised, propagated by the model's :class:`~pyg_diffcl.nn.LightGCNPropagation` (summed layers),
    optionally with a perturbation after every layer."""
    def __init__(self, num_users: int, in_dim: int, dim: int, hidden: int) -> None:
        super().__init__()
        self.preference = torch.nn.Parameter(torch.empty(num_users, dim))
        self.mlp = MLP([in_dim, hidden, dim], act='leaky_relu', norm=None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.xavier_normal_(self.preference)
        self.mlp.reset_parameters()

    def forward(self, adj: BipartiteAdj, items: Tensor, propagation: LightGCNPropagation,
                perturb: Optional[SimGCLNoise] = None) -> Tuple[Tensor, Tensor]:
        return propagation(adj, row_normalize(self.preference), row_normalize(self.mlp(items)), perturb)
