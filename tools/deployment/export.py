"""Export a trained classifier, or the backbone + pyramid feature extractor
of a detector or segmentor, with torch.export (.pt2) or to ONNX, and check
the exported file against PyTorch.

The exported graph takes the normalised float32 batch the data preprocessor
makes ((image - mean) / std, N x 3 x H x W, any N); mean, std and the class
names are stored in the file. After exporting, the file and the PyTorch
model run on the same random batches of 1 and 3 images; the largest
absolute difference of each output is printed and the exit status is 1 when
it exceeds --atol.

Examples::

    python tools/deployment/export.py \\
        configs/cls/itpn-demo_fashion-mnist_finetune.py CKPT \\
        --part classifier --format onnx --out work_dirs/export/cls.onnx
    python tools/deployment/export.py \\
        configs/det/mask-rcnn_itpn-demo_fashion-mnist-det.py CKPT \\
        --part backbone --format torch-export --shape 56 56 \\
        --out work_dirs/export/det_features.pt2
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import DictAction

# This clone's mmitpn first, whatever the environment has installed.
sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))
from mmitpn.models.utils.checkpoint_files import CheckpointError  # noqa: E402
from mmitpn.tools.config_loading import load_config  # noqa: E402
from mmitpn.tools.model_export import (  # noqa: E402
    FORMATS, PARTS, ExportInputError, export_and_check)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export a model with torch.export or to ONNX and check '
        'it against PyTorch')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--part',
        choices=PARTS,
        required=True,
        help='classifier: image to logits (classification configs); '
        'backbone: image to the features the heads read (HiViT + iTPN '
        'pyramid for detection and segmentation configs)')
    parser.add_argument(
        '--format', choices=FORMATS, required=True, help='output format')
    parser.add_argument(
        '--out', required=True, help='output file (.pt2 or .onnx)')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='input image size; defaults to the backbone img_size. The '
        'exported graph is fixed to it')
    parser.add_argument(
        '--opset', type=int, help='ONNX opset (default: torch\'s)')
    parser.add_argument(
        '--atol',
        type=float,
        default=1e-4,
        help='largest absolute difference from PyTorch that passes')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. model.backbone.img_size=56')
    args = parser.parse_args(argv)
    expected = {'torch-export': '.pt2', 'onnx': '.onnx'}[args.format]
    if not args.out.endswith(expected):
        parser.error(f'--format {args.format} writes a {expected} file; '
                     f'name --out accordingly (got {args.out})')
    return args


def main(argv=None):
    """Returns ``{output: (max abs difference, max abs value)}``."""
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    try:
        errors = export_and_check(cfg, args.checkpoint, args.part, args.format,
                                  args.out, args.shape, args.opset)
    except (CheckpointError, ExportInputError) as err:
        raise SystemExit(f'{type(err).__name__}: {err}') from err
    worst = max(diff for diff, _ in errors.values())
    for name, (diff, scale) in errors.items():
        print(f'{name}: max abs difference from PyTorch {diff:.3g} '
              f'(outputs up to {scale:.3g})')
    if worst > args.atol:
        raise SystemExit(
            f'{args.out} differs from PyTorch by up to {worst:.3g}, more '
            f'than --atol {args.atol:g}: do not use it (report the model '
            'and torch/onnxruntime versions)')
    print(f'{args.out}: matches PyTorch within {args.atol:g}')
    return errors


if __name__ == '__main__':
    main()
