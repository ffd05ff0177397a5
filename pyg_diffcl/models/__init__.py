r"""Recommenders composed from :mod:`pyg_diffcl.nn`, and the explicit model registry."""
from typing import Dict, Type

from .base import Recommender
from .mf import MF, MFConfig
from .lightgcn import LightGCN, LightGCNConfig
from .diffcl import DiffCL, DiffCLConfig
from .ld4mrec import LD4MRec, LD4MRecConfig
from .vbpr import VBPR, VBPRConfig
from .freedom import FREEDOM, FREEDOMConfig
from .bm3 import BM3, BM3Config
from .mentor import MENTOR, MENTORConfig
from .diffmm import DiffMM, DiffMMConfig

#: Model name (as given to ``--model``) -> class. Each class names its config dataclass in ``config_cls``.
MODELS: Dict[str, Type[Recommender]] = {
    'mf': MF,
    'lightgcn': LightGCN,
    'diffcl': DiffCL,
    'ld4mrec': LD4MRec,
    'vbpr': VBPR,
    'freedom': FREEDOM,
    'bm3': BM3,
    'mentor': MENTOR,
    'diffmm': DiffMM,
}

__all__ = ['Recommender', 'MF', 'MFConfig', 'LightGCN', 'LightGCNConfig', 'DiffCL', 'DiffCLConfig', 'LD4MRec',
           'LD4MRecConfig', 'VBPR', 'VBPRConfig', 'FREEDOM', 'FREEDOMConfig', 'BM3', 'BM3Config',
           'MENTOR', 'MENTORConfig', 'DiffMM', 'DiffMMConfig', 'MODELS']
