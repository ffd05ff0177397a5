from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.typing import Adj

from ..checks import Validated, check_choice, check_non_negative, check_positive, check_probability
from ..datasets.sampler import BPRBatch
from ..nn import BPRLoss, GaussianDiffusion, InfoNCE, ModalityGraphDiffusion
from ..ops import Adjacency, BipartiteAdj, csr_rows, dense_rows, row_normalize
from .base import Pair, Recommender, dataset_inputs, modality_inputs, training_edges


@dataclass
class DiffMMConfig(Validated):
    """Hyper-parameters of :class:`DiffMM` (see its docstring for each symbol; the official names in
    brackets, defaults the official code's)."""
    embedding_dim: int = 64
    #: Graph layers after the fusion (``gnn_layer``).
    num_layers: int = 1
    #: The weight of the diffusion-generated graph in each modality's view (``ris_adj_lambda``).
    generated_weight: float = 0.2
    #: The weight of the normalised fused embeddings added at the end (``ris_lambda``).
    residual_weight: float = 0.5
    #: L2 on the full ID tables (``reg``).
    reg_weight: float = 1e-4
    #: The cross-modal contrast (``ssl_reg``) and its temperature (``temp``).
    cl_weight: float = 1e-2
    tau: float = 0.5
    #: 'main': each modality's view against the main view (``cl_method=1``); 'pairs': the modality views
    #: pairwise (``cl_method=0``).
    cl_views: str = 'main'
    diffusion_steps: int = 5
    noise_scale: float = 0.1
    noise_min: float = 1e-4
    noise_max: float = 0.02
    #: A fixed first beta (the official ``beta_fixed``: 1e-4); None: from the schedule.
    first_beta: Optional[float] = 1e-4
    denoiser_hidden: List[int] = field(default_factory=lambda: [1000])
    time_dim: int = 10
    denoiser_dropout: float = 0.5
    #: The modality-aware signal injection (``e_loss``).
    msi_weight: float = 0.1
    #: SNR reweighting of the diffusion loss by step (the official code always applies it).
    reweight: bool = True
    #: The denoisers' Adam and their batch of users.
    diff_lr: float = 1e-3
    diff_batch_size: int = 1024
    #: Items kept per user in a generated graph (``rebuild_k``) and whether the user's training items are
    #: excluded from them (the official code does not exclude them).
    rebuild_k: int = 1
    rebuild_exclude_train: bool = False
    #: The share of a generated graph's entries kept by its edge dropout, rescaled by 1 / keep_rate
    #: (``keepRate``).
    keep_rate: float = 0.5

    def validate(self) -> None:
        """Check every value; raises :class:`ValueError` naming the field."""
        for key in ('embedding_dim', 'diffusion_steps', 'time_dim', 'diff_batch_size', 'rebuild_k', 'tau',
                    'diff_lr'):
            check_positive(key, getattr(self, key))
        for key in ('num_layers', 'generated_weight', 'residual_weight', 'reg_weight', 'cl_weight',
                    'msi_weight'):
            check_non_negative(key, getattr(self, key))
        check_choice('cl_views', self.cl_views, ('main', 'pairs'))
        check_probability('denoiser_dropout', self.denoiser_dropout)
        if not 0.0 < self.keep_rate <= 1.0:
            raise ValueError(f'keep_rate: must be in (0, 1], got {self.keep_rate}')
        if any(h < 1 for h in self.denoiser_hidden):
            raise ValueError(f'denoiser_hidden: every size must be positive, got {list(self.denoiser_hidden)}')


def self_loop_adjacency(users: Tensor, items: Tensor, num_users: int, num_items: int) -> Tuple[Tensor, Tensor]:
    r"""The normalised adjacency of the user-item graph with self-loops on all :math:`|\mathcal{U}| +
    |\mathcal{I}|` nodes (users first), :math:`\hat{\mathbf{A}} = \mathbf{D}^{-1/2}(\mathbf{A} +
    \mathbf{I})\mathbf{D}^{-1/2}` (PyG's :func:`~torch_geometric.nn.conv.gcn_conv.gcn_norm`): ``(index,
    weight)``, the matrix :math:`\hat{\mathbf{A}}[\text{index}_0, \text{index}_1]`."""
    n = num_users + num_items
    ei = torch.stack([torch.cat([users, items + num_users]), torch.cat([items + num_users, users])])
    ei, w = gcn_norm(ei, None, n, add_self_loops=True)
    return ei, w


