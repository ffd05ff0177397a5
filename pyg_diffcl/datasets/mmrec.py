r"""A multimodal recommendation data set in MMRec's layout, as PyG :class:`HeteroData`."""
from __future__ import annotations

import hashlib
import json
import os
import os.path as osp
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import HeteroData, InMemoryDataset
from torch_geometric.transforms import ToUndirected

from ..errors import DataError
from ..ops.item_graph import item_knn_graph
from ..ops.ann import effective_method
from ..ops.knn import KNN_VERSION
from .files import atomic_write, file_lock
from .io import SPLITS, find_data_files, read_features, read_interactions, sha256_file

#: Data sets shipped inside the package, usable by name (``--data tiktok``).
EMBEDDED_DATASETS: Dict[str, Path] = {
    'tiktok': Path(__file__).resolve().parent / 'embedded' / 'tiktok',
}
#: The training edge type; its reverse ``('item', 'rev_rates', 'user')`` is added by :class:`ToUndirected`.
EDGE_TYPE = ('user', 'rates', 'item')
REV_EDGE_TYPE = ('item', 'rev_rates', 'user')
_FORMAT_VERSION = 1


def resolve_data_dir(data: str | os.PathLike) -> Path:
    """Map an embedded data set's name (``'tiktok'``) or a directory to the data set directory."""
    if isinstance(data, str) and data in EMBEDDED_DATASETS and not osp.isdir(data):
        return EMBEDDED_DATASETS[data]
    path = Path(data).expanduser()
    if not path.is_dir():
        names = ', '.join(sorted(EMBEDDED_DATASETS))
        raise DataError(f'no such data set directory (embedded data sets: {names})', path)
    return path


def default_cache_dir() -> Path:
    """Where processed data sets are cached: ``$PYG_DIFFCL_CACHE`` or ``~/.cache/pyg_diffcl``."""
    return Path(os.environ.get('PYG_DIFFCL_CACHE', Path.home() / '.cache' / 'pyg_diffcl'))


def modality_key(name: str) -> str:
    """The item-attribute name under which a modality's features are stored: ``x_<name>``."""
    return f'x_{name}'


