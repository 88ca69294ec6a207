"""Confusion matrix of test results, for classification, detection
(with a background row and column) and segmentation (per pixel).

Make the results first with ``tools/test.py CONFIG CHECKPOINT --out
results.pkl``; this writes ``SAVE_DIR/confusion_matrix.png`` (rows in
percent of each true class) and ``SAVE_DIR/confusion_matrix.csv`` (counts).

Examples::

    python tools/test.py \\
        configs/det/mask-rcnn_itpn-demo_fashion-mnist-det.py \\
        CKPT --out work_dirs/det_results.pkl
    python tools/analysis_tools/confusion_matrix.py \\
        configs/det/mask-rcnn_itpn-demo_fashion-mnist-det.py \\
        work_dirs/det_results.pkl work_dirs/det_confusion --score-thr 0.3
"""
import argparse
import os.path as osp
import sys

import mmengine
from mmengine.config import DictAction

# This clone's mmitpn first, whatever the environment has installed.
sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))
from mmitpn.tools.config_loading import load_config  # noqa: E402
from mmitpn.tools.confusion_matrix import (  # noqa: E402
    ResultsError, config_classes, confusion_matrix, plot_confusion_matrix,
    save_confusion_csv)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Confusion matrix of test results')
    parser.add_argument('config', help='the config the results were made with')
    parser.add_argument(
        'results', help='results of tools/test.py --out (.pkl)')
    parser.add_argument('save_dir', help='where the matrix is written')
    parser.add_argument(
        '--show', action='store_true', help='also show the matrix')
    parser.add_argument(
        '--score-thr',
        type=float,
        default=0.3,
        help='detection: predictions scoring less are left out')
    parser.add_argument(
        '--tp-iou-thr',
        type=float,
        default=0.5,
        help='detection: least IoU of a prediction with its ground truth')
    parser.add_argument('--cmap', default='viridis', help='matplotlib cmap')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings')
    return parser.parse_args(argv)


def main(argv=None):
    """Returns the matrix (counts) and its labels."""
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    if not osp.isfile(args.results):
        raise SystemExit(f'results file not found: {args.results}')
    if not args.results.endswith(('.pkl', '.pickle')):
        raise SystemExit(
            f'{args.results} is no results file (.pkl); make one with '
            'tools/test.py CONFIG CHECKPOINT --out results.pkl')
    evaluator = cfg.get('test_evaluator')
    ignore_index = evaluator.get('ignore_index', 255) if isinstance(
        evaluator, dict) else 255
    try:
        matrix, labels = confusion_matrix(
            mmengine.load(args.results), config_classes(cfg), args.score_thr,
            args.tp_iou_thr, ignore_index)
    except ResultsError as err:
        raise SystemExit(f'{args.results}: {err}') from err
    if args.show:
        plot_confusion_matrix(matrix, labels, cmap=args.cmap)
    png = osp.join(args.save_dir, 'confusion_matrix.png')
    plot_confusion_matrix(matrix, labels, png, cmap=args.cmap)
    save_confusion_csv(matrix, labels,
                       osp.join(args.save_dir, 'confusion_matrix.csv'))
    print(f'confusion matrix of {int(matrix.sum())} counts written to '
          f'{png} (and .csv)')
    return matrix, labels


if __name__ == '__main__':
    main()
