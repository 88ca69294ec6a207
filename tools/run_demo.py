"""`make demo`: integral pre-training of a tiny iTPN on Fashion-MNIST.

Trains ``configs/pretrain/itpn-demo_fashion-mnist.py`` with ``tools/train.py``
(pixel MIM + MFM with an EMA teacher, about ten minutes on two CPU cores),
then draws the loss curves and MAE-style reconstructions of test images into
the work dir. Then, unless ``--skip-finetune``, it fine-tunes the pre-trained
backbone on the labelled training set
(``configs/cls/itpn-demo_fashion-mnist_finetune.py``) and trains the same
classifier from scratch with the same budget
(``configs/cls/itpn-demo_fashion-mnist_scratch.py``), both with
``tools/train.py``, evaluates both on the 10,000 test images with
``tools/test.py`` and prints the two accuracies side by side.

Arguments not listed below (e.g. ``--cfg-options train_cfg.max_iters=50``)
are passed on to the pre-training ``tools/train.py``.
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time

from mmengine.config import Config

# This clone's mmitpn first, whatever the environment has installed.
sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))
from mmitpn.datasets.fashion_mnist import FashionMNIST
from mmitpn.tools.visualization import (find_scalar_logs, load_loss_history,
                                        load_pretrain_model, loss_names,
                                        plot_loss_curves,
                                        reconstruction_inputs,
                                        visualize_reconstruction)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CONFIG = osp.join(ROOT, 'configs', 'pretrain',
                       'itpn-demo_fashion-mnist.py')
# (name, printed label, config) of the classification runs compared after
# pre-training.
CLS_CONFIGS = (
    ('finetune', 'fine-tuned from pre-training',
     osp.join(ROOT, 'configs', 'cls', 'itpn-demo_fashion-mnist_finetune.py')),
    ('scratch', 'trained from scratch',
     osp.join(ROOT, 'configs', 'cls', 'itpn-demo_fashion-mnist_scratch.py')),
)


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
    parser.add_argument(
        '--skip-finetune',
        action='store_true',
        help='stop after pre-training (no fine-tuning / from-scratch '
        'comparison)')
    parser.add_argument(
        '--cls-cfg-options',
        nargs='+',
        default=[],
        metavar='KEY=VALUE',
        help='config overrides for both classification runs and their '
        'tests, e.g. train_cfg.max_iters=100 train_cfg.val_interval=100')
    return parser.parse_known_args()


def _tool_env():
    # Sleeping instead of spinning while waiting for work: torch's OpenMP
    # threads otherwise spin at every barrier, and on a core shared with
    # other busy processes that slows training down several times (measured
    # on 2 busy cores: 2-4 s instead of 0.6 s per iteration).
    env = dict(os.environ)
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    return env


def _run_tool(tool, config, *args):
    cmd = [sys.executable, osp.join(ROOT, 'tools', tool), config, *args]
    print('[mmitpn demo] ' + ' '.join(cmd[1:]), flush=True)
    return subprocess.call(cmd, cwd=ROOT, env=_tool_env()) == 0


def compare_with_scratch(checkpoint, work_dir, data_root=None,
                         cfg_options=()):
    """Fine-tune ``checkpoint`` and train from scratch, then test both.

    Each run trains with ``tools/train.py`` in ``work_dir/<name>`` and is
    evaluated on the test set with ``tools/test.py``. ``cfg_options``
    (``key=value`` strings) apply to every run. Returns ``{name: metrics}``
    (``accuracy/top1``, ``accuracy/top5``), or None when a step failed.
    """
    options = list(cfg_options)
    if data_root:
        options += [
            f'train_dataloader.dataset.data_root={data_root}',
            f'val_dataloader.dataset.data_root={data_root}',
            f'test_dataloader.dataset.data_root={data_root}'
        ]
    results = {}
    for name, _, config in CLS_CONFIGS:
        run_dir = osp.join(work_dir, name)
        extra = [f'model.backbone.init_cfg.checkpoint={checkpoint}'
                 ] if name == 'finetune' else []
        train_options = options + extra
        if not _run_tool('train.py', config, '--work-dir', run_dir,
                         *(['--cfg-options', *train_options]
                           if train_options else [])):
            print(f'[mmitpn demo] {name} training failed', file=sys.stderr)
            return None
        with open(osp.join(run_dir, 'last_checkpoint')) as f:
            trained = f.read().strip()
        test_dir = osp.join(run_dir, 'test')
        if not _run_tool('test.py', config, trained, '--work-dir', test_dir,
                         *(['--cfg-options', *options] if options else [])):
            print(f'[mmitpn demo] {name} testing failed', file=sys.stderr)
            return None
        # mmengine's LoggerHook writes the test metrics to
        # <work dir>/<timestamp>/<timestamp>.json; the newest is this run's.
        metrics_file = sorted(glob.glob(osp.join(test_dir, '*', '*.json')))[-1]
        with open(metrics_file) as f:
            results[name] = json.load(f)
        results[name]['checkpoint'] = trained
    return results


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

    if args.data_root:
        # mmengine's DictAction merges repeated --cfg-options.
        train_args += [
            '--cfg-options', f'train_dataloader.dataset.data_root='
            f'{args.data_root}'
        ]
    if not _run_tool('train.py', DEMO_CONFIG, '--work-dir', args.work_dir,
                     *train_args):
        print('[mmitpn demo] training failed', file=sys.stderr)
        return 1
    train_time = time.time() - start

    # mmengine's pointer to the checkpoint saved last.
    with open(osp.join(args.work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    # This run's log only: an earlier demo in the same work dir has its own.
    logs = find_scalar_logs(args.work_dir)
    if not logs:
        print(f'[mmitpn demo] no losses were logged in {args.work_dir}: the '
              'run was shorter than the logger interval; train longer or '
              'add --cfg-options default_hooks.logger.interval=N',
              file=sys.stderr)
        return 1
    log_file = logs[-1]
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

    comparison, cls_time = None, 0.
    if not args.skip_finetune:
        cls_start = time.time()
        comparison = compare_with_scratch(checkpoint, args.work_dir,
                                          args.data_root,
                                          args.cls_cfg_options)
        cls_time = time.time() - cls_start
        if comparison is None:
            return 1

    print('\n[mmitpn demo] done in {:.0f} s (pre-training {:.0f} s{})'.format(
        time.time() - start, train_time,
        f', classification {cls_time:.0f} s' if comparison else ''))
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
    if comparison:
        print('  Fashion-MNIST test-set accuracy, same training budget:')
        print(f'    {"":<30s} {"top-1":>7s} {"top-5":>7s}')
        for name, label, _ in CLS_CONFIGS:
            metrics = comparison[name]
            print(f'    {label:<30s} {metrics["accuracy/top1"]:>6.2f}% '
                  f'{metrics["accuracy/top5"]:>6.2f}%')
        for name, _, _ in CLS_CONFIGS:
            print(f'  {name} checkpoint: {comparison[name]["checkpoint"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
