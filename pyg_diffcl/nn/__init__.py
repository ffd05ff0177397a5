r"""Reusable layers: propagation, losses (each usable alone in any PyG recommender)."""
from .conv import BipartiteLightGCNConv
from .loss import BPRLoss

__all__ = ['BipartiteLightGCNConv', 'BPRLoss']
