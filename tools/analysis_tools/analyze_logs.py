"""Plot the curves of training runs, or time their iterations, from
mmengine's scalar logs.

Each LOG is a ``vis_data/scalars.json`` (or ``<timestamp>.json``) file, a
run folder ``WORK_DIR/<timestamp>``, or a work dir, whose runs (a resumed run
continues the one before) are read in order.

Examples::

    python tools/analysis_tools/analyze_logs.py plot_curve \\
        work_dirs/itpn-demo_fashion-mnist_finetune \\
        --keys loss accuracy/top1 --out finetune.png
    python tools/analysis_tools/analyze_logs.py plot_curve \\
        work_dirs/run_a work_dirs/run_b --keys loss --legend a b --out ab.png
    python tools/analysis_tools/analyze_logs.py cal_train_time \\
        work_dirs/itpn-demo_fashion-mnist
"""
import argparse
import os.path as osp
import sys

# This clone's mmitpn first, whatever the environment has installed.
sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))
from mmitpn.tools.log_analysis import (  # noqa: E402
    LogAnalysisError, plot_scalar_curves, read_scalar_log, train_time)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Analyze training logs')
    commands = parser.add_subparsers(dest='command', required=True)
    logs = argparse.ArgumentParser(add_help=False)
    logs.add_argument(
        'logs',
        nargs='+',
        metavar='LOG',
        help='scalars.json file, run folder or work dir')
    plot = commands.add_parser(
        'plot_curve',
        parents=[logs],
        help='plot logged values against the iteration')
    plot.add_argument(
        '--keys',
        nargs='+',
        default=['loss'],
        help='logged keys, one panel each (e.g. loss lr accuracy/top1 '
        'coco/bbox_mAP mIoU)')
    plot.add_argument('--legend', nargs='+', help='one name per LOG')
    plot.add_argument('--title', help='figure title')
    plot.add_argument(
        '--out', help='image file to write; without it the figure is shown')
    timing = commands.add_parser(
        'cal_train_time',
        parents=[logs],
        help='seconds per training iteration')
    timing.add_argument(
        '--include-outliers',
        action='store_true',
        help='also count the first logging interval of each run and epoch')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        logs = [read_scalar_log(path) for path in args.logs]
        if args.command == 'plot_curve':
            plot_scalar_curves(logs, args.keys, args.out, args.title,
                               args.legend)
            if args.out:
                print(f'wrote {args.out}')
            return None
        times = [train_time(log, args.include_outliers) for log in logs]
    except LogAnalysisError as err:
        raise SystemExit(f'error: {err}') from err
    for log, t in zip(logs, times):
        print(f'-----Analyze train time of {log.name}-----')
        print(f'slowest interval: step {t.slowest[0]}, {t.slowest[1]:.4f} '
              's/iter')
        print(f'fastest interval: step {t.fastest[0]}, {t.fastest[1]:.4f} '
              's/iter')
        left_out = (f'; {t.excluded} start-up intervals left out'
                    if t.excluded else '')
        print(f'average iter time: {t.mean:.4f} s/iter (std {t.std:.4f}) '
              f'over {t.intervals} logged intervals{left_out}')
    return times


if __name__ == '__main__':
    main()
