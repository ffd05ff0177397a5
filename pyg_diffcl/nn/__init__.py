r"""Reusable layers: propagation, the k-NN graph, diffusion, fusion and losses (each usable alone in any PyG
recommender)."""
from .conv import BipartiteLightGCNConv, LightGCNPropagation
from .loss import BPRLoss, InfoNCE, IDGuidedAlignment
from .diffusion import GaussianDiffusion, DenoisingMLP, DiffusionViewGenerator, timestep_embedding
from .fusion import ModalityFusion
from ..ops.knn import knn_graph

__all__ = [
    'BipartiteLightGCNConv',
    'LightGCNPropagation',
    'BPRLoss',
    'InfoNCE',
    'IDGuidedAlignment',
    'GaussianDiffusion',
    'DenoisingMLP',
    'DiffusionViewGenerator',
    'timestep_embedding',
    'ModalityFusion',
    'knn_graph',
]
