from .bpr import BPRLoss
from .info_nce import InfoNCE
from .alignment import IDGuidedAlignment
from .soft_reconstruction import SoftReconstructionLoss, soft_labels

__all__ = ['BPRLoss', 'InfoNCE', 'IDGuidedAlignment', 'SoftReconstructionLoss', 'soft_labels']
