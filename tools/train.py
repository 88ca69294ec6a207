"""Train any mmitpn config: pre-training, classification, detection, segmentation.

The config's ``default_scope`` (mmpretrain, mmdet or mmseg) decides which
codebase's registries serve its unprefixed types.
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction

# This clone's mmitpn first, whatever the environment has installed.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from mmitpn.tools.train_setup import (  # noqa: E402
    build_runner, drop_switched_off_hooks, enable_amp, input_errors_reported,
    lock_work_dir, prepare_process, registry_errors_explained,
    resolve_auto_resume, resolve_work_dir, setup_cpu_distributed,
    stopped_ranks_reported, watch_distributed_ranks)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or from the latest one in '
        'the work dir when no path is given')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision: float16 with loss scaling on GPU, bfloat16 '
        'autocast on CPU')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by the actual total batch size '
        '(config key auto_scale_lr)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. train_dataloader.batch_size=8')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    if not osp.isfile(args.config):
        raise SystemExit(f'config file not found: {args.config}')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = resolve_work_dir(cfg, args.config, args.work_dir)
    lock_work_dir(cfg.work_dir)
    prepare_process(cfg)
    drop_switched_off_hooks(cfg)
    setup_cpu_distributed(cfg)
    watch_distributed_ranks(cfg)
    if args.amp:
        enable_amp(cfg)
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg:
            raise SystemExit('--auto-scale-lr needs `auto_scale_lr = dict('
                             'base_batch_size=...)` in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = resolve_auto_resume(cfg.work_dir)
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    with registry_errors_explained(cfg), input_errors_reported(), \
            stopped_ranks_reported(cfg):
        runner = build_runner(cfg)
        runner.train()


if __name__ == '__main__':
    main()
