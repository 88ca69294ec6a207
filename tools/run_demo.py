"""`make demo`: integral pre-training of a tiny iTPN on Fashion-MNIST.

Trains ``configs/pretrain/itpn-demo_fashion-mnist.py`` with ``tools/train.py``
(pixel MIM + MFM with an EMA teacher, about ten minutes on two CPU cores),
then draws the loss curves and MAE-style reconstructions of test images into
the work dir and prints where everything is.

Arguments not listed below (e.g. ``--cfg-options train_cfg.max_iters=50``)
are passed on to ``tools/train.py``.
"""
import argparse
import os
import os.path as osp
import subprocess
import sys
import time

from mmengine.config import Config

from mmitpn.datasets import FashionMNIST
from mmitpn.utils.visualization import (find_scalar_logs, load_loss_history,
                                        load_pretrain_model, loss_names,
                                        plot_loss_curves,
                                        reconstruction_inputs,
                                        visualize_reconstruction)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CONFIG = osp.join(ROOT, 'configs', 'pretrain',
                       'itpn-demo_fashion-mnist.py')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--work-dir',
        default=osp.join(ROOT, 'work_dirs', 'itpn-demo_fashion-mnist'),
        help='where checkpoints, logs and pictures go')
    parser.add_argument(
        '--data-root',
        help='folder holding the Fashion-MNIST IDX files (default: the '
        "config's, where Debian's dataset-fashion-mnist installs them)")
    parser.add_argument(
        '--num-images',
        type=int,
        default=8,
        help='Fashion-MNIST test images in the reconstruction grid')
    return parser.parse_known_args()


def main():
    args, train_args = parse_args()
    start = time.time()
    data_root = args.data_root or Config.fromfile(
        DEMO_CONFIG).train_dataloader.dataset.data_root
    try:
        FashionMNIST.check_files(data_root)
    except FileNotFoundError as err:
        print(f'[mmitpn demo] {err}', file=sys.stderr)
        return 1

    train = [
        sys.executable,
        osp.join(ROOT, 'tools', 'train.py'), DEMO_CONFIG, '--work-dir',
        args.work_dir
    ] + train_args
    if args.data_root:
        # mmengine's DictAction merges repeated --cfg-options.
        train += [
            '--cfg-options', f'train_dataloader.dataset.data_root='
            f'{args.data_root}'
        ]
    # Sleeping instead of spinning while waiting for work: torch's OpenMP
    # threads otherwise spin at every barrier, and on a core shared with
    # other busy processes that slows training down several times (measured
    # on 2 busy cores: 2-4 s instead of 0.6 s per iteration).
    env = dict(os.environ)
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    print('[mmitpn demo] ' + ' '.join(train[1:]), flush=True)
    if subprocess.call(train, cwd=ROOT, env=env) != 0:
        print('[mmitpn demo] training failed', file=sys.stderr)
        return 1
    train_time = time.time() - start

    # mmengine's pointer to the checkpoint saved last.
    with open(osp.join(args.work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    # This run's log only: an earlier demo in the same work dir has its own.
    log_file = find_scalar_logs(args.work_dir)[-1]
    history = load_loss_history([log_file])
    curves = plot_loss_curves(
        history,
        osp.join(args.work_dir, 'loss_curves.png'),
        title='iTPN demo pre-training on Fashion-MNIST')

    # The config as trained (with any --cfg-options), dumped by mmengine.
    model = load_pretrain_model(
        osp.join(args.work_dir, osp.basename(DEMO_CONFIG)), checkpoint)
    inputs = reconstruction_inputs(
        model, fashion_mnist_test=args.num_images, data_root=data_root)
    grid = osp.join(args.work_dir, 'reconstruction.png')
    stats = visualize_reconstruction(model, inputs, grid)

    print('\n[mmitpn demo] done in {:.0f} s (training {:.0f} s)'.format(
        time.time() - start, train_time))
    print(f'  checkpoint:      {checkpoint}')
    print(f'  training log:    {log_file}')
    print(f'  loss curves:     {curves}')
    print(f'  reconstructions: {grid}')
    print('  loss terms (first -> last logged value):')
    for name in loss_names(history):
        values = history[name][1]
        print(f'    {name:<14s} {values[0]:.4f} -> {values[-1]:.4f}')
    print(f'  MIM loss on the {len(inputs)} test images: '
          f'{stats["loss_mim"]:.4f} (predicting each patch mean: '
          f'{stats["loss_mim_mean_only"]:.4f})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
