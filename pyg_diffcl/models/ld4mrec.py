from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..datasets.sampler import UserBatch, UserSampler
from ..checks import Validated, check_choice, check_non_negative, check_positive, check_probability
from ..nn import CNet, GaussianDiffusion, ModalityPreference, SoftReconstructionLoss, StepSampler
from ..nn.diffusion.gaussian_diffusion import SCHEDULES
from ..nn.diffusion.step_sampler import RECORDS, STEP_SAMPLINGS
from ..nn.loss.soft_reconstruction import RECONSTRUCTIONS
from ..ops import (Adjacency, BipartiteAdj, collaborative_maps, collaborative_signals, csr_rows, dense_rows,
                   interaction_matrix)
from ..ops.features import FEATURE_NORMS, column_stats, prepare_features
from ..ops.norm import inv_sqrt_degree
from .base import Recommender, dataset_inputs, modality_inputs, training_edges

Pair = Tuple[Tensor, Tensor]

INITIAL_STEPS = ('embedding', 'scalar', 'none')
INFERENCES = ('forward_free', 'common')
GATES = ('step', 'all')
COND_SOURCES = ('observed', 'input')


@dataclass
class LD4MRecConfig(Validated):
    """Hyper-parameters of :class:`LD4MRec` (see its docstring for each symbol)."""
    #: C-Net sizes (paper Sec. 6.4: "embedding" 1000, hidden 100, step embedding 10) and its input dropout.
    fc_dim: int = 1000
    hidden_dim: int = 100
    time_dim: int = 10
    dropout: float = 0.5
    #: The rank :math:`q` of the randomized SVD (at most min(users, items)), and its power iterations.
    svd_rank: int = 64
    svd_niter: int = 4
    #: Scale each half of the collaborative signal to unit mean row norm.
    collab_scale: bool = True
    #: :math:`T` and the linear schedule (DiffRec's values; the paper's were lost in conversion).
    diffusion_steps: int = 5
    noise_scale: float = 0.01
    noise_min: float = 1e-3
    noise_max: float = 1e-2
    #: The noise schedule (:data:`~pyg_diffcl.nn.diffusion.gaussian_diffusion.SCHEDULES`): the linear one of
    #: DiffRec, or ``'cosine'`` (an option outside the paper).
    schedule: str = 'linear-var'
    #: ``'importance'`` (Eq. 8) or ``'uniform'`` step sampling in training.
    step_sampling: str = 'importance'
    #: What importance sampling records: ``'batch'`` (per-step batch means) or ``'example'`` (DiffRec's).
    step_record: str = 'batch'
    soft_prob: float = 0.01
    soft_smooth: float = 0.01
    #: ``'mse'`` (the paper's reconstruction) or ``'multinomial'`` (an option outside the paper).
    reconstruction: str = 'mse'
    initial_step: str = 'embedding'
    inference: str = 'forward_free'
    #: Forward steps of the common inference strategy (0: :math:`T`).
    inference_steps: int = 0
    feature_norm: str = 'l2'
    pref_norm: str = 'standardize'
    item_graph_k: int = 10
    item_graph_layers: int = 1
    gate: str = 'step'
    #: Training-time probability of dropping a user's conditions (an option outside the paper).
    cond_dropout: float = 0.0
    #: What the conditions are computed from in training: ``'observed'`` (the whole training row, the
    #: paper's reading) or ``'input'`` (the C-Net's dropped-out input row, an option outside the paper).
    cond_source: str = 'observed'
    use_cg: bool = True
    use_pg: bool = True


    def validate(self) -> None:
        """Check every value; raises :class:`ValueError` naming the field. Called on construction and by
        :class:`LD4MRec` (a field changed afterwards is checked there)."""
        for name, choices in (('initial_step', INITIAL_STEPS), ('inference', INFERENCES), ('gate', GATES),
                              ('step_sampling', STEP_SAMPLINGS), ('step_record', RECORDS),
                              ('feature_norm', FEATURE_NORMS), ('pref_norm', FEATURE_NORMS),
                              ('reconstruction', RECONSTRUCTIONS), ('cond_source', COND_SOURCES),
                              ('schedule', SCHEDULES)):
            check_choice(name, getattr(self, name), choices)
        for name in ('fc_dim', 'hidden_dim', 'time_dim', 'diffusion_steps', 'item_graph_k', 'svd_rank'):
            check_positive(name, getattr(self, name))
        check_non_negative('svd_niter', self.svd_niter)
        check_non_negative('item_graph_layers', self.item_graph_layers)
        check_probability('dropout', self.dropout)
        check_probability('cond_dropout', self.cond_dropout)
        if not 0 <= self.inference_steps <= self.diffusion_steps:
            raise ValueError(f'inference_steps: must be in 0..diffusion_steps={self.diffusion_steps}, got '
                             f'{self.inference_steps}')

