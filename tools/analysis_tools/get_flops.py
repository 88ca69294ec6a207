"""Parameters (M) and FLOPs (G, multiply-accumulates) of any mmitpn config.

Counting is done by mmengine's ``FlopAnalyzer`` (fvcore's jit-trace counter).
By default every matrix product counts, attention included (mmengine has no
rule for ``scaled_dot_product_attention``; we add one). ``--conv-linear-only``
counts only convolutions and linear layers, the convention of MMDetection's
``get_flops`` that the paper's Table 13 used.

    python tools/analysis_tools/get_flops.py CONFIG [--shape H W]
"""
import argparse
from functools import reduce
from operator import mul

import torch
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.analysis.jit_handles import (addmm_flop_jit, conv_flop_jit,
                                           linear_flop_jit)
from mmengine.config import Config, DictAction
from mmengine.registry import DefaultScope, init_default_scope

import mmitpn  # noqa: F401

# MMDetection's convention: convolutions and linear layers only.
_CONV_LINEAR_HANDLES = {
    'aten::_convolution': conv_flop_jit,
    'aten::addmm': addmm_flop_jit,
    'aten::linear': linear_flop_jit,
}


def sdpa_flop_jit(inputs, outputs):
    """MACs of softmax(q k^T) v: two batched products of size L*S*E."""
    q_shape = inputs[0].type().sizes()
    k_shape = inputs[1].type().sizes()
    v_shape = inputs[2].type().sizes()
    batch = reduce(mul, q_shape[:-2], 1)
    seq_q, dim_qk = q_shape[-2:]
    seq_k, dim_v = k_shape[-2], v_shape[-1]
    return batch * seq_q * seq_k * (dim_qk + dim_v)


class _TensorForward(torch.nn.Module):
    """Traces ``model(inputs, data_samples, mode='tensor')``."""

    def __init__(self, model, data_samples):
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, inputs):
        return self.model(inputs, self.data_samples, mode='tensor')


def dummy_data_samples(scope, height, width):
    """What each codebase's 'tensor' forward needs besides the image."""
    metainfo = dict(
        img_shape=(height, width),
        ori_shape=(height, width),
        pad_shape=(height, width),
        batch_input_shape=(height, width),
        scale_factor=(1., 1.))
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample
        return [DetDataSample(metainfo=metainfo)]
    if scope == 'mmseg':
        from mmseg.structures import SegDataSample
        return [SegDataSample(metainfo=metainfo)]
    return None


def count_complexity(cfg, height, width, conv_linear_only=False):
    """Returns (params, macs, unsupported_ops) of ``cfg.model`` at H x W."""
    scope = cfg.get('default_scope', 'mmpretrain')
    init_default_scope(scope)
    with DefaultScope.overwrite_default_scope(scope):
        from mmengine.registry import MODELS
        model = MODELS.build(cfg.model)
    model.eval()
    wrapped = _TensorForward(model, dummy_data_samples(scope, height, width))
    inputs = torch.rand(1, 3, height, width)
    analyzer = FlopAnalyzer(wrapped, inputs)
    if conv_linear_only:
        # A None handle does not override a default one in mmengine 0.10.
        analyzer.clear_op_handles()
        analyzer.set_op_handle(**_CONV_LINEAR_HANDLES)
    else:
        analyzer.set_op_handle('aten::scaled_dot_product_attention',
                               sdpa_flop_jit)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    with torch.no_grad():
        macs = analyzer.total()
    params = parameter_count(model)['']
    return params, macs, dict(analyzer.unsupported_ops())


def parse_args():
    parser = argparse.ArgumentParser(description='Count params and FLOPs')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--shape', type=int, nargs='+', default=[224],
        help='input size: H W, or one number for a square input')
    parser.add_argument(
        '--conv-linear-only', action='store_true',
        help='count only convolutions and linear layers (MMDetection '
        'convention, paper Table 13); by default attention, norms and '
        'other matrix products count too')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings')
    return parser.parse_args()


def main():
    args = parse_args()
    if len(args.shape) == 1:
        height = width = args.shape[0]
    elif len(args.shape) == 2:
        height, width = args.shape
    else:
        raise SystemExit('--shape takes one number or H W')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    params, macs, unsupported = count_complexity(cfg, height, width,
                                                 args.conv_linear_only)
    convention = ('conv + linear only (MMDetection)' if args.conv_linear_only
                  else 'all matrix products incl. attention')
    print(f'Input shape: (3, {height}, {width})')
    print(f'Params: {params / 1e6:.2f} M')
    print(f'FLOPs: {macs / 1e9:.2f} G  [{convention}; 1 multiply-add = 1]')
    if unsupported:
        ops = ', '.join(f'{k} x{v}' for k, v in sorted(unsupported.items()))
        print(f'Not counted (no rule): {ops}')


if __name__ == '__main__':
    main()