class DiffMM(Recommender):
    r"""DiffMM, from the `"DiffMM: Multi-Modal Diffusion Model for Recommendation"
    <https://arxiv.org/abs/2406.11781>`_ paper (Jiang et al., ACM MM 2024), read with its official code
    (``github.com/HKUDS/DiffMM``, ``Model.py`` and ``Main.py``), for :math:`M \geq 1` modalities.

    **Graphs.** :math:`\hat{\mathbf{A}}` is the training graph with self-loops, symmetrically normalised
    (:func:`self_loop_adjacency`). Before every epoch each modality's :class:`~pyg_diffcl.nn.diffusion.
    ModalityGraphDiffusion` is trained for one pass over the users (its own Adam, :obj:`diff_lr`; Sec. 3.1,
    the step-reweighted reconstruction plus the modality-aware signal injection) and then generates the
    modality's user-item graph, :obj:`rebuild_k` items per user, normalised the same way and edge-dropped
    once (each entry kept with probability :math:`\rho` = :obj:`keep_rate` and scaled by :math:`1/\rho`,
    self-loops included):
    :math:`\hat{\mathbf{A}}_m`, used by every batch of the epoch and by its evaluation, as in the official
    code. The recommender's gradients never reach the denoisers and the denoisers' never reach the
    recommender.

    **Encoder** (the official ``forward_MM``; :math:`\mathbf{X} = [\mathbf{E}_\mathcal{U};
    \mathbf{E}_\mathcal{I}]` the ID tables, :math:`\mathbf{f}_m = \mathbf{W}_m\mathbf{x}^m + \mathbf{b}_m` the
    projected features, :math:`n(\cdot)` row normalisation):

    .. math::
        \mathbf{P}_m = \hat{\mathbf{A}}[\mathbf{E}_\mathcal{U}; n(\mathbf{F}_m)], \quad
        \mathbf{Q}_m = \hat{\mathbf{A}}[\mathbf{P}_{m,\mathcal{U}}; \mathbf{E}_\mathcal{I}], \quad
        \mathbf{E}_m = \mathbf{P}_m + \mathbf{Q}_m + \lambda_{g}\,\hat{\mathbf{A}}_m \mathbf{X}

    .. math::
        \mathbf{H}_0 = \sum_m \mathrm{softmax}(\boldsymbol{\omega})_m \mathbf{E}_m, \qquad
        \mathbf{Z} = \sum_{l=0}^{L} \hat{\mathbf{A}}^l \mathbf{H}_0 + \lambda_r\, n(\mathbf{H}_0)

    (:math:`\lambda_g` :obj:`generated_weight`, :math:`\lambda_r` :obj:`residual_weight`); scores
    :math:`\hat{y}_{ui} = \mathbf{z}_u^\top \mathbf{z}_i`.

    **Cross-modal contrast** (Sec. 3.3): each modality's view :math:`\mathbf{V}_m = \sum_{l=0}^{L}
    \hat{\mathbf{A}}^l\,\hat{\mathbf{A}}_m [\mathbf{E}_\mathcal{U}; n(\mathbf{F}_m)]` (the generated graph
    for the first hop, the training graph after it) against the main view (:obj:`cl_views='main'`, the
    official tiktok setting) or the other modalities' (``'pairs'``), with :class:`~pyg_diffcl.nn.InfoNCE`
    over the batch's users and positive items (repeats kept) against every user or item:

    .. math::
        \begin{aligned}
        \mathcal{L} = {} & \mathcal{L}_{BPR} + \lambda (\|\mathbf{E}_\mathcal{U}\|^2 +
        \|\mathbf{E}_\mathcal{I}\|^2) \\
        & + \lambda_{cl} \sum_m \big(\mathcal{L}_{NCE}(\mathbf{Z}_\mathcal{U}, \mathbf{V}_{m,\mathcal{U}})
        + \mathcal{L}_{NCE}(\mathbf{Z}_\mathcal{I}, \mathbf{V}_{m,\mathcal{I}})\big)
        \end{aligned}

    The official code computes both contrast variants at every batch and discards one; only the one used is
    computed here. Its evaluation selects on the test set; here, as for every model, the validation split
    selects.

    **State.** The denoisers' Adam, the epoch whose graphs are built and the graphs themselves are part of
    :meth:`state_dict` (:meth:`get_extra_state`), so that a run resumed inside an epoch neither retrains the
    denoisers nor draws a new graph.

    Args:
        num_users (int): The number of users.
        num_items (int): The number of items.
        edge_index (Tensor): Training ``[2, E]`` (user, item) pairs (the rows that are diffused).
        features (Dict[str, Tensor]): ``[num_items, F_m]`` per modality (at least one).
        config (DiffMMConfig, optional): Hyper-parameters. (default: :obj:`DiffMMConfig()`)
    """
    config_cls = DiffMMConfig

    def __init__(self, num_users: int, num_items: int, edge_index: Tensor, features: Dict[str, Tensor],
                 config: Optional[DiffMMConfig] = None) -> None:
        super().__init__(num_users, num_items)
        if not features:
            raise ValueError('features: DiffMM needs item features of at least one modality, got none')
        c = self.config = config if config is not None else DiffMMConfig()
        c.validate()
        modality_inputs(features, None, num_items, 1, with_graphs=False)
        self.modalities = sorted(features)
        d = c.embedding_dim
        edge_index = edge_index.long()
        rowptr, col = csr_rows(edge_index, num_users)  # the rows that are diffused, gathered per batch
        self.register_buffer('rowptr', rowptr, persistent=False)
        self.register_buffer('col', col, persistent=False)
        ei, w = self_loop_adjacency(edge_index[0], edge_index[1], num_users, num_items)
        self.register_buffer('adj_index', ei, persistent=False)
        self.register_buffer('adj_weight', w, persistent=False)
        for m in self.modalities:
            self.register_buffer(f'feat_{m}', features[m].detach().float(), persistent=False)
        self.user_emb = torch.nn.Embedding(num_users, d)
        self.item_emb = torch.nn.Embedding(num_items, d)
        self.proj = torch.nn.ModuleDict({m: torch.nn.Linear(features[m].size(1), d) for m in self.modalities})
        self.modality_logits = torch.nn.Parameter(torch.empty(len(self.modalities)))
        schedule = GaussianDiffusion(c.diffusion_steps, c.noise_scale, c.noise_min, c.noise_max,
                                     first_beta=c.first_beta)
        self.graph_diffusion = torch.nn.ModuleDict({
            m: ModalityGraphDiffusion(num_items, schedule, c.denoiser_hidden, c.time_dim, c.denoiser_dropout,
                                      c.msi_weight, c.reweight) for m in self.modalities})
        self.info_nce = InfoNCE(c.tau)
        self.bpr = BPRLoss(0.0)
        self._diff_opt: Optional[torch.optim.Optimizer] = None
        self._built_epoch = -1
        self._graphs: Dict[str, Pair] = {}
        self.reset_parameters()

    @classmethod
    def from_config(cls, config: DiffMMConfig, dataset: Any) -> 'DiffMM':
        features, _ = dataset_inputs(dataset, 1, with_graphs=False)
        return cls(dataset.num_users, dataset.num_items, training_edges(dataset), features, config)

    def reset_parameters(self) -> None:
        torch.nn.init.xavier_uniform_(self.user_emb.weight)
        torch.nn.init.xavier_uniform_(self.item_emb.weight)
        for lin in self.proj.values():
            lin.reset_parameters()
        torch.nn.init.constant_(self.modality_logits, 1.0 / len(self.modalities))
        for g in self.graph_diffusion.values():
            g.reset_parameters()
        self._diff_opt, self._built_epoch, self._graphs = None, -1, {}

    # ------------------------------------------------------------------------------- diffusion phase
    def _optimizer(self) -> torch.optim.Optimizer:
        if self._diff_opt is None:
            self._diff_opt = torch.optim.Adam(self.graph_diffusion.parameters(), lr=self.config.diff_lr)
        return self._diff_opt

    def _rows(self, users: Tensor) -> Tensor:
        """Dense training rows ``[len(users), |I|]`` of :obj:`users`."""
        return dense_rows(self.rowptr, self.col, users, self.num_items)

    def _batches(self, order: Tensor) -> List[Tensor]:
        return list(order.split(self.config.diff_batch_size))

    def train_diffusion(self) -> float:
        """One pass of every modality's denoiser over the users (shuffled); the mean batch loss."""
        opt = self._optimizer()
        feats = {m: self.projected(m).detach() for m in self.modalities}
        item = self.item_emb.weight.detach()
        total, n = 0.0, 0
        for users in self._batches(torch.randperm(self.num_users, device=item.device)):
            x0 = self._rows(users)
            loss = sum(self.graph_diffusion[m].loss(x0, feats[m], item) for m in self.modalities)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n = total + loss.item(), n + 1
        opt.zero_grad(set_to_none=True)  # no stale gradients for the recommender's optimiser to apply
        return total / max(n, 1)

    @torch.no_grad()
    def rebuild_graphs(self) -> None:
        """Generate every modality's user-item graph from its denoiser, normalise it and drop edges."""
        c = self.config
        users_all = torch.arange(self.num_users, device=self.rowptr.device)
        tops: Dict[str, List[Tensor]] = {m: [] for m in self.modalities}
        for users in self._batches(users_all):
            x0 = self._rows(users)
            exclude = x0 > 0 if c.rebuild_exclude_train else None
            for m in self.modalities:
                tops[m].append(self.graph_diffusion[m].generate(x0, c.rebuild_k, exclude))
        for m in self.modalities:
            items = torch.cat(tops[m]).reshape(-1)
            users = users_all.repeat_interleave(c.rebuild_k)
            ei, w = self_loop_adjacency(users, items, self.num_users, self.num_items)
            if c.keep_rate < 1.0:
                keep = torch.rand(w.numel(), device=w.device) < c.keep_rate
                ei, w = ei[:, keep], w[keep] / c.keep_rate
            self._graphs[m] = (ei, w)
        self.__dict__.pop('_generated_adj', None)

    def pre_epoch(self, epoch: int) -> None:
        """The diffusion phase and the graph rebuild of :obj:`epoch` (once: a resumed epoch keeps them)."""
        if self._built_epoch == int(epoch) and self._graphs:
            return
        self.train_diffusion()
        self.rebuild_graphs()
        self._built_epoch = int(epoch)

    def get_extra_state(self) -> Dict[str, Any]:
        return {'built_epoch': self._built_epoch, 'graphs': dict(self._graphs),
                'diff_opt': None if self._diff_opt is None else self._diff_opt.state_dict()}

    def inference_state(self, state: Dict[str, Any]) -> Dict[str, Any]:
        """Without the denoisers' Adam moments (two thirds of a DiffMM checkpoint on tiktok): scoring needs the
        generated graphs, not the optimizer; the resume checkpoint keeps it."""
        out = dict(state)
        if isinstance(out.get('_extra_state'), dict):
            out['_extra_state'] = {**out['_extra_state'], 'diff_opt': None}
        return out

    def set_extra_state(self, state: Dict[str, Any]) -> None:
        self._built_epoch = int(state['built_epoch'])
        self._graphs = dict(state['graphs'])
        self.__dict__.pop('_generated_adj', None)
        self._diff_opt = None
        if state.get('diff_opt') is not None:
            self._optimizer().load_state_dict(state['diff_opt'])

    # ------------------------------------------------------------------------------------- recommender
    def projected(self, m: str) -> Tensor:
        r""":math:`\mathbf{F}_m = \mathbf{X}^m\mathbf{W}_m^\top + \mathbf{b}_m`, ``[num_items, d]``."""
        return self.proj[m](getattr(self, f'feat_{m}'))

    def _adj(self) -> Adjacency:
        n = self.num_users + self.num_items
        return self.buffer_adjacency('adj_index', 'adj_weight', (n, n))

    def _generated(self, m: str) -> Adjacency:
        if not self._graphs:
            self.rebuild_graphs()
        cache: Dict[str, Adjacency] = self.__dict__.setdefault('_generated_adj', {})
        if m not in cache or cache[m].index.device != self.adj_index.device:
            n = self.num_users + self.num_items
            ei, w = self._graphs[m]
            cache[m] = Adjacency(ei.to(self.adj_index.device), w.to(self.adj_index.device), (n, n))
        return cache[m]

    def _layers(self, h0: Tensor) -> Tensor:
        adj, out, h = self._adj(), h0, h0
        for _ in range(self.config.num_layers):
            h = adj.matmul(h)
            out = out + h
        return out

    def encode(self) -> Tuple[Tensor, Dict[str, Tensor]]:
        """``(Z, {m: n(F_m)})``: the main view over all :math:`|\\mathcal{U}| + |\\mathcal{I}|` nodes."""
        c, U = self.config, self.num_users
        x = torch.cat([self.user_emb.weight, self.item_emb.weight])
        adj = self._adj()
        weights = torch.softmax(self.modality_logits, dim=0)
        feats, h0 = {}, None
        for k, m in enumerate(self.modalities):
            feats[m] = row_normalize(self.projected(m))
            p = adj.matmul(torch.cat([self.user_emb.weight, feats[m]]))
            q = adj.matmul(torch.cat([p[:U], self.item_emb.weight]))
            e = p + q + c.generated_weight * self._generated(m).matmul(x)
            h0 = weights[k] * e if h0 is None else h0 + weights[k] * e
        z = self._layers(h0) + c.residual_weight * row_normalize(h0)
        return z, feats

    def modality_view(self, m: str, feat: Tensor) -> Tensor:
        r""":math:`\mathbf{V}_m`, modality :obj:`m`'s contrastive view (:obj:`feat` is :math:`n(\mathbf{F}_m)`)."""
        return self._layers(self._generated(m).matmul(torch.cat([self.user_emb.weight, feat])))

    def get_embedding(self, adj: Union[Adj, BipartiteAdj, None] = None) -> Pair:
        """``(user, item)`` final embeddings (the training graph is the one given at construction)."""
        z, _ = self.encode()
        return z[:self.num_users], z[self.num_users:]

    def loss(self, adj: Union[Adj, BipartiteAdj, None], batch: BPRBatch) -> Tensor:
        c, U = self.config, self.num_users
        z, feats = self.encode()
        u = z[batch.user]
        loss = self.bpr((u * z[U + batch.pos_item]).sum(-1), (u * z[U + batch.neg_item]).sum(-1))
        if c.reg_weight > 0:
            loss = loss + c.reg_weight * (self.user_emb.weight.pow(2).sum() + self.item_emb.weight.pow(2).sum())
        if c.cl_weight > 0:
            views = {m: self.modality_view(m, feats[m]) for m in self.modalities}
            pairs = ([(z, views[m]) for m in self.modalities] if c.cl_views == 'main' else
                     [(views[a], views[b]) for i, a in enumerate(self.modalities) for b in self.modalities[i + 1:]])
            cl = loss.new_zeros(())
            for v1, v2 in pairs:
                cl = cl + self.info_nce(v1[:U], v2[:U], batch.user) + self.info_nce(v1[U:], v2[U:], batch.pos_item)
            loss = loss + c.cl_weight * cl
        return loss

    def __repr__(self) -> str:
        c = self.config
        return (f'{self.__class__.__name__}({self.num_users}, {self.num_items}, modalities={self.modalities}, '
                f'embedding_dim={c.embedding_dim}, denoiser_hidden={list(c.denoiser_hidden)})')
