from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.typing import Adj

from ..datasets.neighbor import NeighborBPRSampler, SubgraphBatch
from ..datasets.sampler import BPRBatch
from ..checks import Validated, check_choice, check_non_negative, check_positive, check_probability
from ..nn import (
    BPRLoss,
    DiffusionViewGenerator,
    GaussianDiffusion,
    IDGuidedAlignment,
    InfoNCE,
    LightGCNPropagation,
    ModalityFusion,
)
from ..nn.diffusion.gaussian_diffusion import SCHEDULES
from ..ops import Adjacency, BipartiteAdj, row_normalize
from ..ops.features import FEATURE_NORMS, prepare_features
from .base import Recommender, dataset_inputs, modality_inputs

Pair = Tuple[Tensor, Tensor]

MODALITY_USERS = ('free', 'items', 'id')
NORMALIZE_INPUTS = ('all', 'modalities', 'none')


@dataclass
class DiffCLConfig(Validated):
    """Hyper-parameters of :class:`DiffCL` (see its docstring for each symbol)."""
    embedding_dim: int = 64
    num_layers: int = 2
    #: lambda_cl, lambda_align, lambda_E (Eq. 17, 28, 33); the paper's Baby preset by default.
    cl_weight: float = 0.1
    align_weight: float = 0.4
    emb_reg_weight: float = 0.7
    tau: float = 0.4
    feat_dropout: float = 0.5
    feature_norm: str = 'standardize'
    #: which branches' layer-0 rows are L2-normalised: 'all', 'modalities' or 'none'.
    normalize_input: str = 'all'
    #: Eq. 4 sums the layers; 'mean' is LightGCN's combination.
    layer_combine: str = 'sum'
    #: a modality's user side at layer 0: 'free' (MENTOR), 'items' (aggregated from the user's training
    #: items, MGCN/FREEDOM style) or 'id' (the ID user embedding, DiffMM style).
    modality_users: str = 'free'
    #: Eq. 24's mu: 'convex' (sigmoid, in (0, 1)), 'free' (unconstrained, as printed) or 'fixed' (0.5).
    fusion: str = 'convex'
    #: the modality branches' own propagation depth and layer combination (None: num_layers, layer_combine).
    modality_layers: Optional[int] = None
    modality_combine: Optional[str] = None
    item_graph_k: int = 10
    item_graph_layers: int = 1
    diffusion_steps: int = 5
    noise_scale: float = 0.1
    noise_min: float = 1e-4
    noise_max: float = 0.02
    #: The noise schedule (:data:`~pyg_diffcl.nn.diffusion.gaussian_diffusion.SCHEDULES`): Eq. 11's linear
    #: one, or ``'cosine'`` (an option outside the paper).
    schedule: str = 'linear-var'
    denoiser_hidden: List[int] = field(default_factory=lambda: [64])
    denoiser_dropout: float = 0.0
    predict: str = 'x0'
    view_steps: Optional[int] = None
    detach_views: bool = False
    diff_weight: float = 1.0
    #: at most this many users and this many items (a uniform sample of the batch's unique ones) enter the
    #: contrastive loss; None: all of them. InfoNCE costs O(n^2 d) in the number n of contrasted nodes.
    cl_max_nodes: Optional[int] = None
    align_axis: str = 'all'
    align_stat: str = 'std'
    #: stop gradients into E_id in L_align, so that ID guides the modalities and is not pulled by them.
    align_detach_id: bool = False
    id_reg_weight: float = 0.0
    #: Table III switches.
    use_diffusion: bool = True
    use_alignment: bool = True
    use_item_graph: bool = True


    def validate(self) -> None:
        """Check every value; raises :class:`ValueError` naming the field. Called on construction and by
        :class:`DiffCL` (a field changed afterwards is checked there)."""
        check_positive('embedding_dim', self.embedding_dim)
        check_non_negative('num_layers', self.num_layers)
        check_choice('layer_combine', self.layer_combine, ('mean', 'sum'))
        check_choice('feature_norm', self.feature_norm, FEATURE_NORMS)
        check_choice('fusion', self.fusion, ('convex', 'free', 'fixed'))
        if self.modality_combine is not None:
            check_choice('modality_combine', self.modality_combine, ('mean', 'sum'))
        check_non_negative('modality_layers', self.modality_layers, allow_none=True)
        check_choice('modality_users', self.modality_users, MODALITY_USERS)
        check_choice('normalize_input', self.normalize_input, NORMALIZE_INPUTS)
        check_probability('feat_dropout', self.feat_dropout)
        for key in ('cl_weight', 'align_weight', 'emb_reg_weight', 'id_reg_weight', 'diff_weight'):
            check_non_negative(key, getattr(self, key))
        check_positive('tau', self.tau)
        check_positive('cl_max_nodes', self.cl_max_nodes, allow_none=True)  # 0 would contrast nothing: NaN
        if any(h < 1 for h in self.denoiser_hidden):
            raise ValueError(f'denoiser_hidden: every size must be positive, got {list(self.denoiser_hidden)}')
        check_probability('denoiser_dropout', self.denoiser_dropout)
        check_positive('item_graph_k', self.item_graph_k)
        check_non_negative('item_graph_layers', self.item_graph_layers)
        check_positive('diffusion_steps', self.diffusion_steps)
        if self.view_steps is not None and not 1 <= self.view_steps <= self.diffusion_steps:
            raise ValueError(f'view_steps: must be in 1..diffusion_steps={self.diffusion_steps} (or None), got '
                             f'{self.view_steps}')
        check_choice('predict', self.predict, ('x0', 'eps'))
        check_choice('schedule', self.schedule, SCHEDULES)
        check_choice('align_axis', self.align_axis, ('all', 'dim'))
        check_choice('align_stat', self.align_stat, ('std', 'var'))

