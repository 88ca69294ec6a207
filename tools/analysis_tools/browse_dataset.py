"""Draw what a config's data pipeline gives the model, with the ground
truth (labels, boxes and masks, label maps), by the config's visualizer.

Examples::

    python tools/analysis_tools/browse_dataset.py \\
        configs/det/mask-rcnn_itpn-demo_fashion-mnist-det.py \\
        --output-dir work_dirs/browse_det --not-show --show-number 20
    python tools/analysis_tools/browse_dataset.py \\
        configs/cls/itpn-demo_fashion-mnist_finetune.py --phase val
"""
import argparse
import os.path as osp
import sys

from mmengine.config import DictAction

# This clone's mmitpn first, whatever the environment has installed.
sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))
from mmitpn.tools.config_loading import load_config  # noqa: E402
from mmitpn.tools.dataset_browser import PHASES, browse_dataset  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Browse a data set')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--phase',
        default='train',
        choices=PHASES,
        help='whose dataloader (and pipeline) to draw')
    parser.add_argument(
        '--output-dir', help='write the drawings into this folder')
    parser.add_argument(
        '--not-show', action='store_true', help='do not show them')
    parser.add_argument(
        '--show-number',
        type=int,
        help='draw the first N items (default: all)')
    parser.add_argument(
        '--show-interval', type=float, default=2, help='seconds each is shown')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. '
        'train_dataloader.dataset.data_root=DIR')
    args = parser.parse_args(argv)
    if args.not_show and args.output_dir is None:
        parser.error('--not-show without --output-dir draws nothing')
    return args


def main(argv=None):
    """Returns the names of the drawn items."""
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    names = []
    for name in browse_dataset(cfg, args.phase, args.output_dir,
                               not args.not_show, args.show_number,
                               args.show_interval):
        names.append(name)
        print(f'\r{len(names)} drawn', end='', flush=True)
    print(f'\n{len(names)} items of the {args.phase} set drawn' +
          (f' into {args.output_dir}' if args.output_dir else ''))
    return names


if __name__ == '__main__':
    main()
