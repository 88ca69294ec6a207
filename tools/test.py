"""Evaluate a checkpoint with the config's evaluator (top-1, mAP, mIoU, ...).

The checkpoint must fill the model exactly (every key present, none left
over, same shapes): a test of half-loaded weights would report a number for
a model that was never trained.
"""
import argparse
import numbers
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.logging import print_log

# This clone's mmitpn first, whatever the environment has installed.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from mmitpn.tools.result_drawing import enable_result_drawing  # noqa: E402
from mmitpn.tools.train_setup import (  # noqa: E402
    build_runner, input_errors_reported, prepare_process,
    registry_errors_explained, resolve_work_dir, setup_cpu_distributed)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and metrics')
    parser.add_argument(
        '--out', help='dump the raw predictions to this pickle file')
    parser.add_argument(
        '--show-dir',
        help='draw the predictions (and ground truth) into this folder; a '
        'relative one is taken inside the work dir')
    parser.add_argument(
        '--show', action='store_true', help='show the drawn predictions')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='seconds each is shown')
    parser.add_argument(
        '--interval',
        type=int,
        default=1,
        help='draw every N-th sample (mmpretrain) or batch (mmseg); mmdet '
        'draws every image')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. test_dataloader.batch_size=8')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main(argv=None):
    """Returns the metrics, e.g. ``{'accuracy/top1': 91.2, ...}``."""
    args = parse_args(argv)
    for path, what in ((args.config, 'config'), (args.checkpoint,
                                                 'checkpoint')):
        if not osp.isfile(path):
            raise SystemExit(f'{what} file not found: {path}')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = resolve_work_dir(cfg, args.config, args.work_dir)
    image_dir = enable_result_drawing(cfg, args.show_dir, args.show,
                                      args.wait_time, args.interval)
    prepare_process(cfg)
    setup_cpu_distributed(cfg)
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise SystemExit('--out must end with .pkl or .pickle')
        cfg.test_evaluator = [cfg.test_evaluator] if isinstance(
            cfg.test_evaluator, dict) else list(cfg.test_evaluator)
        cfg.test_evaluator.append(
            dict(type='DumpResults', out_file_path=args.out))

    with registry_errors_explained(cfg), input_errors_reported():
        runner = build_runner(cfg)
        # Exactly: every tensor, nothing left over, no shape changed.
        runner.load_checkpoint(args.checkpoint, strict=True)
        metrics = runner.test()
    if image_dir is not None:
        print_log(f'drawn predictions are in {image_dir}', logger='current')
    # mmseg reports numpy float32 metrics, which are no Python floats.
    print({k: round(float(v), 4) if isinstance(v, numbers.Real)
           and not isinstance(v, numbers.Integral) else v
           for k, v in metrics.items()})
    return metrics


if __name__ == '__main__':
    main()