class LD4MRec(Recommender):
    r"""LD4MRec, from the `"LD4MRec: Simplifying and Powering Diffusion Model for Multimedia Recommendation"
    <https://arxiv.org/abs/2309.15363>`_ paper: a diffusion model over users' **behaviour vectors**
    :math:`\mathbf{x}_u \in \{0, 1\}^{|\mathcal{I}|}` (the rows of the training interaction matrix), whose
    denoiser is the conditional network :class:`~pyg_diffcl.nn.CNet`.

    **Forward process** (Eq. 1-3): :class:`~pyg_diffcl.nn.GaussianDiffusion` with the linear schedule
    shared with DiffCL (:obj:`schedule`), :math:`\mathbf{x}_t = \sqrt{\bar{\alpha}_t}\mathbf{x}_0 +
    \sqrt{1-\bar{\alpha}_t}\boldsymbol{\varepsilon}`, with 0-based steps :math:`t \in 0..T-1` (the paper's
    step :math:`k \in 1..T` is :math:`t = k - 1`).

    **Per-user initial step** (Sec. 4.1): the observed behaviours are taken to have already gone through a
    small forward process of :math:`t^0_u` steps, learned per user. The paper turns :math:`t^0_u` "into an
    initial step embedding, similar to an ID embedding"; read here (:obj:`initial_step='embedding'`) as a
    learnable vector :math:`\mathbf{e}^0_u` (zeros at start) added to the sinusoidal embedding:
    :math:`\mathrm{emb}(t) + \mathbf{e}^0_u` in training (steps embedded 0-based, as in DiffRec),
    :math:`\mathrm{emb}(0) + \mathbf{e}^0_u` at forward-free inference. ``'scalar'`` learns
    :math:`t^0_u = \mathrm{softplus}(\theta_u) \ge 0` and embeds the real step :math:`t + t^0_u` (the
    literal "actual step is :math:`t + t^0_u`"); ``'none'`` drops it.

    **Conditions** (Sec. 5.1), computed once from the training graph, not learned:
    the collaborative signal :math:`\mathbf{c}_u` of a rank-:math:`q` randomized SVD
    (:func:`~pyg_diffcl.ops.collaborative_signals`, never densifying users x items) and, per modality, the
    preference signal :math:`\mathbf{p}^m_u` (:class:`~pyg_diffcl.nn.ModalityPreference`: item features
    (:obj:`feature_norm`, L2 rows by default) smoothed over the modality's top-:math:`K` item-item graph
    (:obj:`item_graph_layers`, the shared :func:`~pyg_diffcl.ops.item_knn_graph`; Eq. 16 itself has no
    item-item step, MGCN, which it cites, has one: 0 gives the literal Eq. 16) and aggregated into users with
    the symmetric normalisation; then column-standardised, :obj:`pref_norm`).
    Both are linear in the behaviour row :math:`\mathbf{x}_u` (up to the standardisation), and the paper
    computes them from the observed rows, which hold the very items the C-Net is trained to reconstruct.
    :obj:`cond_source='input'` (an option outside the paper) computes them in training from the C-Net's
    dropped-out input row instead, with the same mask (the model draws the input dropout itself), so the
    network must predict the dropped items, as a denoising autoencoder does; the SVD half becomes the
    fold-in :math:`\mathbf{x}_u\mathbf{V}_q\boldsymbol{\Sigma}_q^{-1}`
    (:func:`~pyg_diffcl.ops.collaborative_maps`). At inference both read the observed row.

    **Training** (Eq. 6-8, Algorithm 1): batches of users; :math:`t` drawn by importance sampling
    (:class:`~pyg_diffcl.nn.StepSampler`, uniform until each step has a loss history), the C-Net predicts
    :math:`\hat{\mathbf{x}}_0` from :math:`\mathbf{x}_t`, and the loss is the soft reconstruction loss
    (:class:`~pyg_diffcl.nn.SoftReconstructionLoss`, soft probability :math:`\rho` and smoothing
    :math:`\epsilon`, 0.01 / 0.01) weighted by :math:`1/(T p_t)`.

    **Inference** (Algorithm 2): *forward-free* (default), the C-Net applied once to the observed
    :math:`\mathbf{x}_0` at the user's initial step, :math:`\hat{\mathbf{x}} = f_\theta(\mathbf{x}_0,
    t^0_u, \mathbf{c}_u, \mathbf{p}_u)`; or the *common* strategy (:obj:`inference='common'`, the paper's
    Fig. 3 baseline, DiffRec's inference): corrupt :math:`\mathbf{x}_0` to step :math:`T'`
    (:obj:`inference_steps`) and run :math:`T'` reverse steps, each a C-Net call (:math:`T'` times the
    cost). Its noise is drawn per user from (seed, user id), so evaluation is repeatable and does not
    depend on how users are grouped into blocks. Scores are
    :math:`\hat{\mathbf{x}}`; training items are excluded by the evaluator as for every model.

    Memory: a batch of :math:`B` users holds a few :math:`B \times |\mathcal{I}|` dense matrices, never the
    whole users x items matrix (the evaluator streams blocks of users).

    Args:
        num_users (int): The number of users.
        num_items (int): The number of items.
        edge_index (Tensor): Training ``[2, E]`` (user, item) pairs.
        features (Dict[str, Tensor], optional): ``[num_items, F_m]`` per modality (needed unless
            :obj:`use_pg=False`).
        item_graphs (Dict[str, Tuple[Tensor, Tensor]], optional): ``(edge_index, edge_weight)`` per
            modality (:meth:`MMRecDataset.item_graph <pyg_diffcl.datasets.MMRecDataset.item_graph>`); computed
            here when missing and needed.
        config (LD4MRecConfig, optional): Hyper-parameters. (default: :obj:`LD4MRecConfig()`)
    """
    config_cls = LD4MRecConfig
    draws_negatives = False  # whole behaviour rows (:class:`~pyg_diffcl.datasets.UserSampler`)

    def __init__(self, num_users: int, num_items: int, edge_index: Tensor,
                 features: Optional[Dict[str, Tensor]] = None, item_graphs: Optional[Dict[str, Pair]] = None,
                 config: Optional[LD4MRecConfig] = None) -> None:
        super().__init__(num_users, num_items)
        c = self.config = config if config is not None else LD4MRecConfig()
        c.validate()
        features = dict(features or {})
        if c.use_pg and not features:
            raise ValueError("features: LD4MRec's preference-guided (PG) blocks need item features of at least "
                             "one modality, got none; set use_pg=False to train without them")
        edge_index = edge_index.long()
        if edge_index.numel() == 0:
            raise ValueError('edge_index: LD4MRec needs training interactions, got none')
        self.modalities: List[str] = sorted(features) if c.use_pg else []
        rowptr, col = csr_rows(edge_index.cpu(), num_users)
        self.register_buffer('rowptr', rowptr, persistent=False)
        self.register_buffer('col', col, persistent=False)

        # Conditions, computed once (no gradient): collaborative signals and modality preferences. With
        # cond_source='input' each is kept as a linear map of the behaviour row (item-side matrices, columns in
        # condition order, and the users' d_u^{-1/2}), so training can apply it to the dropped-out row.
        from_input = c.cond_source == 'input'
        maps: List[Tensor] = []
        collab = torch.zeros(num_users, 0)
        if c.use_cg:
            rank = min(c.svd_rank, num_users, num_items)
            if rank < c.svd_rank:
                warnings.warn(f'LD4MRec: svd_rank {c.svd_rank} exceeds min(users, items) = {rank}; using {rank}',
                              UserWarning)
            if from_input:
                maps += list(collaborative_maps(edge_index.cpu(), num_users, num_items, rank, c.svd_niter,
                                                c.collab_scale)[:2])
            else:
                collab = collaborative_signals(edge_index.cpu(), num_users, num_items, rank, c.svd_niter,
                                               c.collab_scale)
        pref_dims = []
        prefs: Dict[str, Tensor] = {}
        if self.modalities:
            adj = BipartiteAdj(edge_index.cpu(), num_users, num_items)
            pref = ModalityPreference(c.item_graph_layers)
            item_graphs = modality_inputs({m: features[m] for m in self.modalities}, item_graphs, num_items,
                                          c.item_graph_k, c.item_graph_layers > 0)
            dinv_i = inv_sqrt_degree(col, num_items) if from_input else None
            for m in self.modalities:
                x = features[m]
                item_adj = None
                if item_graphs is not None:
                    ei, w = item_graphs[m]
                    item_adj = Adjacency(ei.cpu(), w.cpu(), (num_items, num_items))
                with torch.no_grad():
                    if from_input:
                        maps.append(pref.item_features(prepare_features(x.cpu(), c.feature_norm), item_adj)
                                    * dinv_i.unsqueeze(-1))
                    else:
                        prefs[m] = pref(prepare_features(x.cpu(), c.feature_norm), adj, item_adj)
                pref_dims.append(features[m].size(1))
        self.num_collab = 2 * rank if c.use_cg and from_input else collab.size(1)
        if from_input:
            self.register_buffer('cond_user_scale', inv_sqrt_degree(edge_index[0].cpu(), num_users),
                                 persistent=False)
            self.register_buffer('cond_weight', torch.cat(maps, dim=1) if maps else torch.zeros(num_items, 0),
                                 persistent=False)
            x_all = interaction_matrix(edge_index.cpu(), num_users, num_items)
            z = self.condition_rows(torch.sparse.mm(x_all, self.cond_weight), self.cond_user_scale)
            collab, rest = z[:, :self.num_collab], z[:, self.num_collab:]
            prefs = dict(zip(self.modalities, rest.split(pref_dims, dim=1)))
        self.register_buffer('collab', collab)
        for m in self.modalities:
            p = prefs[m]
            if c.pref_norm == 'standardize':
                # Kept, so that a condition computed from a corrupted row gets the same map.
                for name, stat in zip(('shift', 'std', 'mask'), column_stats(p)):
                    self.register_buffer(f'pref_{m}_{name}', stat, persistent=False)
            self.register_buffer(f'pref_{m}', self.normalize_preference(m, p), persistent=False)

        self.diffusion = GaussianDiffusion(c.diffusion_steps, c.noise_scale, c.noise_min, c.noise_max,
                                           schedule=c.schedule)
        self.step_sampler = StepSampler(c.diffusion_steps, c.step_sampling, record=c.step_record)
        self.cnet = CNet(num_items, collab.size(1), pref_dims, c.fc_dim, c.hidden_dim, c.time_dim,
                         0.0 if from_input else c.dropout,
                         c.use_cg, c.use_pg, c.gate)
        self.initial_step = (torch.nn.Embedding(num_users, c.time_dim if c.initial_step == 'embedding' else 1)
                             if c.initial_step != 'none' else None)
        self.criterion = SoftReconstructionLoss(c.soft_prob, c.soft_smooth, c.reconstruction)
        self.reset_parameters()

    @classmethod
    def from_config(cls, config: LD4MRecConfig, dataset: Any) -> 'LD4MRec':
        features, graphs = dataset_inputs(dataset, config.item_graph_k, with_features=config.use_pg,
                                          with_graphs=config.item_graph_layers > 0)
        return cls(dataset.num_users, dataset.num_items, training_edges(dataset), features, graphs, config)

    def reset_parameters(self) -> None:
        self.cnet.reset_parameters()
        self.step_sampler.reset_parameters()
        if self.initial_step is not None:
            # 'scalar': softplus(-4) = 0.018 steps, i.e. start at (almost) no initial corruption.
            torch.nn.init.constant_(self.initial_step.weight, 0.0 if self.config.initial_step == 'embedding'
                                    else -4.0)

    # ------------------------------------------------------------------------------------------ pieces
    def make_sampler(self, edge_index: Tensor, batch_size: int, seed: int, negative_pool: str = 'all'
                     ) -> UserSampler:
        if negative_pool != 'all':
            raise ValueError(f'negative_pool={negative_pool}: LD4MRec trains on whole behaviour rows and draws '
                             f'no negative items; use negative_pool=all')
        return UserSampler(edge_index, batch_size, seed)

    def behaviours(self, users: Tensor) -> Tensor:
        r"""The dense training behaviour rows :math:`\mathbf{x}_{0,u}` of :obj:`users`: ``[B, num_items]``."""
        return dense_rows(self.rowptr, self.col, users, self.num_items)

    def normalize_preference(self, m: str, p: Tensor) -> Tensor:
        """Modality :obj:`m`'s :obj:`pref_norm` applied to preference rows :obj:`p`; ``'standardize'`` uses the
        column statistics of all users' observed rows (as :func:`~pyg_diffcl.ops.features.prepare_features`
        computes them), whatever rows it is given."""
        if self.config.pref_norm == 'standardize':
            return (p - getattr(self, f'pref_{m}_shift')) / getattr(self, f'pref_{m}_std') \
                * getattr(self, f'pref_{m}_mask')
        return prepare_features(p, self.config.pref_norm)

    def condition_rows(self, z: Tensor, user_scale: Tensor) -> Tensor:
        """``cond_source='input'``: the raw conditions from :math:`\\mathbf{x}` times the item-side maps,
        ``z = x @ cond_weight``: every column but the first SVD half is scaled by the user's
        :math:`d_u^{-1/2}`."""
        q = self.num_collab // 2
        return torch.cat([z[:, :q], z[:, q:] * user_scale.unsqueeze(-1)], dim=1)

    def conditions(self, users: Tensor, x: Optional[Tensor] = None) -> Tuple[Optional[Tensor], List[Tensor]]:
        """``(collaborative signals, [preference per modality])`` of :obj:`users`: the stored ones, or, with
        ``cond_source='input'`` and behaviour rows :obj:`x` given, the same maps applied to :obj:`x`."""
        if x is None or self.config.cond_source != 'input':
            collab = self.collab[users] if self.config.use_cg else None
            return collab, [getattr(self, f'pref_{m}')[users] for m in self.modalities]
        z = self.condition_rows(x @ self.cond_weight, self.cond_user_scale[users])
        collab, rest = z[:, :self.num_collab], z[:, self.num_collab:]
        prefs = rest.split([getattr(self, f'pref_{m}').size(1) for m in self.modalities], dim=1)
        return (collab if self.config.use_cg else None), [self.normalize_preference(m, p)
                                                          for m, p in zip(self.modalities, prefs)]

    def step_inputs(self, users: Tensor, t: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        r"""``(step, offset)`` for the step embedding of :obj:`users` at the 0-based forward step :obj:`t`
        (:math:`0..T-1` in training and in the common strategy, 0 for forward-free inference), embedded as it
        is, :math:`\mathrm{emb}(t)`, as DiffRec does. Forward-free inference uses :math:`\mathrm{emb}(0)`, the
        trained embedding of the least noisy step (its input :math:`\mathbf{x}_0` is within
        :math:`\sqrt{1 - \bar{\alpha}_0}` noise of :math:`\mathbf{x}_t` at that step), never an embedding the
        network has not seen. The per-user initial step is folded in as :obj:`initial_step` says."""
        t = t.float()
        mode = self.config.initial_step
        if mode == 'embedding':
            return t, self.initial_step(users)
        if mode == 'scalar':
            return t + F.softplus(self.initial_step(users)).squeeze(-1), None
        return t, None

    def _cnet_inputs(self, x_t: Tensor, users: Tensor, t: Tensor, x_cond: Optional[Tensor] = None
                     ) -> Tuple[Any, ...]:
        r"""The C-Net's arguments for :obj:`users` at 0-based steps :obj:`t`: the input, the step, the
        conditions and the initial-step offset. In training, with :obj:`cond_dropout` :math:`q > 0`, each
        user's conditions are zeroed with probability :math:`q` (classifier-free-guidance practice, outside
        the paper): the conditions are functions of the same behaviours, and without it the network can learn
        to ignore :math:`\mathbf{x}_t`."""
        collab, prefs = self.conditions(users, x_cond)
        q = self.config.cond_dropout
        if self.training and q > 0:
            keep = (torch.rand(users.numel(), 1, device=x_t.device) >= q).to(x_t.dtype)
            collab = collab * keep if collab is not None else None
            prefs = [p * keep for p in prefs]
        step, offset = self.step_inputs(users, t)
        return x_t, step, collab, prefs, offset

    def denoise(self, x_t: Tensor, users: Tensor, t: Tensor, x_cond: Optional[Tensor] = None) -> Tensor:
        r""":math:`\hat{\mathbf{x}}_0 = f_\theta(\mathbf{x}_t, t + t^0_u, \mathbf{c}_u, \mathbf{p}_u)`, the
        C-Net at 0-based steps :obj:`t` (see :meth:`_cnet_inputs` for the conditions)."""
        return self.cnet(*self._cnet_inputs(x_t, users, t, x_cond))

    # ------------------------------------------------------------------------------------------ training
    def loss(self, adj: BipartiteAdj, batch: UserBatch) -> Tensor:  # type: ignore[override]
        users = batch.user
        x0 = self.behaviours(users)
        t, weight = self.step_sampler.sample(users.numel(), x0.device)
        x_t = self.diffusion.add_noise(x0, torch.randn_like(x0), t)
        x_cond = None
        if self.config.cond_source == 'input':
            x_cond, p = x0, self.config.dropout
            if p > 0:  # the C-Net's input dropout, drawn here so that the conditions see the same kept items
                keep = (torch.rand_like(x0) >= p).to(x0.dtype) / (1.0 - p)
                x_t, x_cond = x_t * keep, x0 * keep
        per_user = self.criterion(self.denoise(x_t, users, t, x_cond), x0)
        self.step_sampler.update(t, per_user)
        return (weight * per_user).mean()

    # ------------------------------------------------------------------------------------------ inference
    @torch.no_grad()
    def generate(self, users: Tensor, inference: Optional[str] = None, steps: Optional[int] = None,
                 seed: int = 0) -> Tensor:
        r"""Predicted behaviours :math:`\hat{\mathbf{x}}` ``[len(users), num_items]``.

        Args:
            users (Tensor): User ids.
            inference (str, optional): ``'forward_free'`` or ``'common'``; :obj:`None`: the config's.
            steps (int, optional): :math:`T'` of the common strategy; :obj:`None`: the config's
                (0 there means :math:`T`).
            seed (int): Seed of the common strategy's corruption noise. (default: :obj:`0`)
        """
        users = users.to(self.rowptr.device)  # the evaluator hands CPU ids to a model on any device
        x, t, inference = self._last_call(users, inference, steps, seed)
        out = self.denoise(x, users, t)
        return out if inference == 'forward_free' else self.diffusion.step(out, 0, x)

    def _last_call(self, users: Tensor, inference: Optional[str], steps: Optional[int], seed: int
                   ) -> Tuple[Tensor, Tensor, str]:
        """``(x, t, inference)``: the input and the (0-based) step of the last C-Net call of the inference
        strategy for :obj:`users` (on the model's device), after the strategy's earlier reverse steps
        (:meth:`generate`)."""
        inference = inference or self.config.inference
        check_choice('inference', inference, INFERENCES)
        x0 = self.behaviours(users)
        if inference == 'forward_free':
            return x0, torch.zeros(users.numel(), device=x0.device), inference
        T = self.diffusion.num_steps
        steps = steps if steps is not None else (self.config.inference_steps or T)
        if not 1 <= steps <= T:
            raise ValueError(f'steps: must be in 1..{T}, got {steps}')
        noise = self.user_noise(users, seed).to(x0.device)
        x = self.diffusion.add_noise(x0, noise, torch.full((users.numel(),), steps - 1, device=x0.device))
        for step in range(steps - 1, 0, -1):  # the reverse steps before the last, as p_sample_loop takes them
            t = torch.full((users.numel(),), step, device=x0.device, dtype=torch.long)
            x = self.diffusion.step(self.denoise(x, users, t), step, x)
        return x, torch.zeros(users.numel(), device=x0.device, dtype=torch.long), inference

    def user_noise(self, users: Tensor, seed: int = 0) -> Tensor:
        """Standard normal noise ``[len(users), num_items]``, each row drawn from a CPU generator seeded with
        (:obj:`seed`, user id): the same for a user whatever block it is evaluated in."""
        gen = torch.Generator()
        rows = []
        for u in users.tolist():
            gen.manual_seed(int(seed) * 1_000_003 + int(u))
            rows.append(torch.randn(self.num_items, generator=gen))
        return torch.stack(rows) if rows else torch.zeros(0, self.num_items)

    def scorer(self, adj: BipartiteAdj) -> Callable[[Tensor], Tensor]:
        return lambda users: self.generate(users)

    def get_embedding(self, adj: Any = None, block_size: int = 2048) -> Tuple[Tensor, Tensor]:
        r"""``(user [num_users, fc_dim + 1], item [num_items, fc_dim + 1])`` whose inner products are
        :meth:`generate`'s scores (the configured inference strategy), so that LD4MRec fits the
        :class:`Recommender` contract. The C-Net's last layer is linear, :math:`\hat{\mathbf{x}}_u =
        \mathbf{W}\mathbf{h}_u + \mathbf{b}`, and the last reverse step of the common strategy multiplies
        it by :math:`c_0` (:math:`\tilde{\mu}_0 = c_0 \hat{\mathbf{x}}_0`, :math:`c_0 = 1` up to
        rounding): the user side is :math:`c_0 [\mathbf{h}_u ; 1]`, the item side :math:`[\mathbf{w}_i ;
        b_i]`. :obj:`adj` is not used (the model reads its own training rows); users are processed in blocks
        of :obj:`block_size`."""
        rows = []
        scale = 1.0
        for start in range(0, self.num_users, block_size):
            users = torch.arange(start, min(start + block_size, self.num_users), device=self.rowptr.device)
            x, t, inference = self._last_call(users, None, None, 0)
            rows.append(self.cnet.hidden_state(*self._cnet_inputs(x, users, t)))
            if inference != 'forward_free':
                scale = float(self.diffusion.posterior_mean_coef1[0])
        h = torch.cat(rows)
        user = torch.cat([h, h.new_ones(h.size(0), 1)], dim=1) * scale
        item = torch.cat([self.cnet.fc_out.weight, self.cnet.fc_out.bias.unsqueeze(1)], dim=1)
        return user, item

    def __repr__(self) -> str:
        c = self.config
        return (f'{self.__class__.__name__}({self.num_users}, {self.num_items}, modalities={self.modalities}, '
                f'fc_dim={c.fc_dim}, hidden_dim={c.hidden_dim}, steps={c.diffusion_steps}, '
                f'inference={c.inference!r}, use_cg={c.use_cg}, use_pg={c.use_pg})')
