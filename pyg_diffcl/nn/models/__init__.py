r"""Whole models with PyG's interfaces, built from the library's layers and kernels."""
from .lightgcn import LightGCN

__all__ = ['LightGCN']
