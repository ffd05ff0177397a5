from .bipartite_lightgcn_conv import BipartiteLightGCNConv

__all__ = ['BipartiteLightGCNConv']
