"""Draw MAE-style reconstructions of a pre-training checkpoint.

Writes ``OUT/reconstruction.png``: one row per image with the original, the
masked input, the reconstruction and the reconstruction with the visible
patches pasted back. Masked patches of a norm-pix model are shown with the
mean and variance of the true patch (as in MAE's figures); the printed
losses say how much the model adds to those two statistics.

Examples::

    python tools/visualization/vis_reconstruction.py \\
        configs/pretrain/itpn-demo_fashion-mnist.py \\
        work_dirs/itpn-demo_fashion-mnist/iter_1500.pth \\
        --fashion-mnist-test 8 --out work_dirs/vis
    python tools/visualization/vis_reconstruction.py CONFIG CKPT a.png b.jpg \\
        --out work_dirs/vis
"""
import argparse
import os.path as osp
import sys

from mmengine.config import Config

# This clone's mmitpn first, whatever the environment has installed.
sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))
from mmitpn.tools.train_setup import input_errors_reported  # noqa: E402
from mmitpn.tools.visualization import (load_pretrain_model,
                                        reconstruction_inputs,
                                        visualize_reconstruction)


def parse_args():
    parser = argparse.ArgumentParser(
        description='Draw masked-image reconstructions of a checkpoint')
    parser.add_argument('config', help='pre-training config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('images', nargs='*', help='image files')
    parser.add_argument(
        '--fashion-mnist-test',
        type=int,
        default=0,
        metavar='N',
        help='also draw the first N Fashion-MNIST test images (read from '
        "the config's training data_root)")
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument(
        '--seed', type=int, default=0, help='seed of the random masks')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    args = parser.parse_args()
    if not args.images and args.fashion_mnist_test <= 0:
        parser.error('give image files and/or --fashion-mnist-test N')
    return args


def main():
    args = parse_args()
    data_root = Config.fromfile(
        args.config).train_dataloader.dataset.get('data_root')
    with input_errors_reported():
        model = load_pretrain_model(args.config, args.checkpoint, args.device)
    inputs = reconstruction_inputs(model, args.images, args.fashion_mnist_test,
                                   data_root)
    out_file = osp.join(args.out, 'reconstruction.png')
    stats = visualize_reconstruction(model, inputs, out_file, args.seed)
    print(f'reconstructions of {len(inputs)} images: {out_file}')
    print(f'MIM loss on their masked patches: {stats["loss_mim"]:.4f} '
          f'(predicting each patch mean: {stats["loss_mim_mean_only"]:.4f})')


if __name__ == '__main__':
    main()