class MMRecDataset(InMemoryDataset):
    r"""A multimodal recommendation data set in MMRec's layout as one
    :class:`~torch_geometric.data.HeteroData` graph.

    The directory holds one tab-separated ``*.inter`` file with the columns ``userID``, ``itemID``,
    ``x_label`` (``0`` train, ``1`` validation, ``2`` test; optional ``rating`` and ``timestamp``) and zero
    or more ``<modality>_feat.npy`` item-feature matrices (row :math:`i` = item :math:`i`). The graph has:

    * node types ``'user'`` and ``'item'`` (``num_nodes`` = max ID + 1);
    * ``data['item'].x_<modality>``: float32 ``[num_items, dim]`` per modality;
    * ``data['user', 'rates', 'item'].edge_index``: the **training** interactions, and the reverse
      ``('item', 'rev_rates', 'user')`` added by :class:`~torch_geometric.transforms.ToUndirected`;
      ``rating`` / ``time`` edge attributes when the file has those columns;
    * ``data['user', 'rates', 'item'].valid_edge_label_index`` and ``.test_edge_label_index``: the held-out
      interactions ``[2, n]`` (user, item). :meth:`split` returns a shallow copy whose ``edge_label_index``
      is one of them, like the outputs of :class:`~torch_geometric.transforms.RandomLinkSplit`.

    The processed graph is cached under :obj:`root` (default ``$PYG_DIFFCL_CACHE`` or
    ``~/.cache/pyg_diffcl``) in a folder keyed on the files' paths, sizes and modification times and on
    the selected modalities, so an edited file is never served stale. The data directory itself is never
    written to.

    Args:
        data (str or os.PathLike): A data set directory, or the name of an embedded data set
            (``'tiktok'``).
        modalities (Sequence[str], optional): The modalities to load (:obj:`None`: every
            ``*_feat.npy``; ``[]``: none). Each one is validated. (default: :obj:`None`)
        root (str, optional): The cache root. (default: :obj:`None`)
        transform (callable, optional): A transform applied on access. (default: :obj:`None`)
        force_reload (bool, optional): Re-process even when cached. (default: :obj:`False`)
        log (bool, optional): Print processing messages. (default: :obj:`False`)

    Example:
        >>> dataset = MMRecDataset('tiktok')
        >>> data = dataset[0]
        >>> data['user', 'rates', 'item'].edge_index.shape
        torch.Size([2, 59541])
    """
    def __init__(
        self,
        data: str | os.PathLike = 'tiktok',
        modalities: Optional[Sequence[str]] = None,
        root: Optional[str] = None,
        transform: Optional[Callable] = None,
        force_reload: bool = False,
        log: bool = False,
    ) -> None:
        self.data_dir = resolve_data_dir(data)
        self.files = find_data_files(self.data_dir).select(
            None if modalities is None else list(modalities))
        self.name = self.data_dir.name
        cache_root = Path(root) if root is not None else default_cache_dir()
        self._processed_dir = osp.join(str(cache_root), f'{self.name}-{self._cache_key()}')
        os.makedirs(cache_root, exist_ok=True)
        # Runs started together on a fresh cache (a grid search) would otherwise all process the data and
        # write the same files: the first builds the entry, the others wait and then load it. Loading under the
        # lock too means no reader ever sees a file being written.
        with file_lock(f'{self._processed_dir}.lock'):
            super().__init__(str(cache_root), transform, force_reload=force_reload, log=log)
            self.load(self.processed_paths[0], data_cls=HeteroData)
            with open(self.processed_paths[1]) as f:
                self.meta: Dict[str, Any] = json.load(f)

    # ------------------------------------------------------------------ PyG dataset plumbing
    @property
    def raw_dir(self) -> str:
        return str(self.data_dir)

    @property
    def raw_file_names(self) -> List[str]:
        return [self.files.inter.name] + [p.name for p in self.files.features.values()]

    @property
    def processed_dir(self) -> str:
        return self._processed_dir

    def _cache_key(self) -> str:
        """A digest of the files' paths, inodes, sizes, modification and status-change times, and of the selected
        modalities. The status-change time (``st_ctime``) is in the key because the modification time alone can
        be carried over to different content (``cp -p``, ``rsync -a``, ``touch -r``, a tar extract), which
        would serve the old processed data and checksums; no tool can set ``st_ctime``."""
        key = {'version': _FORMAT_VERSION, 'modalities': self.modalities, 'files': []}
        for p in [self.files.inter] + [self.files.features[m] for m in self.modalities]:
            st = p.stat()
            key['files'].append([str(p.resolve()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns])
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def processed_file_names(self) -> List[str]:
        return ['data.pt', 'meta.json']

    def download(self) -> None:
        raise DataError('data set files are missing', self.data_dir)

    def process(self) -> None:
        table = read_interactions(self.files.inter)
        feats = {m: read_features(self.files.features[m], table.num_items) for m in self.modalities}

        data = HeteroData()
        data['user'].num_nodes = table.num_users
        data['item'].num_nodes = table.num_items
        for m, x in feats.items():
            data['item'][modality_key(m)] = torch.from_numpy(x)
        train = table.mask('train')
        store = data[EDGE_TYPE]
        store.edge_index = torch.from_numpy(np.stack([table.user[train], table.item[train]]))
        if table.rating is not None:
            store.rating = torch.from_numpy(table.rating[train]).float()
        if table.timestamp is not None:
            store.time = torch.from_numpy(table.timestamp[train])
        data = ToUndirected()(data)
        for split in ('valid', 'test'):
            m = table.mask(split)
            data[EDGE_TYPE][f'{split}_edge_label_index'] = torch.from_numpy(
                np.stack([table.user[m], table.item[m]]))

        train_items = np.zeros(table.num_items, dtype=bool)
        train_items[table.item[train]] = True
        train_users = np.zeros(table.num_users, dtype=bool)
        train_users[table.user[train]] = True
        meta = {
            'name': self.name,
            'path': str(self.data_dir.resolve()),
            'num_users': table.num_users,
            'num_items': table.num_items,
            'interactions': {s: int(table.mask(s).sum()) for s in SPLITS},
            'duplicates_dropped': table.num_duplicates,
            'modalities': {m: int(x.shape[1]) for m, x in feats.items()},
            'items_without_training_interactions': int((~train_items).sum()),
            'users_without_training_interactions': int((~train_users).sum()),
            'columns': [c for c, v in (('rating', table.rating), ('timestamp', table.timestamp))
                        if v is not None],
            'sha256': {p.name: sha256_file(p) for p in
                       [self.files.inter] + [self.files.features[m] for m in self.modalities]},
        }
        self.save([data], self.processed_paths[0])
        # written last and atomically: its presence tells a later run that the entry is complete (a run killed
        # while writing data.pt leaves no meta.json, and the entry is processed again)
        atomic_write(self.processed_paths[1], lambda f: f.write(json.dumps(meta, indent=2).encode()))

    # ------------------------------------------------------------------ conveniences
    @property
    def modalities(self) -> List[str]:
        """The loaded modality names, sorted."""
        return self.files.available_modalities

    @property
    def num_users(self) -> int:
        return int(self.meta['num_users'])

    @property
    def num_items(self) -> int:
        return int(self.meta['num_items'])

    def features(self) -> Dict[str, Tensor]:
        """``{modality: [num_items, dim] float32}`` of the loaded modalities."""
        item = self[0]['item']
        return {m: item[modality_key(m)] for m in self.modalities}

    #: The neighbour search of :meth:`item_graph` (``'auto'``, ``'exact'`` or ``'faiss'``; see
    #: :func:`~pyg_diffcl.ops.knn_graph`). A run sets it from ``data.knn_method``.
    knn_method: str = 'auto'

    def item_graph(self, modality: str, k: int = 10, loop: bool = True) -> Tuple[Tensor, Tensor]:
        r"""The normalised top-:obj:`k` cosine item-item graph of one modality
        (:func:`~pyg_diffcl.ops.item_knn_graph`), computed once and cached in the processed directory under a
        name holding :obj:`k`, :obj:`loop`, a hash of the feature values and the version of the KNN algorithm
        (:data:`pyg_diffcl.ops.knn.KNN_VERSION`), so that changed features or a changed tie rule never get a
        stale graph. An approximate graph (:attr:`knn_method`) is cached under its own name."""
        if modality not in self.modalities:
            raise DataError(f"no modality {modality!r} loaded (loaded: {', '.join(self.modalities) or 'none'})",
                            self.data_dir)
        x = self.features()[modality]
        digest = hashlib.sha256(x.contiguous().numpy().tobytes()).hexdigest()[:16]
        method = effective_method(self.knn_method, x.size(0))
        tag = '' if method == 'exact' else f'_{method}'
        path = (Path(self.processed_dir)
                / f'item_knn_v{KNN_VERSION}_{modality}_k{k}_loop{int(loop)}_{digest}{tag}.pt')
        with file_lock(path.with_suffix('.lock')):  # concurrent runs compute it once
            if path.is_file():
                cached = torch.load(path, weights_only=True)
                return cached['edge_index'], cached['edge_weight']
            edge_index, edge_weight = item_knn_graph(x, k, loop, method=method)
            atomic_write(path, lambda f: torch.save({'edge_index': edge_index, 'edge_weight': edge_weight}, f))
        return edge_index, edge_weight

    def user_masks(self) -> Tuple[Tensor, Tensor]:
        """``(trained, held_out)``: ``[num_users]`` bool masks of the users with training interactions and of
        those with validation or test interactions."""
        store = self[0][EDGE_TYPE]
        trained = torch.zeros(self.num_users, dtype=torch.bool)
        trained[store.edge_index[0]] = True
        held_out = torch.zeros(self.num_users, dtype=torch.bool)
        for split in ('valid', 'test'):
            held_out[store[f'{split}_edge_label_index'][0]] = True
        return trained, held_out

    def split(self, split: str) -> HeteroData:
        """A shallow copy of the graph whose ``edge_label_index`` holds the ``'valid'`` or ``'test'``
        interactions (for ``'train'``: the training interactions)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        data = self[0].clone()
        store = data[EDGE_TYPE]
        store.edge_label_index = store.edge_index if split == 'train' else store[f'{split}_edge_label_index']
        return data

    def __repr__(self) -> str:
        mods = ', '.join(f'{m}={d}' for m, d in self.meta['modalities'].items()) or 'none'
        inter = self.meta['interactions']
        return (f'{self.__class__.__name__}({self.name}, users={self.num_users}, items={self.num_items}, '
                f"train={inter['train']}, valid={inter['valid']}, test={inter['test']}, "
                f'modalities=[{mods}])')
