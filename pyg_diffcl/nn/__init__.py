r"""Reusable layers: propagation, the k-NN graph, diffusion, fusion and losses (each usable alone in any PyG
recommender)."""
from .conv import BipartiteLightGCNConv, LightGCNPropagation, ModalityPreference
from .loss import BPRLoss, BootstrapLatent, InfoNCE, IDGuidedAlignment, SoftReconstructionLoss, soft_labels
from .diffusion import (GaussianDiffusion, DenoisingMLP, DiffusionViewGenerator, timestep_embedding, StepSampler,
                        CGBlock, PGBlock, CNet, ModalityGraphDiffusion)
from .fusion import ModalityFusion
from .feature_projection import ItemFeatureProjection
from .perturbation import SimGCLNoise
from .models import LightGCN
from ..ops.knn import knn_graph

__all__ = [
    'BipartiteLightGCNConv',
    'LightGCNPropagation',
    'ModalityPreference',
    'BPRLoss',
    'BootstrapLatent',
    'InfoNCE',
    'IDGuidedAlignment',
    'SoftReconstructionLoss',
    'soft_labels',
    'GaussianDiffusion',
    'DenoisingMLP',
    'DiffusionViewGenerator',
    'timestep_embedding',
    'StepSampler',
    'CGBlock',
    'PGBlock',
    'CNet',
    'ModalityGraphDiffusion',
    'ModalityFusion',
    'ItemFeatureProjection',
    'SimGCLNoise',
    'LightGCN',
    'knn_graph',
]
