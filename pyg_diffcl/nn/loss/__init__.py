from .bpr import BPRLoss
from .info_nce import InfoNCE
from .alignment import IDGuidedAlignment
from .soft_reconstruction import SoftReconstructionLoss, soft_labels
from .bootstrap import BootstrapLatent

__all__ = ['BPRLoss', 'InfoNCE', 'IDGuidedAlignment', 'SoftReconstructionLoss', 'soft_labels', 'BootstrapLatent']
