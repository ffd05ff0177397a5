r"""Model-agnostic evaluation: full-ranking top-K metrics in blocks of users."""
from .full_ranking import FullRankingEvaluator, METRICS, DEFAULT_KS, top_k, check_ks

__all__ = ['FullRankingEvaluator', 'METRICS', 'DEFAULT_KS', 'top_k', 'check_ks']
