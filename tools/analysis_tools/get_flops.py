"""Parameters (M) and FLOPs (G, multiply-accumulates) of any mmitpn config.

Counting is done by mmengine's ``FlopAnalyzer`` (fvcore's jit-trace counter).
By default every matrix product counts, attention included (mmengine has no
rule for ``scaled_dot_product_attention``; we add one). ``--conv-linear-only``
counts only convolutions and linear layers, the convention of MMDetection's
``get_flops`` that the paper's Table 13 used.

Two-stage mmdet detectors (Mask R-CNN, Cascade Mask R-CNN) are counted the
way MMDetection 2.x's ``forward_dummy`` ran them, as in the paper: backbone,
neck, the RPN head on every level, then the RoI heads on ``--num-proposals``
fixed boxes (mask heads on the first 100). Other models run their codebase's
``mode='tensor'`` forward.

    python tools/analysis_tools/get_flops.py CONFIG [--shape H W]
"""
import argparse
import os.path as osp
import sys
from functools import reduce
from operator import mul

import torch
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.analysis.jit_handles import (addmm_flop_jit, conv_flop_jit,
                                           linear_flop_jit)
from mmengine.config import Config, DictAction
from mmengine.registry import DefaultScope, init_default_scope
from mmengine.structures import InstanceData

# This clone's mmitpn first, whatever the environment has installed.
sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))
import mmitpn.registry  # noqa: F401,E402  (this clone's mmitpn types)

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


class _TwoStageDummyForward(torch.nn.Module):
    """MMDetection 2.x ``forward_dummy`` of a two-stage detector.

    Fixed proposals replace the RPN's NMS output, so the count does not
    depend on how many boxes survive NMS on a random image.
    """

    def __init__(self, detector, data_samples, proposals):
        super().__init__()
        self.detector = detector
        self.data_samples = data_samples
        self.proposals = proposals

    def forward(self, inputs):
        feats = self.detector.extract_feat(inputs)
        rpn_outs = self.detector.rpn_head(feats)
        roi_outs = self.detector.roi_head.forward(
            feats, [InstanceData(bboxes=self.proposals)], self.data_samples)
        return rpn_outs, roi_outs


def fixed_proposals(num, height, width, seed=0):
    """``num`` valid boxes (x1, y1, x2, y2) inside an H x W image."""
    gen = torch.Generator().manual_seed(seed)
    corners = torch.rand(num, 2, 2, generator=gen) * torch.tensor(
        [width, height])
    return torch.cat([corners.min(1).values, corners.max(1).values], dim=1)


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


def count_complexity(cfg, height, width, conv_linear_only=False,
                     num_proposals=1000):
    """Returns (params, macs, unsupported_ops) of ``cfg.model`` at H x W;
    two-stage detectors run their RoI heads on ``num_proposals`` boxes."""
    scope = cfg.get('default_scope', 'mmpretrain')
    init_default_scope(scope)
    with DefaultScope.overwrite_default_scope(scope):
        from mmengine.registry import MODELS
        model = MODELS.build(cfg.model)
    model.eval()
    data_samples = dummy_data_samples(scope, height, width)
    two_stage = getattr(model, 'with_rpn', False) and getattr(
        model, 'with_roi_head', False)
    if scope == 'mmdet' and two_stage:
        wrapped = _TwoStageDummyForward(
            model, data_samples, fixed_proposals(num_proposals, height, width))
    else:
        wrapped = _TensorForward(model, data_samples)
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
        '--num-proposals', type=int, default=1000,
        help='boxes fed to the RoI heads of two-stage detectors (MMDetection '
        '2.x forward_dummy: 1000)')
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
                                                 args.conv_linear_only,
                                                 args.num_proposals)
    convention = ('conv + linear only (MMDetection)' if args.conv_linear_only
                  else 'all matrix products incl. attention')
    print(f'Input shape: (3, {height}, {width})')
    print(f'Params: {params / 1e6:.2f} M')
    print(f'FLOPs: {macs / 1e9:.2f} G  [{convention}; 1 multiply-add = 1]')
    if cfg.get('default_scope') == 'mmdet':
        print(f'(two-stage detectors: RoI heads on {args.num_proposals} '
              'fixed proposals, mask heads on the first 100)')
    if unsupported:
        ops = ', '.join(f'{k} x{v}' for k, v in sorted(unsupported.items()))
        print(f'Not counted (no rule): {ops}')


if __name__ == '__main__':
    main()
