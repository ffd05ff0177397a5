from .bipartite_lightgcn_conv import BipartiteLightGCNConv
from .lightgcn_propagation import LightGCNPropagation

__all__ = ['BipartiteLightGCNConv', 'LightGCNPropagation']
