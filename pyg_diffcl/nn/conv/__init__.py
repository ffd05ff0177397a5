from .bipartite_lightgcn_conv import BipartiteLightGCNConv
from .lightgcn_propagation import LightGCNPropagation
from .modality_preference import ModalityPreference

__all__ = ['BipartiteLightGCNConv', 'LightGCNPropagation', 'ModalityPreference']
