r"""Data sets: files in MMRec's layout become :class:`torch_geometric.data.HeteroData`."""
from .files import atomic_write, file_lock
from .io import read_interactions, read_features, find_data_files, InteractionTable, DataFiles
from .mmrec import MMRecDataset, EMBEDDED_DATASETS, resolve_data_dir
from .sampler import BPRSampler, UserSampler
from .neighbor import NeighborBPRSampler, SubgraphBatch
from .synthetic import planted_interactions, powerlaw_interactions

__all__ = [
    'read_interactions',
    'read_features',
    'find_data_files',
    'InteractionTable',
    'DataFiles',
    'MMRecDataset',
    'EMBEDDED_DATASETS',
    'resolve_data_dir',
    'BPRSampler',
    'UserSampler',
    'NeighborBPRSampler',
    'SubgraphBatch',
    'powerlaw_interactions',
    'planted_interactions',
    'atomic_write',
    'file_lock',
]
