"""Convert an official iTPN checkpoint to mmitpn parameter names.

Example::

    python tools/model_converters/official2mmitpn.py \
        itpn_base_pixel_pretrain.pth itpn_base_pixel_mmitpn.pth

Trained official det/seg models (mmdet 2.x Mask R-CNN / Cascade Mask R-CNN,
mmseg 0.x UPerNet; backbone under ``backbone.``) are recognised: their
backbone and pyramid are converted and their heads kept for mmdet 3.x /
mmseg 1.x (group ``task_heads``)::

    python tools/model_converters/official2mmitpn.py \
        itpn_base_pixel_maskrcnn_1x.pth itpn_base_pixel_maskrcnn_mmitpn.pth

Keys without an mmitpn counterpart (CLIP pre-training heads, ViTDet
rel_pos_h/w) are refused unless their group is named with ``--drop``; the
error lists them together with the group names.
"""
import argparse
import os.path as osp
import sys

# This clone's mmitpn first, whatever the environment has installed.
sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))
from mmitpn.tools.official_converter import (GROUPS, ConversionError,
                                             conversion_meta,
                                             convert_official_state_dict,
                                             load_official_state_dict,
                                             save_converted)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official checkpoint')
    parser.add_argument('dst', help='where to write the mmitpn checkpoint')
    parser.add_argument(
        '--drop', nargs='+', default=[], choices=list(GROUPS),
        metavar='GROUP',
        help='key groups to leave out: ' + '; '.join(
            f'{name}: {what}' for name, what in GROUPS.items()))
    parser.add_argument(
        '--verbose', action='store_true', help='list every key and its fate')
    parser.add_argument(
        '--allow-pickle', action='store_true',
        help='fully unpickle SRC (weights_only=False); only for trusted '
        'files whose extra entries plain loading refuses')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        official = load_official_state_dict(args.src, args.allow_pickle)
        state_dict, report = convert_official_state_dict(official, args.drop)
    except ConversionError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(report.format(verbose=args.verbose))
    save_converted(state_dict, conversion_meta(args.src, report), args.dst)
    print(f'saved {len(state_dict)} tensors to {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
