r"""pyg_diffcl: a PyTorch Geometric-native library for multimodal recommendation (LightGCN, DiffCL, LD4MRec).

Modules, each importing only those before it: :mod:`pyg_diffcl.ops` (sparse kernels) ->
:mod:`pyg_diffcl.datasets` -> :mod:`pyg_diffcl.nn` -> :mod:`pyg_diffcl.models` ->
:mod:`pyg_diffcl.evaluation` / :mod:`pyg_diffcl.training` -> :mod:`pyg_diffcl.cli`.
"""
__version__ = '0.1.0'