class DiffCL(Recommender):
    r"""DiffCL, from the `"DiffCL: A Diffusion-Based Contrastive Learning Framework with Semantic Alignment
    for Multimodal Recommendations" <https://arxiv.org/abs/2501.01066>`_ paper, for :math:`M \geq 1`
    modalities. Equation numbers refer to the paper; ``docs/design/diffcl-reading.md`` discusses each reading.

    **Graph encoders** (Eq. 3-5). One user-item graph per branch :math:`m \in \{id\} \cup \mathcal{M}`, all on
    the same normalised training graph, LightGCN propagation with the layers **summed** (Eq. 4,
    :class:`~pyg_diffcl.nn.LightGCNPropagation`):

    .. math::
        \mathbf{E}_m = \sum_{l=0}^{L} \hat{\mathbf{A}}^l \mathbf{E}_m^{(0)}, \qquad
        \mathbf{E}_m^{(0)} = \big[\mathbf{P}_m \,;\, \mathrm{dropout}(\mathbf{F}_m\mathbf{W}_m + \mathbf{b}_m)\big]

    The item side of a modality is its raw feature :math:`\mathbf{F}_m` (pre-processed by
    :obj:`feature_norm`, :func:`prepare_features`: column-standardised by default) through a learned linear
    map, with dropout 0.5 (Sec. V-A-3) on the projected :math:`d`-dimensional features: the paper does not
    say where the dropout sits, and after the projection it costs :math:`d / F_m` of dropping the raw
    features (a 64x saving for 4096-d visual features). The paper does not say what a modality's *user* side
    is (:obj:`modality_users`): by default a free per-modality user embedding :math:`\mathbf{P}_m`
    (``'free'``, as in MENTOR, whose structure DiffCL follows; it is also what :math:`\mathcal{L}_E` of
    Eq. 33 regularises); ``'items'`` makes it the mean of the user's training items' rows (MGCN/FREEDOM, no
    user parameters), ``'id'`` the ID user embedding (DiffMM). The ID branch has free user and item
    embeddings. :obj:`normalize_input` L2-normalises the layer-0 rows of ``'all'`` branches (MENTOR),
    of the ``'modalities'`` only, or of ``'none'``: normalised rows keep the modality branches on one scale
    for the alignment, but make an L2 penalty on the ID embeddings (:obj:`id_reg_weight`) meaningless, so
    ``'modalities'`` is the one to combine with it. :obj:`layer_combine` = ``'mean'`` replaces Eq. 4's sum
    with LightGCN's mean (a rescaling of the scores that changes what a given L2 weight means);
    :obj:`modality_layers` and :obj:`modality_combine` give the modality branches their own depth and
    combination (MENTOR and FREEDOM use 1-2 summed layers there), so that the ID branch can be a tuned
    LightGCN while the modality branches follow Eq. 4.

    **Diffusion views and contrast** (Eq. 6-17). For every modality, two views of :math:`\mathbf{E}_m` (before
    the item-graph enhancement) come from :class:`~pyg_diffcl.nn.DiffusionViewGenerator` (forward noise to
    step :math:`T`, :math:`T` learned reverse steps, gradients flowing into the encoder). The denoiser acts
    on rows independently, so views are generated only for the rows the loss uses: the batch's unique users
    and unique positive items (identical to generating all rows and selecting). :class:`~pyg_diffcl.nn.
    InfoNCE` (cosine, :math:`\tau = 0.4`, negatives from the other view, i.e. the standard form rather than
    Eq. 13-14's printed denominator) runs over those users and, separately, those items:

    .. math::
        \mathcal{L}_{cl} = \lambda_{cl} \sum_{m} \big(\mathcal{L}^m_u + \mathcal{L}^m_i\big)

    :math:`\lambda_{cl}` is applied **once** (Eq. 32 multiplies by :math:`\lambda_{cl}` again, which Eq. 17
    already did). The denoiser is trained by :math:`w_{diff} \sum_m \|f_\theta(\mathbf{x}_t, t) -
    \mathrm{sg}(\mathbf{x}_0)\|^2` on the same rows (DiffRec's loss; Eq. 32 has none, :obj:`diff_weight=0`
    drops it).

    **Item-item graph enhancement** (Eq. 18-23). Per modality, the cached top-:math:`K` (:math:`K = 10`)
    cosine graph of the raw features :math:`\hat{\mathbf{S}}_m` (:func:`~pyg_diffcl.ops.item_knn_graph`)
    is propagated :math:`L_{ii}` times from the item rows and added to them:
    :math:`\bar{\mathbf{E}}^i_m = \mathbf{E}^i_m + \hat{\mathbf{S}}_m^{L_{ii}} \mathbf{E}^i_m`.

    **Fusion, score, alignment, loss** (Eq. 24-33). :math:`\mathbf{E}_{\mathcal{M}} =
    \mathrm{fuse}(\bar{\mathbf{E}}_m)` (:class:`~pyg_diffcl.nn.ModalityFusion`: :math:`\mu` initialised at
    0.5 for two modalities and kept in :math:`(0, 1)` by default, :obj:`fusion='convex'`; Eq. 24's
    unconstrained :math:`\mu` is ``'free'``, and it lets BPR inflate the modality score without bound), score :math:`y_{ui} = \mathbf{e}_{\mathcal{M},u}^\top
    \mathbf{e}_{\mathcal{M},i} + \mathbf{e}_{id,u}^\top \mathbf{e}_{id,i}` (Eq. 30; the ID branch is never
    fused), and

    .. math::
        \mathcal{L} = \mathcal{L}_{BPR} + \mathcal{L}_{cl} + \lambda_{align} \sum_m \big(|\mu_{id} - \mu_m|
        + |\sigma_{id} - \sigma_m|\big) + \lambda_E \sum_m \frac{1}{|B| d} \|\mathbf{P}_m[B]\|^2
        + w_{diff}\,\mathcal{L}_{diff}

    with the Gaussian statistics over all entries of the full :math:`(|\mathcal{U}|+|\mathcal{I}|) \times d`
    matrices :math:`\mathbf{E}_{id}` and :math:`\bar{\mathbf{E}}_m` (:class:`~pyg_diffcl.nn.IDGuidedAlignment`)
    and :math:`\mathcal{L}_E` the mean square of the batch users' modality preference embeddings (the
    paper's :math:`\lambda_E \approx 0.7`-:math:`1.0` only makes sense for a mean, not a sum; no term
    without free user embeddings). :obj:`align_detach_id` stops the alignment's gradient into
    :math:`\mathbf{E}_{id}` (the ID branch guides and is not pulled); :obj:`id_reg_weight` adds the usual
    :math:`\lambda/(2|B|)\sum\|\mathbf{e}^{(0)}\|^2` on the batch's ID embeddings to the BPR term.
    :obj:`cl_max_nodes` caps the users and the items contrasted per batch (a uniform sample of the batch's
    unique ones): InfoNCE costs :math:`O(n^2 d)` in their number :math:`n`.

    **Ablations** (Table III): :obj:`use_diffusion`, :obj:`use_alignment`, :obj:`use_item_graph`.

    **Sampled subgraphs** (:meth:`make_neighbor_sampler`, ``train.loader=neighbor``). The modality item-item
    graphs become edge types of the sampler's :class:`~torch_geometric.data.HeteroData` and are sampled with
    the interactions (:class:`~pyg_diffcl.datasets.NeighborBPRSampler`): :math:`H = L + L_{ii}` hops, the
    item graphs during the first :math:`L_{ii}`, so that the item rows an enhancement reads have their
    :math:`L` hops of interactions. A batch then computes every branch only on its subgraph: layer-0 rows
    of the subgraph's users and items (the feature projection and its dropout too), :math:`L` layers over
    the sampled interactions (the whole graph's normalisation), the item-graph enhancement over the sampled
    item-item edges, and the loss above at the batch's rows. The one term that reads whole matrices, the
    alignment, takes its statistics over the batch's own rows instead (its unique users and unique
    positive and negative items, whose embeddings are exact up to the sampling): a mini-batch estimate of
    the full-matrix mean and deviation. ``modality_users='items'`` (a user's mean over all their training
    items) trains on the whole graph only.

    Args:
        num_users (int): The number of users.
        num_items (int): The number of items.
        features (Dict[str, Tensor]): Raw item features per modality, ``[num_items, F_m]`` (at least one).
        item_graphs (Dict[str, Tuple[Tensor, Tensor]], optional): ``(edge_index, edge_weight)`` per modality
            from :func:`~pyg_diffcl.ops.item_knn_graph` / :meth:`MMRecDataset.item_graph
            <pyg_diffcl.datasets.MMRecDataset.item_graph>`; computed here when missing and needed.
        config (DiffCLConfig, optional): Hyper-parameters. (default: :obj:`DiffCLConfig()`)
    """
    config_cls = DiffCLConfig

    def __init__(self, num_users: int, num_items: int, features: Dict[str, Tensor],
                 item_graphs: Optional[Dict[str, Pair]] = None, config: Optional[DiffCLConfig] = None) -> None:
        super().__init__(num_users, num_items)
        if not features:
            raise ValueError('features: DiffCL needs item features of at least one modality, got none')
        c = self.config = config if config is not None else DiffCLConfig()
        c.validate()
        d = c.embedding_dim
        self.modalities = sorted(features)
        item_graphs = modality_inputs(features, item_graphs, num_items, c.item_graph_k, c.use_item_graph)
        for m, x in features.items():
            self.register_buffer(f'feat_{m}', prepare_features(x, c.feature_norm), persistent=False)
        self.id_user = torch.nn.Embedding(num_users, d)
        self.id_item = torch.nn.Embedding(num_items, d)
        self.user_pref = torch.nn.ModuleDict({m: torch.nn.Embedding(num_users, d) for m in self.modalities}
                                             if c.modality_users == 'free' else {})
        self.proj = torch.nn.ModuleDict({m: torch.nn.Linear(features[m].size(1), d) for m in self.modalities})
        self.propagation = LightGCNPropagation(c.num_layers, c.layer_combine)
        mod_layers = c.num_layers if c.modality_layers is None else c.modality_layers
        mod_combine = c.layer_combine if c.modality_combine is None else c.modality_combine
        # registered only when it differs, so that the default model's state_dict keys stay those of older runs
        self.modality_propagation: Optional[LightGCNPropagation] = (
            None if (mod_layers, mod_combine) == (c.num_layers, c.layer_combine)
            else LightGCNPropagation(mod_layers, mod_combine))
        self._norm_id, self._norm_mod = c.normalize_input == 'all', c.normalize_input in ('all', 'modalities')
        self.views = torch.nn.ModuleDict({
            m: DiffusionViewGenerator(
                d, GaussianDiffusion(c.diffusion_steps, c.noise_scale, c.noise_min, c.noise_max,
                                     schedule=c.schedule, prediction_type=c.predict),
                hidden=c.denoiser_hidden, dropout=c.denoiser_dropout, predict=c.predict,
                view_steps=c.view_steps, detach_views=c.detach_views)
            for m in self.modalities})
        self.fusion = ModalityFusion(len(self.modalities), mode=c.fusion)
        self.info_nce = InfoNCE(c.tau)
        self.alignment = IDGuidedAlignment(c.align_axis, c.align_stat, detach_id=c.align_detach_id)
        self.bpr = BPRLoss(c.id_reg_weight)
        if item_graphs is not None:
            for m in self.modalities:
                ei, w = item_graphs[m]
                self.register_buffer(f'ii_index_{m}', ei, persistent=False)
                self.register_buffer(f'ii_weight_{m}', w, persistent=False)
        self.reset_parameters()

    @classmethod
    def from_config(cls, config: DiffCLConfig, dataset: Any) -> 'DiffCL':
        features, graphs = dataset_inputs(dataset, config.item_graph_k, with_graphs=config.use_item_graph)
        return cls(dataset.num_users, dataset.num_items, features, graphs, config)

    def reset_parameters(self) -> None:
        for emb in [self.id_user, self.id_item, *self.user_pref.values()]:
            torch.nn.init.xavier_uniform_(emb.weight)
        for lin in self.proj.values():
            torch.nn.init.xavier_uniform_(lin.weight)
            torch.nn.init.zeros_(lin.bias)
        for gen in self.views.values():
            gen.reset_parameters()
        self.fusion.reset_parameters()

    # ------------------------------------------------------------------------------------------ encoders
    def _dropout(self, x: Tensor) -> Tensor:
        """Inverted dropout with :obj:`feat_dropout`; the mask comes from ``rand_like``, the same distribution
        as the ``bernoulli_`` behind :func:`torch.nn.functional.dropout` at a fraction of its cost on CPU."""
        p = self.config.feat_dropout
        if not self.training or p == 0.0:
            return x
        return x * (torch.rand_like(x) >= p) * (1.0 / (1.0 - p))

    @staticmethod
    def _layer0(x: Tensor, normalize: bool) -> Tensor:
        return row_normalize(x) if normalize else x

    @staticmethod
    def _rows(table: torch.nn.Embedding, ids: Optional[Tensor]) -> Tensor:
        """All of a table (the whole graph), or the rows :obj:`ids` through the module (a subgraph: row-sparse
        gradients with ``train.optimizer=sparse_adam``)."""
        return table.weight if ids is None else table(ids)

    def _modality_user0(self, m: str, adj: Any, item0: Tensor, uid: Optional[Tensor] = None) -> Tensor:
        if self.config.modality_users == 'free':
            return self._rows(self.user_pref[m], uid)
        if self.config.modality_users == 'id':
            return self._rows(self.id_user, uid)
        # 'items': the mean of the user's training items' rows (the whole graph only: encode_subgraph refuses)
        return self.propagation.conv((item0, None), adj.item_mean_to_user)

    def encode(self, adj: Union[Adj, BipartiteAdj]) -> Tuple[Pair, Dict[str, Pair]]:
        """``(E_id, {m: E_m})`` after the user-item graph encoders (Eq. 3-5), as (user, item) pairs.

        The branches share the graph but are propagated one by one: a CSR product's cost per column grows
        with the number of columns once the dense operands no longer fit in the cache, so narrow products are
        cheaper than one wide one, and each output entry is the same sum in the same order either way, so the
        two give identical bits."""
        return self._encode(self.prepare_adj(adj))

    def encode_subgraph(self, batch: SubgraphBatch) -> Tuple[Pair, Dict[str, Pair]]:
        """:meth:`encode` on a sampled subgraph: the same branches, over the rows of the subgraph's users
        (``batch.user_id``) and items (``batch.item_id``) and its sampled interactions."""
        if self.config.modality_users == 'items':
            raise ValueError("modality_users: 'items' averages all of a user's training items, which a sampled "
                             'subgraph does not hold; train on the whole graph')
        return self._encode(batch.adj, batch.user_id, batch.item_id)

    def _encode(self, adj: Any, uid: Optional[Tensor] = None, iid: Optional[Tensor] = None
                ) -> Tuple[Pair, Dict[str, Pair]]:
        """The encoders over :obj:`adj`, on every user and item, or on the users :obj:`uid` and items
        :obj:`iid` that a subgraph's rows stand for."""
        id_pair = self.propagation(adj, self._layer0(self._rows(self.id_user, uid), self._norm_id),
                                   self._layer0(self._rows(self.id_item, iid), self._norm_id))
        mods = {}
        for m in self.modalities:
            feat = getattr(self, f"feat_{m}")
            item0 = self._layer0(self._dropout(self.proj[m](feat if iid is None else feat[iid])), self._norm_mod)
            user0 = self._layer0(self._modality_user0(m, adj, item0, uid), self._norm_mod)
            mods[m] = (self.modality_propagation or self.propagation)(adj, user0, item0)
        return id_pair, mods

    def _item_adj(self, m: str) -> Adjacency:
        return self.buffer_adjacency(f'ii_index_{m}', f'ii_weight_{m}', (self.num_items, self.num_items))

    def enhance(self, mods: Dict[str, Pair], item_graphs: Optional[Dict[str, Adjacency]] = None) -> Dict[str, Pair]:
        """Eq. 22-23: add :math:`\\hat{S}_m^{L_{ii}} E^i_m` to each modality's item rows (over
        :obj:`item_graphs` when given: a sampled subgraph's, :attr:`SubgraphBatch.item_graphs
        <pyg_diffcl.datasets.SubgraphBatch.item_graphs>`)."""
        if not self.config.use_item_graph:
            return mods
        out = {}
        for m, (u, i) in mods.items():
            graph = self._item_adj(m) if item_graphs is None else item_graphs[m]
            h = i
            for _ in range(self.config.item_graph_layers):
                h = self.propagation.conv((h, h), graph)
            out[m] = (u, i + h)
        return out

    def get_embedding(self, adj: Union[Adj, BipartiteAdj]) -> Pair:
        """Concatenations ``[fused | id]``, so that the inner product is Eq. 30's score."""
        e_id, mods = self.encode(adj)
        enh = self.enhance(mods)
        fused = [self.fusion([enh[m][side] for m in self.modalities]) for side in (0, 1)]
        return torch.cat([fused[0], e_id[0]], dim=-1), torch.cat([fused[1], e_id[1]], dim=-1)

    # ---------------------------------------------------------------------------------------------- loss
    def make_neighbor_sampler(self, edge_index: Tensor, num_neighbors: Optional[Sequence[int]], batch_size: int,
                              seed: int, scaling: str = 'degree', backend: str = 'auto',
                              item_graph_neighbors: int = -1, negatives: str = 'unseen') -> NeighborBPRSampler:
        """Batches on sampled subgraphs with the item-item graphs as edge types: :obj:`num_neighbors` needs
        one user-item fan-out per hop, :math:`H = L + L_{ii}` of them (:math:`L` the deeper of the ID and
        modality propagations, :math:`L_{ii}` = :obj:`item_graph_layers` with :obj:`use_item_graph`);
        :obj:`None`: 10 per hop. :obj:`item_graph_neighbors`: the item-item neighbours sampled per item
        (``-1``: all :obj:`item_graph_k`, with the graphs' own weights; fewer are reweighted, see
        :class:`~pyg_diffcl.datasets.NeighborBPRSampler`)."""
        c = self.config
        if c.modality_users == 'items':
            raise ValueError("loader: DiffCL with model.modality_users=items trains on the whole graph only (a "
                             "user's modality row averages all their training items)")
        layers = max(c.num_layers, c.num_layers if c.modality_layers is None else c.modality_layers)
        item_hops = c.item_graph_layers if c.use_item_graph else 0
        hops = layers + item_hops
        if hops < 1:
            raise ValueError('num_neighbors: a DiffCL without layers has no neighbourhood to sample')
        num_neighbors = [10] * hops if num_neighbors is None else list(num_neighbors)
        if len(num_neighbors) != hops:
            raise ValueError(f'num_neighbors: one fan-out per hop ({hops}: {layers} user-item layers + {item_hops} '
                             f'item-graph layers), got {num_neighbors}')
        if item_graph_neighbors != -1 and not item_hops:
            raise ValueError(f'item_graph_neighbors: {item_graph_neighbors}, but this DiffCL has no item-item graph '
                             f'to sample (model.use_item_graph is off); leave it at -1')
        graphs = ({m: (getattr(self, f'ii_index_{m}'), getattr(self, f'ii_weight_{m}')) for m in self.modalities}
                  if item_hops else None)
        return NeighborBPRSampler(edge_index, self.num_users, self.num_items, num_neighbors, batch_size, seed,
                                  scaling, backend, graphs, max(item_hops, 1), item_graph_neighbors,
                                  negatives=negatives)

    def sparse_embeddings(self) -> List[torch.nn.Embedding]:
        """The ID tables and the modality user tables: on sampled subgraphs the loss reads them row by row."""
        return [self.id_user, self.id_item, *self.user_pref.values()]

    def loss(self, adj: Optional[Union[Adj, BipartiteAdj]], batch: Union[BPRBatch, SubgraphBatch]) -> Tensor:
        """The loss above of a :class:`~pyg_diffcl.datasets.sampler.BPRBatch` over the whole graph :obj:`adj`,
        or of a :class:`~pyg_diffcl.datasets.SubgraphBatch` over its own subgraph (:obj:`adj` unused)."""
        c = self.config
        sampled = isinstance(batch, SubgraphBatch)
        if sampled:
            e_id, mods = self.encode_subgraph(batch)
            enh = self.enhance(mods, batch.item_graphs)
        else:
            e_id, mods = self.encode(adj)
            enh = self.enhance(mods)
        B = batch.user.numel()
        cl_users = cl_items = batch.user[:0]
        if c.use_diffusion:
            cl_users = self._cl_nodes(torch.unique(batch.user))
            cl_items = self._cl_nodes(torch.unique(batch.pos_item))
        nu = cl_users.numel()
        # Every matrix is read once, at all the rows the loss needs (each read's backward is a zero-filled
        # full-size gradient plus a scatter, so one read instead of three saves two of each).
        user_rows = torch.cat([batch.user, cl_users])
        pair_items = torch.cat([batch.pos_item, batch.neg_item])
        id_u, id_i = e_id[0][batch.user], e_id[1][pair_items]
        mod_u, mod_i, cl_i = {}, {}, {}
        for m in self.modalities:
            mod_u[m] = enh[m][0][user_rows]  # enhancement leaves the user rows as they are: enh == mods there
            if enh[m][1] is mods[m][1]:
                rows = enh[m][1][torch.cat([pair_items, cl_items])]
                mod_i[m], cl_i[m] = rows[:2 * B], rows[2 * B:]
            else:
                mod_i[m], cl_i[m] = enh[m][1][pair_items], mods[m][1][cl_items]
        # Eq. 24 on those rows, never the full matrix, and Eq. 30: <[f_u | id_u], [f_i | id_i]>
        fu = self.fusion([mod_u[m][:B] for m in self.modalities])
        fi = self.fusion([mod_i[m] for m in self.modalities])
        score = (fu.repeat(2, 1) * fi).sum(-1) + (id_u.repeat(2, 1) * id_i).sum(-1)
        glob_u = batch.user_id[batch.user] if sampled else batch.user
        reg = (self.id_user(glob_u), self.id_item(batch.item_id[pair_items] if sampled else pair_items))
        loss = self.bpr(score[:B], score[B:], reg)
        if c.use_diffusion:
            cl = loss.new_zeros(())
            diff = loss.new_zeros(())
            for m in self.modalities:
                x0 = torch.cat([mod_u[m][B:], cl_i[m]], dim=0)
                v1, v2 = self.views[m].pair(x0)
                cl = cl + self.info_nce(v1[:nu], v2[:nu]) + self.info_nce(v1[nu:], v2[nu:])
                if c.diff_weight > 0:
                    diff = diff + self.views[m].loss(x0)
            loss = loss + c.cl_weight * cl + c.diff_weight * diff
        if c.use_alignment and not sampled:  # over the full (users; items) matrices, given as their two row blocks
            loss = loss + c.align_weight * self.alignment(e_id, *[enh[m] for m in self.modalities])
        elif c.use_alignment:  # over the batch's own rows: its unique users and items
            au, ai = torch.unique(batch.user), torch.unique(pair_items)
            loss = loss + c.align_weight * self.alignment((e_id[0][au], e_id[1][ai]),
                                                          *[(enh[m][0][au], enh[m][1][ai]) for m in self.modalities])
        if c.emb_reg_weight > 0 and len(self.user_pref) > 0:
            loss = loss + c.emb_reg_weight * sum(self.user_pref[m](glob_u).pow(2).mean() for m in self.modalities)
        return loss

    def _cl_nodes(self, nodes: Tensor) -> Tensor:
        k = self.config.cl_max_nodes
        if k is None or nodes.numel() <= k:
            return nodes
        return nodes[torch.randperm(nodes.numel(), device=nodes.device)[:k]]

    def __repr__(self) -> str:
        c = self.config
        return (f'{self.__class__.__name__}({self.num_users}, {self.num_items}, modalities={self.modalities}, '
                f'embedding_dim={c.embedding_dim}, num_layers={c.num_layers}, use_diffusion={c.use_diffusion}, '
                f'use_alignment={c.use_alignment}, use_item_graph={c.use_item_graph})')
