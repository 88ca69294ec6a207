"""Classification neck of the official iTPN fine-tuning models."""
from typing import Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmitpn.registry import MODELS


@MODELS.register_module()
class GlobalAvgPoolNorm(BaseModule):
    """Mean over all positions of the last map, then LayerNorm.

    The official head is ``mean over stage-3 tokens -> fc_norm -> head``;
    this neck is the first two steps (``norm`` = official ``fc_norm``) so an
    mmpretrain ``LinearClsHead`` (``head.fc`` = official ``head``) completes
    it.

    Args:
        in_channels (int): Channels of the last input map.
        norm_eps (float): LayerNorm epsilon.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self, in_channels: int, norm_eps: float = 1e-6,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.norm = nn.LayerNorm(in_channels, eps=norm_eps)

    def forward(self, inputs: Sequence[torch.Tensor]
                ) -> Tuple[torch.Tensor]:
        x = inputs[-1] if isinstance(inputs, (tuple, list)) else inputs
        return (self.norm(x.flatten(2).mean(dim=2)), )
