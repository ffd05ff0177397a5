from .bpr import BPRLoss

__all__ = ['BPRLoss']
