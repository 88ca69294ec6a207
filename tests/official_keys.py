"""Official key listings (``../shared/reference/official/keys``) as tensors."""
import ast
import math
import re

import torch

from mmitpn.models.utils import (build_2d_sincos_pos_embed,
                                 relative_position_index)
from mmitpn.tools.official_converter import (ATTENTION_BLOCK, MLP_BLOCK,
                                             PATCH_MERGE, PATCH_SPLIT,
                                             ROOT_KEYS)


def read_key_list(path):
    """``{key: shape}`` from a ``name (d0, d1, ...)`` listing."""
    shapes = {}
    with open(path, encoding='utf-8') as f:
        for line in f:
            if line.strip() and not line.startswith('#'):
                name, shape = line.split(' ', 1)
                shapes[name] = tuple(ast.literal_eval(shape.strip()))
    return shapes


def fake_state_dict(shapes):
    """Meta tensors, except the fixed tables the converter checks."""
    sd = {k: torch.empty(s, device='meta') for k, s in shapes.items()}
    if 'relative_position_index' in sd:
        side = math.isqrt(shapes['relative_position_index'][0])
        sd['relative_position_index'] = relative_position_index((side, side))
    if 'decoder_pos_embed' in sd:
        _, n, dims = shapes['decoder_pos_embed']
        sd['decoder_pos_embed'] = build_2d_sincos_pos_embed(
            dims, (math.isqrt(n), ) * 2)
    return sd


_LEVEL_SOURCE = {'8': '16to8', '4': '8to4'}


def to_official(state_dict, stem_depths):
    """mmitpn names -> official names (the converter's inverse)."""
    s1, s2 = stem_depths
    offsets = dict(stage1=0, merge1=s1, stage2=s1 + 1, merge2=s1 + s2 + 1,
                   blocks=s1 + s2 + 2)
    parts = dict(stage1=MLP_BLOCK, stage2=MLP_BLOCK, merge1=PATCH_MERGE,
                 merge2=PATCH_MERGE, blocks=ATTENTION_BLOCK)
    roots = {new: old for old, (_, new) in ROOT_KEYS.items()}

    def inv(table, suffix):
        return {new: old for old, new in table.items()}[suffix]

    official = {}
    for key, value in state_dict.items():
        if key in roots:
            name = roots[key]
        elif key == 'head.mask_token':
            name = 'mask_token'
        elif m := re.fullmatch(r'backbone\.(stage\d|merge\d|blocks)\.(?:'
                               r'(\d+)\.)?(.+)', key):
            index = offsets[m[1]] + int(m[2] or 0)
            name = f'blocks.{index}.{inv(parts[m[1]], m[3])}'
        elif m := re.fullmatch(r'neck\.upsample_s(8|4)\.(.+)', key):
            name = f'split_{_LEVEL_SOURCE[m[1]]}.{inv(PATCH_SPLIT, m[2])}'
        elif m := re.fullmatch(r'neck\.fuse_s(8|4)\.(\d+)\.(.+)', key):
            name = (f'block_{_LEVEL_SOURCE[m[1]]}.{m[2]}.'
                    f'{inv(MLP_BLOCK, m[3])}')
        elif m := re.fullmatch(r'neck\.out_blocks\.(\d)\.(.+)', key):
            name = f'fpn_modules.{2 - int(m[1])}.{inv(MLP_BLOCK, m[2])}'
        elif m := re.fullmatch(r'head\.level_embeds\.(\d)\.(norm|proj)\.(.+)',
                               key):
            part = 0 if m[2] == 'norm' else 1
            name = f'decoder_embed.{2 - int(m[1])}.{part}.{m[3]}'
        elif m := re.fullmatch(r'head\.blocks\.(\d+)\.(.+)', key):
            name = f'decoder_blocks.{m[1]}.{inv(ATTENTION_BLOCK, m[2])}'
        else:
            raise KeyError(key)
        official[name] = value
    return official
