"""Classification neck of the official iTPN fine-tuning models."""
from typing import Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmitpn.registry import MODELS


@MODELS.register_module()
class GlobalAvgPoolNorm(BaseModule):
    """Mean over all positions of the last map, then a norm layer.

    The official head is ``mean over stage-3 tokens -> fc_norm -> head``;
    this neck is the first two steps (``norm`` = official ``fc_norm``) so an
    mmpretrain ``LinearClsHead`` (``head.fc`` = official ``head``) completes
    it. For linear probing, ``norm_cfg=dict(type='BN1d', affine=False)``
    gives the parameter-free BatchNorm that MAE puts before the probe.

    Args:
        in_channels (int): Channels of the last input map.
        norm_cfg (dict): Norm over ``in_channels``, mmcv's names: ``'LN'``
            (fine-tuning, official eps 1e-6) or ``'BN1d'``.
        init_cfg (dict, optional): mmengine init config.
    """

    norm_layers = {'LN': nn.LayerNorm, 'BN1d': nn.BatchNorm1d}

    def __init__(self,
                 in_channels: int,
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        norm_cfg = dict(norm_cfg)
        norm_type = norm_cfg.pop('type', None)
        if norm_type not in self.norm_layers:
            raise ValueError(
                f"norm_cfg type must be 'LN' or 'BN1d' (a norm over a "
                f'(batch, channels) vector), got {norm_type!r}')
        self.norm = self.norm_layers[norm_type](in_channels, **norm_cfg)

    def forward(self, inputs: Sequence[torch.Tensor]
                ) -> Tuple[torch.Tensor]:
        x = inputs[-1] if isinstance(inputs, (tuple, list)) else inputs
        return (self.norm(x.flatten(2).mean(dim=2)), )
