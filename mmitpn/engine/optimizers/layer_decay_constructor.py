"""Layer-wise lr decay for iTPN in a classifier, a detector or a segmentor."""
import re
from collections import OrderedDict
from typing import List, Optional

import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor

from mmitpn.registry import OPTIM_WRAPPER_CONSTRUCTORS

# Names of parameters that never get weight decay, besides every parameter
# with fewer than two dimensions (norms, biases, layer-scale gammas).
DEFAULT_NO_DECAY_KEYS = ('pos_embed', 'relative_position_bias_table',
                         'mask_token', 'cls_token')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class iTPNLayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Layer-wise lr decay driven by the backbone's ``get_layer_depth``.

    Works whatever wraps the backbone (an mmpretrain classifier, an mmdet
    detector, an mmseg segmentor): parameters under ``backbone.`` get the id
    that ``backbone.get_layer_depth`` gives them (for iTPN: the patch
    embedding and position table 0, every C-MLP and attention block its own
    id, PatchMerge its predecessor's), the neck gets ``neck_layer_id``, and
    everything else (heads) the top id, i.e. lr scale 1. A parameter with id
    ``i`` of ``L`` gets ``lr * decay ** (L - i)``.

    This is the official classification rule for every task; the official
    det/seg constructors count PatchMerge as a layer, give the last block an
    lr scale above 1, never decay ``absolute_pos_embed``'s lr and ignore
    ``custom_keys`` (reference NOTES §4, §5, §7.6) - none of that here.

    ``paramwise_cfg`` keys:
        layer_decay_rate (float): Decay per layer (required).
        decay_rescale_depth (int, optional): Rescale the decay so that it
            spans the model as it would span a ViT of this depth,
            ``rate ** ((depth + 1) / L)`` (official classification: 12).
        neck_layer_id (int, optional): Layer id of ``neck.`` parameters;
            ``None`` gives the top id (lr scale 1), as the official det/seg
            code does for its in-backbone pyramid.
        no_decay_keys (Sequence[str]): Name parts that switch weight decay
            off, in addition to all 0-D/1-D parameters.
        custom_keys (dict): ``{name_part: dict(lr_mult=..., decay_mult=...)}``
            applied on top of the decay; the longest matching key wins.

    Example::

        optim_wrapper = dict(
            type='OptimWrapper',
            optimizer=dict(type='AdamW', lr=4e-3, weight_decay=0.05),
            constructor='mmitpn.iTPNLayerDecayOptimWrapperConstructor',
            paramwise_cfg=dict(layer_decay_rate=0.6, decay_rescale_depth=12))
    """

    def __init__(self, optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None):
        given_cfg = dict(paramwise_cfg or {})
        paramwise_cfg = dict(given_cfg)
        if 'layer_decay_rate' not in paramwise_cfg:
            raise ValueError(
                'iTPNLayerDecayOptimWrapperConstructor needs '
                'paramwise_cfg.layer_decay_rate (e.g. 0.6 for iTPN-B '
                'fine-tuning, 0.9 for detection)')
        self.layer_decay_rate = float(paramwise_cfg.pop('layer_decay_rate'))
        self.decay_rescale_depth = paramwise_cfg.pop('decay_rescale_depth',
                                                     None)
        self.neck_layer_id = paramwise_cfg.pop('neck_layer_id', None)
        self.no_decay_keys = tuple(
            paramwise_cfg.pop('no_decay_keys', DEFAULT_NO_DECAY_KEYS))
        self.custom_keys = dict(paramwise_cfg.pop('custom_keys', {}))
        if paramwise_cfg:
            raise ValueError(
                f'unknown paramwise_cfg keys {sorted(paramwise_cfg)}; valid: '
                'layer_decay_rate, decay_rescale_depth, neck_layer_id, '
                'no_decay_keys, custom_keys')
        # mmengine only calls add_params when paramwise_cfg is non-empty.
        super().__init__(optim_wrapper_cfg, given_cfg)

    def __call__(self, model: nn.Module):
        wrapper = super().__call__(model)
        # mmengine builds the optimizer from a ConfigDict, which turns our
        # groups into ConfigDicts; torch.compile (cfg.compile) cannot trace
        # an optimizer step over those.
        groups = wrapper.optimizer.param_groups
        groups[:] = [dict(group) for group in groups]
        return wrapper

    @staticmethod
    def _find_backbone(model: nn.Module):
        """(module with get_layer_depth, its name prefix)."""
        if is_model_wrapper(model):
            model = model.module
        backbone = getattr(model, 'backbone', None)
        if backbone is not None and hasattr(backbone, 'get_layer_depth'):
            return backbone, 'backbone.'
        if hasattr(model, 'get_layer_depth') and backbone is None:
            return model, ''
        raise TypeError(
            f'{type(model).__name__} has no backbone with get_layer_depth(); '
            'iTPNLayerDecayOptimWrapperConstructor needs one (e.g. '
            'mmitpn.iTPNHiViT)')

    def layer_id(self, name: str, backbone, prefix: str) -> tuple:
        """(layer id, number of layers) of parameter ``name``."""
        if name.startswith(prefix):
            return backbone.get_layer_depth(name[len(prefix):])
        num_layers = backbone.get_layer_depth('')[1]
        if name.startswith('neck.') and self.neck_layer_id is not None:
            return self.neck_layer_id, num_layers
        return num_layers, num_layers

    def decay_rate(self, num_layers: int) -> float:
        if self.decay_rescale_depth is None:
            return self.layer_decay_rate
        return self.layer_decay_rate**(
            (self.decay_rescale_depth + 1) / num_layers)

    def _custom_mults(self, name: str):
        for key in sorted(self.custom_keys, key=len, reverse=True):
            if key in name:
                cfg = self.custom_keys[key]
                return cfg.get('lr_mult', 1.), cfg.get('decay_mult', 1.)
        return 1., 1.

    def add_params(self, params: List[dict], module: nn.Module, **kwargs):
        """Fill ``params`` with one group per (lr scale, weight decay)."""
        if self.base_wd is None:
            raise ValueError(
                'iTPNLayerDecayOptimWrapperConstructor needs an explicit '
                'optimizer weight_decay (e.g. 0.05); 0 switches it off')
        backbone, prefix = self._find_backbone(module)
        if is_model_wrapper(module):
            module = module.module
        groups = OrderedDict()
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            layer, num_layers = self.layer_id(name, backbone, prefix)
            lr_mult, decay_mult = self._custom_mults(name)
            lr_scale = self.decay_rate(num_layers)**(num_layers - layer) * \
                lr_mult
            no_decay = param.ndim <= 1 or any(k in name
                                              for k in self.no_decay_keys)
            weight_decay = 0. if no_decay else self.base_wd * decay_mult
            key = (layer, lr_scale, weight_decay)
            if key not in groups:
                groups[key] = dict(
                    params=[], names=[], layer_id=layer, lr_scale=lr_scale,
                    lr=self.base_lr * lr_scale, weight_decay=weight_decay)
            groups[key]['params'].append(param)
            groups[key]['names'].append(name)
        for group in groups.values():
            params.append({k: v for k, v in group.items() if k != 'names'})
        MMLogger.get_current_instance().info(
            'layer-wise lr decay parameter groups:\n' +
            format_group_table(list(groups.values())))


def _owner(name: str) -> str:
    """The part of a parameter name that decides its layer id:
    ``backbone.blocks.10.attn.qkv.weight`` -> ``backbone.blocks.10``,
    ``backbone.pos_embed`` -> itself, ``neck.top_proj.bias`` -> ``neck``."""
    match = re.match(r'(backbone\.[^.]+(?:\.\d+)?)', name)
    return match.group(1) if match else name.split('.')[0]


def format_group_table(groups: List[dict]) -> str:
    """A table of groups: layer id, lr scale, weight decay, parameter count
    and the modules they belong to."""
    lines = [f'{"layer":>5} {"lr scale":>10} {"wd":>7} {"#":>4}  modules']
    for group in sorted(groups, key=lambda g: (g['layer_id'],
                                                g['weight_decay'])):
        owners = ', '.join(dict.fromkeys(map(_owner, group['names'])))
        lines.append(f'{group["layer_id"]:>5} {group["lr_scale"]:>10.5g} '
                     f'{group["weight_decay"]:>7.4g} '
                     f'{len(group["names"]):>4}  {owners}')
    return '\n'.join(lines)
