r"""pyg_diffcl: a PyTorch Geometric-native library for multimodal recommendation (LightGCN, DiffCL, LD4MRec).

The library a PyG user imports, each subpackage importing only those before it: :mod:`pyg_diffcl.ops`
(sparse kernels) -> :mod:`pyg_diffcl.datasets` -> :mod:`pyg_diffcl.nn` -> :mod:`pyg_diffcl.models` ->
:mod:`pyg_diffcl.evaluation`. The application on top of it: :mod:`pyg_diffcl.training` (run directories,
resume, presets, ``reproduce``) and :mod:`pyg_diffcl.cli` (the ``pyg-diffcl`` command).

``import pyg_diffcl`` is cheap: the subpackages load on first access (``pyg_diffcl.nn.LightGCNPropagation``
imports torch and PyG then), and importing changes no process-wide setting.
"""
import importlib as _importlib
from typing import Any, List

__version__ = '0.1.0'

__all__ = ['ops', 'datasets', 'nn', 'models', 'evaluation', 'training', '__version__']


def __getattr__(name: str) -> Any:
    if name in __all__ and name != '__version__':
        module = _importlib.import_module(f'{__name__}.{name}')
        globals()[name] = module
        return module
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
