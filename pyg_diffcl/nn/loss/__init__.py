from .bpr import BPRLoss
from .info_nce import InfoNCE
from .alignment import IDGuidedAlignment

__all__ = ['BPRLoss', 'InfoNCE', 'IDGuidedAlignment']
