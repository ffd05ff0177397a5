from __future__ import annotations

from typing import Dict, List

import torch
from torch import Tensor


class ItemFeatureProjection(torch.nn.Module):
    r"""Each modality's item feature table :math:`\mathbf{F}_m` and its linear projection,
    :math:`\mathbf{H}_m = \mathbf{F}_m \mathbf{W}_m^\top + \mathbf{b}_m`, the feature branch of FREEDOM and
    BM3. Their official code loads the tables as trainable embeddings (``from_pretrained(freeze=False)``):
    :obj:`trainable=True` does the same, and :meth:`reset_parameters` restores the given values.

    Args:
        features (Dict[str, Tensor]): ``[num_items, F_m]`` per modality.
        dim (int): The projected size.
        trainable (bool, optional): Train the tables themselves. (default: :obj:`True`)
        init (str, optional): The projections' weights: ``'default'`` (:class:`torch.nn.Linear`'s) or
            ``'xavier_normal'`` (BM3's). (default: :obj:`'default'`)
    """
    def __init__(self, features: Dict[str, Tensor], dim: int, trainable: bool = True, init: str = 'default'
                 ) -> None:
        super().__init__()
        if init not in ('default', 'xavier_normal'):
            raise ValueError(f"init: must be 'default' or 'xavier_normal', got {init!r}")
        self.modalities: List[str] = sorted(features)
        self.init = init
        self.feat = torch.nn.ParameterDict({m: torch.nn.Parameter(features[m].detach().float().clone(),
                                                                  requires_grad=trainable)
                                            for m in self.modalities})
        self.proj = torch.nn.ModuleDict({m: torch.nn.Linear(features[m].size(1), dim) for m in self.modalities})
        for m in self.modalities:  # the given values, kept for reset_parameters
            self.register_buffer(f'initial_{m}', features[m].detach().float().clone(), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            for m in self.modalities:
                self.feat[m].copy_(getattr(self, f'initial_{m}'))
        for lin in self.proj.values():
            lin.reset_parameters()
            if self.init == 'xavier_normal':
                torch.nn.init.xavier_normal_(lin.weight)

    def forward(self, modality: str) -> Tensor:
        r""":math:`\mathbf{H}_m`, ``[num_items, dim]``."""
        return self.proj[modality](self.feat[modality])

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(modalities={self.modalities}, init={self.init!r})'
