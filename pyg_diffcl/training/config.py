r"""Typed run configuration: dataclasses, layered YAML files and ``--set key=value`` overrides.

A run's configuration has four sections::

    model: {name: lightgcn, embedding_dim: 64, num_layers: 2, reg_weight: 1.0e-4}
    data:  {name: tiktok, modalities: null, cold_users: error}
    train: {epochs: 1000, batch_size: 2048, lr: 0.001, weight_decay: 0.0, patience: 50, min_epochs: 0,
            patience_window: 5, seed: 0, device: cpu, backend: auto, deterministic: false, checkpoint_every: 1,
            ddp_split: batches}
    eval:  {ks: [10, 20, 50], metric: recall@20, block_size: 2048, mask_valid_for_test: false}

Layers, each overriding the one before: the dataclass defaults; the packaged
``pyg_diffcl/configs/<data set>.yaml`` section for the model, when the data set is an embedded one; the
user's ``--config FILE.yaml``; ``--set section.key=value``; the explicit flags (``--epochs``, ...). Every
key and value is checked against the dataclass fields: unknown keys and values of the wrong type are a
:class:`~pyg_diffcl.errors.ConfigError` naming the key.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import yaml

from ..checks import Validated
from ..datasets.neighbor import NEGATIVES, valid_fan_out
from ..datasets.sampler import NEGATIVE_POOLS
from ..errors import ConfigError
from ..evaluation import METRICS
from ..models import MODELS

CONFIG_DIR = Path(__file__).resolve().parent.parent / 'configs'
SECTIONS = ('model', 'data', 'train', 'eval')
#: What ``data.cold_users`` may say (see :class:`DataConfig`).
COLD_USER_POLICIES = ('error', 'keep', 'drop')


@dataclass
class DataConfig(Validated):
    #: An embedded data set's name (``tiktok``) or a data set directory.
    name: str = 'tiktok'
    #: Modalities to load; :obj:`None`: every ``*_feat.npy``; ``[]``: none.
    modalities: Optional[List[str]] = None
    #: Users with validation or test interactions but none in training ("cold" users; no collaborative model
    #: can learn them): ``error`` (the default: the run stops, naming the file, line and user), ``keep``
    #: (they are ranked and counted in the metrics, as MMRec's protocol does; a warning gives their number)
    #: or ``drop`` (left out of validation and test; a warning gives their number).
    cold_users: str = 'error'
    #: The neighbour search of the item-item graphs: ``auto`` (exact below 100,000 items, approximate on faiss
    #: above when it is installed), ``exact`` or ``faiss``. See :func:`~pyg_diffcl.ops.knn_graph`.
    knn_method: str = 'auto'

    def validate(self) -> None:
        """Check every value; raises :class:`ValueError` naming the field."""
        from ..ops.knn import KNN_METHODS
        if self.knn_method not in KNN_METHODS:
            raise ValueError(f"knn_method: expected one of {', '.join(KNN_METHODS)}, got {self.knn_method!r}")
        if self.knn_method == 'faiss':
            from ..ops.ann import faiss_available
            if not faiss_available():
                raise ValueError("knn_method: faiss needs the faiss package (pip install pyg-diffcl[faiss])")
        if self.cold_users not in COLD_USER_POLICIES:
            raise ValueError(f"cold_users: expected one of {', '.join(COLD_USER_POLICIES)}, got "
                             f"{self.cold_users!r}")


@dataclass
class TrainConfig(Validated):
    epochs: int = 1000
    batch_size: int = 2048
    lr: float = 1e-3
    #: Adam's L2 weight decay on every parameter (DiffRec / LD4MRec style; the BPR models regularise in the loss).
    weight_decay: float = 0.0
    #: Adam's fused kernel (``torch.optim.Adam(fused=True)``): one pass over each parameter instead of a
    #: dozen; the same update up to float rounding (``benchmarks/train_speed.py --fused-adam`` times it).
    fused_adam: bool = False
    #: Stop after this many epochs without a better validation metric (on the smoothed curve when
    #: ``patience_window`` > 1; see :class:`~pyg_diffcl.training.Trainer`). The default rule, patience 50 on
    #: the 5-epoch mean, is the one that held for every model over five or more seeds (docs/seeds.md and
    #: docs/baselines.md: a patience of 20 on the raw curve stopped VBPR, FREEDOM and LightGCN early on
    #: plateaus or noise for some seeds).
    patience: int = 50
    #: Early stopping never stops before this many epochs have run (a floor that carries a run over an
    #: early validation plateau). ``0``: no floor.
    min_epochs: int = 0
    #: Patience counts epochs since the best trailing mean of this many epochs' validation metric (``1``: the
    #: raw curve). The epoch kept is still the best raw validation epoch; the mean only decides when to stop.
    patience_window: int = 5
    seed: int = 0
    device: str = 'cpu'
    #: Sparse backend of the propagation (see :data:`pyg_diffcl.ops.BACKENDS`).
    backend: str = 'auto'
    #: Deterministic kernels (``torch.use_deterministic_algorithms``; on CUDA also the ``index_add`` sparse
    #: backend for ``auto`` and a fixed cuBLAS workspace). CPU runs are reproducible without it.
    deterministic: bool = False
    #: Write the resume checkpoint (``last.pt``) every this many epochs; ``0``: only on SIGINT. Its cost per
    #: epoch is measured by ``benchmarks/reliability_cost.py`` (``docs/reliability.md``).
    checkpoint_every: int = 1
    #: Under ``torchrun``: ``batches`` (each rank takes every N-th batch: N times fewer steps per epoch, each
    #: of batch size N x batch_size) or ``examples`` (each rank takes 1/N of every batch: a single process's
    #: steps exactly). See :class:`~pyg_diffcl.training.distributed.ShardedSampler`.
    ddp_split: str = 'batches'
    #: ``full``: every step propagates the whole graph. ``neighbor``: each batch propagates over its own sampled
    #: subgraph (PyG's ``LinkNeighborLoader``; :class:`~pyg_diffcl.datasets.NeighborBPRSampler`), for models
    #: that support it (LightGCN, DiffCL); the others refuse it.
    loader: str = 'full'
    #: The fan-out per hop of ``loader: neighbor``, in PyG's convention (``-1``: every neighbour); ``null``:
    #: 10 per hop. One hop per layer; DiffCL samples its item-item graphs as well, one more hop per
    #: item-graph layer (``num_layers + item_graph_layers`` entries).
    num_neighbors: Optional[List[int]] = None
    #: The weights of sampled edges: ``degree`` (the whole graph's normalisation times :math:`d_v / s_v`, an
    #: unbiased estimate of each layer's full sum) or ``none`` (the whole graph's normalisation alone).
    neighbor_scaling: str = 'degree'
    #: The item-item neighbours sampled per item in a model's item-item graphs (DiffCL's modality graphs) with
    #: ``loader: neighbor``; ``-1``: all of them (the graph's k). Fewer are reweighted by ``neighbor_scaling``.
    item_graph_neighbors: int = -1
    #: The negative items of ``loader: neighbor``: ``unseen`` (two uniform draws per triple, the first that is not
    #: one of the user's training items kept, as the whole-graph sampler draws them) or ``any`` (PyG's single
    #: uniform draw, sometimes a training item; every sampled run made before this option existed). A
    #: ``config.yaml`` without the key reads as ``any`` for ``loader: neighbor``.
    neighbor_negatives: str = 'unseen'
    #: The negative items of ``loader: full`` (:class:`~pyg_diffcl.datasets.BPRSampler`): ``all`` (any item the
    #: user has not trained on) or ``trained`` (only among the items with a training interaction, as MMRec and
    #: the official code of the models built on it draw them; an item seen only in validation or test is then
    #: never a negative). ``loader: neighbor`` has its own ``neighbor_negatives``.
    negative_pool: str = 'all'
    #: ``adam``, or ``sparse_adam`` with ``loader: neighbor``: the embedding tables take row-sparse gradients
    #: and "lazy" Adam (:class:`~pyg_diffcl.training.optim.RowSparseAdam`, torch's ``SparseAdam`` at a
    #: fraction of its cost), so that a step costs what the sampled subgraph touches, not the size of the
    #: tables (see :class:`~pyg_diffcl.training.Trainer`).
    optimizer: str = 'adam'

    def validate(self) -> None:
        """Check every value; raises :class:`ValueError` naming the field."""
        for key in ('epochs', 'batch_size'):
            if getattr(self, key) <= 0:
                raise ValueError(f'{key}: must be positive, got {getattr(self, key)}')
        if self.ddp_split not in ('batches', 'examples'):
            raise ValueError(f"ddp_split: expected batches or examples, got {self.ddp_split!r}")
        for key in ('checkpoint_every', 'patience', 'min_epochs'):
            if getattr(self, key) < 0:
                raise ValueError(f'{key}: must be non-negative, got {getattr(self, key)}')
        if self.patience_window < 1:
            raise ValueError(f'patience_window: must be at least 1, got {self.patience_window}')
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f'lr: must be a positive number, got {self.lr}')
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ValueError(f'weight_decay: must be a non-negative number, got {self.weight_decay}')
        if not 0 <= self.seed < 2**63:  # numpy and torch take seeds in this range
            raise ValueError(f'seed: must be in 0..2^63-1, got {self.seed}')
        if self.device.split(':')[0] not in ('cpu', 'cuda'):
            raise ValueError(f"device: expected cpu or cuda, got {self.device!r}")
        if self.loader not in ('full', 'neighbor'):
            raise ValueError(f"loader: expected full or neighbor, got {self.loader!r}")
        if self.num_neighbors is not None and (not self.num_neighbors
                                               or not all(valid_fan_out(n) for n in self.num_neighbors)):
            raise ValueError(f'num_neighbors: expected one fan-out per layer, each positive or -1 (all), got '
                             f'{self.num_neighbors}')
        if not valid_fan_out(self.item_graph_neighbors):
            raise ValueError(f'item_graph_neighbors: expected a positive fan-out or -1 (all), got '
                             f'{self.item_graph_neighbors}')
        if self.negative_pool not in NEGATIVE_POOLS:
            raise ValueError(f'negative_pool: expected one of {", ".join(NEGATIVE_POOLS)}, got '
                             f'{self.negative_pool!r}')
        if self.negative_pool != 'all' and self.loader != 'full':
            raise ValueError(f'negative_pool: {self.negative_pool} applies to loader: full; loader: neighbor draws '
                             f'its negatives by neighbor_negatives')
        if self.neighbor_negatives not in NEGATIVES:
            raise ValueError(f'neighbor_negatives: expected one of {", ".join(NEGATIVES)}, got '
                             f'{self.neighbor_negatives!r}')
        if self.optimizer not in ('adam', 'sparse_adam'):
            raise ValueError(f"optimizer: expected adam or sparse_adam, got {self.optimizer!r}")
        if self.optimizer == 'sparse_adam' and self.loader != 'neighbor':
            raise ValueError('optimizer: sparse_adam needs train.loader=neighbor (on the whole graph every row of '
                             'the tables has a gradient at every step)')
        if self.optimizer == 'sparse_adam' and self.weight_decay:
            raise ValueError('optimizer: sparse_adam has no weight decay (set train.weight_decay=0)')
        if self.neighbor_scaling not in ('none', 'degree'):
            raise ValueError(f"neighbor_scaling: expected none or degree, got {self.neighbor_scaling!r}")
        from ..ops import BACKENDS
        if self.backend not in ('auto',) + BACKENDS:
            raise ValueError(f"backend: expected auto or one of {', '.join(BACKENDS)}, got {self.backend!r}")


@dataclass
class EvalConfig(Validated):
    ks: List[int] = field(default_factory=lambda: [10, 20, 50])
    #: The validation metric that selects the epoch (``recall@20``, ``ndcg@20``, ...).
    metric: str = 'recall@20'
    block_size: int = 2048
    #: Also exclude validation items when ranking for the test split.
    mask_valid_for_test: bool = False
    #: Score only this many validation users, a fixed sample drawn with ``valid_users_seed``, when selecting the
    #: epoch (``null``: every validation user). The test split always scores every user. ``config.yaml``
    #: records the sample (its size, seed and the sha256 of its sorted user ids).
    valid_users: Optional[int] = None
    valid_users_seed: int = 0

    def validate(self) -> None:
        """Check every value; raises :class:`ValueError` naming the field."""
        if self.valid_users is not None and self.valid_users <= 0:
            raise ValueError(f'valid_users: must be positive (or null: every user), got {self.valid_users}')
        if not 0 <= self.valid_users_seed < 2**63:
            raise ValueError(f'valid_users_seed: must be in 0..2^63-1, got {self.valid_users_seed}')
        if self.block_size <= 0:
            raise ValueError(f'block_size: must be positive, got {self.block_size}')
        if not self.ks or any(k <= 0 for k in self.ks):
            raise ValueError(f'ks: must be positive integers, got {self.ks}')
        name, _, k = self.metric.partition('@')
        if name not in METRICS or not k.isdigit() or int(k) not in self.ks:
            raise ValueError(f"metric: {self.metric!r} is not one of the computed metrics "
                             f"({', '.join(METRICS)} at eval.ks={self.ks}, for example 'recall@20')")


@dataclass
class RunConfig:
    model_name: str
    model: Any
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> Dict[str, Any]:
        return {
            'model': {'name': self.model_name, **dataclasses.asdict(self.model)},
            'data': dataclasses.asdict(self.data),
            'train': dataclasses.asdict(self.train),
            'eval': dataclasses.asdict(self.eval),
        }


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check/convert :obj:`value` to the annotated type :obj:`tp`, or raise :class:`ConfigError`."""
    origin = typing.get_origin(tp)
    if origin is Union:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if origin in (list, List):
        (inner,) = typing.get_args(tp)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and inner is not str:
            value = [v for v in str(value).split(',') if v != '']
        elif isinstance(value, str):
            value = [v for v in value.split(',') if v != '']
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f'{key}: expected a list, got {value!r}')
        return [_coerce(v, inner, key) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ('true', 'false', 'yes', 'no', '1', '0'):
            return value.lower() in ('true', 'yes', '1')
        raise ConfigError(f'{key}: expected true or false, got {value!r}')
    if tp in (int, float):
        exact = (int,) if tp is int else (int, float)
        if isinstance(value, exact) and not isinstance(value, bool):
            return tp(value)
        if isinstance(value, str):  # YAML reads '1e-4' as a string
            try:
                return tp(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected {'an integer' if tp is int else 'a number'}, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f'{key}: expected a string, got {value!r}')
    raise TypeError(f'unsupported config field type {tp!r}')  # pragma: no cover - programming error


def _build(cls: Any, values: Dict[str, Any], section: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            raise ConfigError(f"unknown config key '{section}.{key}' (known: {', '.join(names)})")
        kwargs[key] = _coerce(value, hints[key], f'{section}.{key}')
    try:
        return cls(**kwargs)  # each dataclass validates itself, naming the field
    except ValueError as e:
        raise ConfigError(f'{section}.{e}') from None


def _merge(base: Dict[str, Any], over: Dict[str, Any]) -> Dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def merge_layers(layers: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Merge configuration dicts, later layers overriding earlier ones key by key."""
    merged: Dict[str, Any] = {}
    for layer in layers:
        if not isinstance(layer, dict):
            raise ConfigError(f'a configuration layer must be a mapping, got {layer!r}')
        for section, values in layer.items():
            if section not in SECTIONS:
                raise ConfigError(f"unknown config section '{section}' (known: {', '.join(SECTIONS)})")
            if not isinstance(values, dict):
                raise ConfigError(f"config section '{section}' must be a mapping, got {values!r}")
        merged = _merge(merged, layer)
    return merged


def load_yaml(path: str | Path) -> Dict[str, Any]:
    """Read a configuration file (a mapping of sections), or raise :class:`ConfigError`. A name that is not a
    file but a packaged preset (``pyg_diffcl/configs/presets/<name>.yaml``, e.g. ``diffcl-baby``) loads
    the preset."""
    path = Path(path)
    preset = CONFIG_DIR / 'presets' / f'{path}.yaml'
    if not path.exists() and preset.is_file():
        path = preset
    try:
        with open(path) as f:
            raw = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f'--config {path}: cannot read ({e.strerror})') from None
    except yaml.YAMLError as e:
        mark = getattr(e, 'problem_mark', None)
        line = f':{mark.line + 1}' if mark is not None else ''
        raise ConfigError(f'{path}{line}: not valid YAML ({getattr(e, "problem", e)})') from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f'{path}: expected a mapping of sections (model, data, train, eval)')
    return raw


def parse_set(items: Sequence[str]) -> Dict[str, Any]:
    """``['train.lr=0.01', 'model.num_layers=3']`` -> nested dict (values parsed as YAML scalars)."""
    out: Dict[str, Any] = {}
    for item in items:
        if '=' not in item:
            raise ConfigError(f'--set {item}: expected section.key=value')
        key, value = item.split('=', 1)
        parts = key.strip().split('.')
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f'--set {item}: the key must be section.key (sections: model, data, train, '
                              f'eval)')
        try:
            parsed = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            parsed = value
        out.setdefault(parts[0], {})[parts[1]] = parsed
    return out


def packaged_config(dataset: str, model: str) -> Dict[str, Any]:
    """The packaged settings for an embedded data set and a model: the file's ``common`` section (settings of
    the data set itself, for every model) under the model's tuned section (``{}`` if none)."""
    path = CONFIG_DIR / f'{dataset}.yaml'
    if not path.is_file():
        return {}
    raw = load_yaml(path)
    return _merge(raw.get('common', {}) or {}, raw.get(model, {}) or {})


def packaged_for(data: str, model: Optional[str]) -> Dict[str, Any]:
    """The packaged settings (:func:`packaged_config`) that apply to the data set :obj:`data` names, chosen by
    the directory it resolves to, never by the name: ``--data tiktok`` with a folder ``./tiktok`` in the
    working directory trains on that folder with the defaults, and the embedded data set's own directory,
    given as a path, gets its packaged settings. ``{}`` for any other directory, a missing one, or no model.
    """
    from ..datasets.mmrec import EMBEDDED_DATASETS, resolve_data_dir
    if not model:
        return {}
    try:
        root = resolve_data_dir(data).resolve()
    except (ValueError, OSError):
        return {}
    for name, path in EMBEDDED_DATASETS.items():
        if root == path.resolve():
            return packaged_config(name, model)
    return {}


def resolve_config(model: Optional[str] = None, layers: Sequence[Dict[str, Any]] = ()) -> RunConfig:
    """Merge configuration layers (dicts with sections) over the defaults into a checked :class:`RunConfig`.

    The model name comes from the last layer that sets ``model.name``, else from :obj:`model`.
    """
    merged = merge_layers(layers)
    model_values = dict(merged.get('model', {}))
    name = model_values.pop('name', None) or model
    if name is None:
        raise ConfigError('no model given (--model or model.name)')
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r} (available: {', '.join(sorted(MODELS))})")
    cfg = RunConfig(
        model_name=name,
        model=_build(MODELS[name].config_cls, model_values, 'model'),
        data=_build(DataConfig, merged.get('data', {}), 'data'),
        train=_build(TrainConfig, merged.get('train', {}), 'train'),
        eval=_build(EvalConfig, merged.get('eval', {}), 'eval'),
    )
    check_config(cfg)
    return cfg


def check_config(cfg: RunConfig) -> None:
    """Validate every section again (each dataclass checks itself: a value changed after construction is
    caught here), as :class:`ConfigError` naming the ``section.key``."""
    for section in SECTIONS:
        obj = getattr(cfg, section)
        validate = getattr(obj, 'validate', None)
        if validate is None:
            continue
        try:
            validate()
        except ValueError as e:
            raise ConfigError(f'{section}.{e}') from None
    if cfg.train.negative_pool != 'all' and not MODELS[cfg.model_name].draws_negatives:
        raise ConfigError(f'train.negative_pool={cfg.train.negative_pool}: model {cfg.model_name} draws no '
                          f'negative items; use train.negative_pool=all')
    if cfg.train.loader == 'neighbor':
        from ..models import Recommender
        if MODELS[cfg.model_name].make_neighbor_sampler is Recommender.make_neighbor_sampler:
            able = sorted(n for n, c in MODELS.items()
                          if c.make_neighbor_sampler is not Recommender.make_neighbor_sampler)
            raise ConfigError(f'train.loader=neighbor: model {cfg.model_name} trains on the whole graph only '
                              f'(sampled subgraphs: {", ".join(able)}); use train.loader=full')
        if cfg.train.ddp_split == 'examples':
            raise ConfigError('train.loader=neighbor with train.ddp_split=examples: a sampled batch is one '
                              'subgraph and is not split; use ddp_split=batches')


#: Keys added after runs had been made without them: (section, key) -> the value such a run had, by the run's
#: ``train.loader`` (a loader missing here: the current default).
_ADDED_LATER = {('train', 'neighbor_negatives'): {'neighbor': 'any'}}


def from_dict(raw: Dict[str, Any]) -> RunConfig:
    """Rebuild a :class:`RunConfig` from :meth:`RunConfig.to_dict`'s output (a run's ``config.yaml``). A key
    added since the file was written takes the value its run had (``_ADDED_LATER``), not today's default."""
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    loader = (raw.get('train') or {}).get('loader', TrainConfig.loader)
    for (section, key), by_loader in _ADDED_LATER.items():
        values = raw.setdefault(section, {})
        if isinstance(values, dict) and key not in values and loader in by_loader:
            values[key] = by_loader[loader]
    return resolve_config(layers=[raw])
