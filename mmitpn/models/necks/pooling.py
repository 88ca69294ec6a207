"""Classification neck of the official iTPN fine-tuning models."""
from typing import Sequence, Tuple

import torch
from mmcv.cnn import build_norm_layer
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
        norm_cfg (dict): mmcv norm layer over ``in_channels``: ``'LN'``
            (fine-tuning, official eps 1e-6) or ``'BN1d'``.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 in_channels: int,
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if norm_cfg.get('type') not in ('LN', 'BN1d'):
            raise ValueError(
                f"norm_cfg type must be 'LN' or 'BN1d' (a norm over a "
                f"(batch, channels) vector), got {norm_cfg.get('type')!r}")
        _, self.norm = build_norm_layer(norm_cfg, in_channels)

    def forward(self, inputs: Sequence[torch.Tensor]
                ) -> Tuple[torch.Tensor]:
        x = inputs[-1] if isinstance(inputs, (tuple, list)) else inputs
        return (self.norm(x.flatten(2).mean(dim=2)), )
