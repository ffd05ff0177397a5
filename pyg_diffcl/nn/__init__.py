r"""Reusable layers: propagation, losses, the k-NN graph (each usable alone in any PyG recommender)."""
from .conv import BipartiteLightGCNConv
from .loss import BPRLoss
from ..ops.knn import knn_graph

__all__ = ['BipartiteLightGCNConv', 'BPRLoss', 'knn_graph']
