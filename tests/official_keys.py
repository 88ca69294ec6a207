"""Official key listings (``../shared/reference/official/keys``) as tensors."""
import ast
import math

import torch

from mmitpn.models.utils import (build_2d_sincos_pos_embed,
                                 relative_position_index)


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
