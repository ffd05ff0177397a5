r"""Pre-processing of raw item features, shared by the models that read them."""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

FEATURE_NORMS = ('standardize', 'l2', 'none')


def check_feature_matrix(name: str, x: Tensor, num_items: int) -> None:
    """Raise :class:`ValueError` unless modality :obj:`name`'s features :obj:`x` are ``[num_items, F]`` and
    :obj:`name` can key the model's per-modality modules and buffers (no ``'.'``, which PyTorch reserves for
    nesting)."""
    if not name or '.' in name:
        raise ValueError(f"features: modality name {name!r} cannot name a module ('.' is reserved by PyTorch); "
                         f"use for example {name.replace('.', '_')!r}")
    if x.dim() != 2 or x.size(0) != num_items:
        raise ValueError(f'features: features[{name!r}] must be [num_items={num_items}, F], got {tuple(x.shape)}')


def column_stats(x: Tensor, eps: float = 1e-6) -> Tuple[Tensor, Tensor, Tensor]:
    r"""``(mean, std, mask)`` of the columns of :obj:`x` ``[N, F]``, each ``[1, F]``: the std is 1 and the mask
    0 where the column is constant (std at most :obj:`eps`), so that ``(x - mean) / std * mask`` is
    :func:`prepare_features`' standardisation, and can be applied to other rows with the same statistics."""
    std = x.std(dim=0, keepdim=True)
    keep = std > eps
    return x.mean(dim=0, keepdim=True), torch.where(keep, std, torch.ones_like(std)), keep.to(x.dtype)


def prepare_features(x: Tensor, how: str = 'standardize', eps: float = 1e-6) -> Tensor:
    r"""Pre-process raw item features before their learned projection.

    * ``'standardize'``: per column, :math:`(x - \bar{x}_j) / s_j` (:math:`s_j` the column's standard
      deviation, constant columns become 0). Pre-extracted CNN features are non-negative with a large common
      mean (on tiktok's image features every column averages 2.7, row norms 33); fed raw to a linear map
      trained with Adam, every step moves all projected rows along that shared direction, and training is
      unstable and dominated by the modality branch.
    * ``'l2'``: every row scaled to unit L2 norm (keeps the common direction, fixes the scale).
    * ``'none'``: as given.
    """
    x = x.float()
    if how == 'standardize':
        mean, std, mask = column_stats(x, eps)
        return (x - mean) / std * mask
    if how == 'l2':
        return F.normalize(x, dim=-1)
    if how == 'none':
        return x
    raise ValueError(f'unknown feature normalisation {how!r}; expected one of {FEATURE_NORMS}')
