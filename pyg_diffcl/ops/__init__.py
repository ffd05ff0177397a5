r"""Low-level sparse operations shared by the data sets and the layers: normalisation, the prepared
bipartite adjacency, and the sparse-times-dense product with its backend dispatch (in one place)."""
from .norm import bipartite_gcn_norm
from .adj import (Adjacency, AdjacencyCache, BipartiteAdj, available_backends, bipartite_coo, graph_adjacency,
                  normalize_sparse_adj, resolve_backend, BACKENDS, SubgraphAdj, user_item_edge_type)
from .spmm import spmm
from .knn import knn_graph
from .edge_pruning import degree_sensitive_edge_pruning
from .item_graph import item_knn_graph, weighted_graph_sum
from .allocator import tune_allocator
from .features import FEATURE_NORMS, prepare_features
from .rows import csr_rows, dense_rows, gather_rows
from .normalize import row_normalize
from .host import host_description, format_host
from .autotune import auto_backend, choose_backend, probe_graph, set_auto_backend, time_backends
from .svd import collaborative_maps, collaborative_signals, interaction_matrix, truncated_svd

__all__ = [
    'host_description',
    'format_host',
    'bipartite_gcn_norm',
    'Adjacency',
    'AdjacencyCache',
    'BipartiteAdj',
    'SubgraphAdj',
    'bipartite_coo',
    'graph_adjacency',
    'normalize_sparse_adj',
    'user_item_edge_type',
    'available_backends',
    'resolve_backend',
    'auto_backend',
    'choose_backend',
    'probe_graph',
    'set_auto_backend',
    'time_backends',
    'BACKENDS',
    'spmm',
    'knn_graph',
    'degree_sensitive_edge_pruning',
    'item_knn_graph',
    'weighted_graph_sum',
    'tune_allocator',
    'FEATURE_NORMS',
    'prepare_features',
    'csr_rows',
    'dense_rows',
    'gather_rows',
    'row_normalize',
    'collaborative_maps',
    'collaborative_signals',
    'interaction_matrix',
    'truncated_svd',
]
