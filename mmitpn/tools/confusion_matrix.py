"""Confusion matrices of test results (``tools/test.py --out results.pkl``)
for classification, detection and segmentation (the back end of
``tools/analysis_tools/confusion_matrix.py``).

Rows are the true classes, columns the predicted ones:

- classification: one count per image (mmpretrain's
  ``ConfusionMatrix.calculate``);
- detection: the predictions scoring at least ``score_thr`` are matched, in
  order of score, to the unmatched ground-truth box of highest IoU (at least
  ``tp_iou_thr``, whatever its class; IoU by mmdet's ``bbox_overlaps``). A
  match counts at (true class, predicted class); a prediction matching
  nothing at (background, predicted class); a box no prediction matched at
  (true class, background). The ground truth is taken from the results,
  scaled back to the original image like the predictions;
- segmentation: one count per pixel whose label is not ``ignore_index``.
"""
import os.path as osp
from typing import List, Sequence

import numpy as np
import torch
from mmengine.utils import mkdir_or_exist

TASKS = {
    'pred_label': 'classification',
    'pred_instances': 'detection',
    'pred_sem_seg': 'segmentation'
}


class ResultsError(ValueError):
    """Results that hold no confusion matrix; the message says why and how
    to make usable ones."""


def results_task(results: Sequence[dict]) -> str:
    """``'classification'``, ``'detection'`` or ``'segmentation'``, from
    what the first result holds."""
    if not results:
        raise ResultsError('the results file holds no results')
    first = results[0]
    found = [task for key, task in TASKS.items() if key in first]
    gt_key = {
        'classification': 'gt_label',
        'detection': 'gt_instances',
        'segmentation': 'gt_sem_seg'
    }.get(found[0] if found else '')
    if not found or gt_key not in first:
        raise ResultsError(
            'the results hold no ' + (f'ground truth ({gt_key})' if found else
                                      'predictions with ground truth') +
            f' (keys: {", ".join(sorted(first))}); write them with '
            'tools/test.py CONFIG CHECKPOINT --out results.pkl, which keeps '
            'the ground truth of the test pipeline')
    return found[0]


def _largest_label(result: dict, task: str, ignore_index: int) -> int:
    if task == 'classification':
        labels = [result['pred_label'], result['gt_label']]
    elif task == 'detection':
        labels = [
            result['pred_instances']['labels'],
            result['gt_instances']['labels']
        ]
    else:
        gt = result['gt_sem_seg']['data']
        labels = [result['pred_sem_seg']['data'], gt[gt != ignore_index]]
    return max((int(t.max()) for t in labels if t.numel()), default=-1)


def classification_confusion(results: Sequence[dict],
                             num_classes: int) -> np.ndarray:
    from mmpretrain.evaluation import ConfusionMatrix
    pred = torch.cat([r['pred_label'].flatten() for r in results])
    target = torch.cat([r['gt_label'].flatten() for r in results])
    return ConfusionMatrix.calculate(pred, target, num_classes).numpy()


def _tensor(boxes) -> torch.Tensor:
    """A box tensor of mmdet's box types or a plain one."""
    return getattr(boxes, 'tensor', boxes).float()


def detection_confusion(results: Sequence[dict], num_classes: int,
                        score_thr: float, tp_iou_thr: float) -> np.ndarray:
    """``(num_classes + 1)`` square counts; the last row and column are the
    background (see module doc)."""
    from mmdet.structures.bbox import bbox_overlaps
    background = num_classes
    matrix = np.zeros((num_classes + 1, num_classes + 1), np.int64)
    for result in results:
        gt, pred = result['gt_instances'], result['pred_instances']
        # The test pipeline's boxes are on the resized image, the
        # predictions on the original one.
        scale = torch.tensor(result.get('scale_factor', (1., 1.))).repeat(2)
        gt_boxes = _tensor(gt['bboxes']) / scale
        gt_labels = gt['labels'].tolist()
        keep = pred['scores'] >= score_thr
        order = pred['scores'][keep].argsort(descending=True)
        boxes = _tensor(pred['bboxes'])[keep][order]
        labels = pred['labels'][keep][order].tolist()
        ious = bbox_overlaps(gt_boxes, boxes)
        matched = torch.zeros(len(gt_labels), dtype=torch.bool)
        for p, label in enumerate(labels):
            candidates = ious[:, p].masked_fill(matched, -1.)
            if len(gt_labels) and candidates.max() >= tp_iou_thr:
                g = int(candidates.argmax())
                matched[g] = True
                matrix[gt_labels[g], label] += 1
            else:
                matrix[background, label] += 1
        for g, label in enumerate(gt_labels):
            if not matched[g]:
                matrix[label, background] += 1
    return matrix


def segmentation_confusion(results: Sequence[dict], num_classes: int,
                           ignore_index: int) -> np.ndarray:
    counts = torch.zeros(num_classes * num_classes, dtype=torch.int64)
    for result in results:
        pred = result['pred_sem_seg']['data'].flatten().long()
        gt = result['gt_sem_seg']['data'].flatten().long()
        valid = gt != ignore_index
        counts += torch.bincount(
            gt[valid] * num_classes + pred[valid],
            minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).numpy()


def config_classes(cfg) -> List[str]:
    """The class names of the config's test set (its data are not read)."""
    from mmengine.registry import DATASETS, init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    dataset = DATASETS.build(dict(cfg.test_dataloader.dataset, lazy_init=True))
    classes = dataset.metainfo.get('classes')
    if not classes:
        raise ResultsError('the config\'s test set names no classes '
                           '(metainfo.classes)')
    return list(classes)


def confusion_matrix(results: Sequence[dict],
                     classes: Sequence[str],
                     score_thr: float = 0.3,
                     tp_iou_thr: float = 0.5,
                     ignore_index: int = 255):
    """The matrix of ``results`` and its row / column labels (the classes,
    and ``background`` for detection)."""
    task = results_task(results)
    num_classes = len(classes)
    largest = max(_largest_label(r, task, ignore_index) for r in results)
    if largest >= num_classes:
        raise ResultsError(
            f'the results hold class index {largest}, and the config\'s test '
            f'set has {num_classes} classes: give the config the results '
            'were made with')
    if task == 'classification':
        matrix = classification_confusion(results, num_classes)
    elif task == 'detection':
        matrix = detection_confusion(results, num_classes, score_thr,
                                     tp_iou_thr)
        return matrix, list(classes) + ['background']
    else:
        matrix = segmentation_confusion(results, num_classes, ignore_index)
    return matrix, list(classes)


def plot_confusion_matrix(matrix: np.ndarray,
                          labels: Sequence[str],
                          out_file: str = None,
                          title: str = 'Normalized confusion matrix',
                          cmap: str = 'viridis') -> None:
    """Each row as percentages of its true class (empty rows stay 0), the
    counts' percentages written in the cells when there are at most 30
    classes. Writes ``out_file``, or shows the figure when it is None."""
    import matplotlib
    if out_file is not None:
        matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    totals = matrix.sum(axis=1, keepdims=True)
    percent = 100. * matrix / np.maximum(totals, 1)
    size = max(5., 0.5 * len(labels) + 2.)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    image = ax.imshow(percent, cmap=cmap, vmin=0, vmax=100)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label='% of row')
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, labels, rotation=45, ha='right')
    ax.set_yticks(ticks, labels)
    ax.set_xlabel('predicted')
    ax.set_ylabel('true')
    ax.set_title(title)
    if len(labels) <= 30:
        for i, j in np.ndindex(matrix.shape):
            if matrix[i, j]:
                ax.text(
                    j,
                    i,
                    f'{percent[i, j]:.0f}',
                    ha='center',
                    va='center',
                    fontsize=7,
                    color='black' if percent[i, j] > 50 else 'white')
    fig.tight_layout()
    if out_file is None:
        plt.show()
    else:
        mkdir_or_exist(osp.dirname(osp.abspath(out_file)))
        fig.savefig(out_file, dpi=100)
    plt.close(fig)


def save_confusion_csv(matrix: np.ndarray, labels: List[str],
                       out_file: str) -> None:
    """The counts, with a header row and column of class names."""
    import csv
    mkdir_or_exist(osp.dirname(osp.abspath(out_file)))
    with open(out_file, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['true \\ predicted'] + list(labels))
        for label, row in zip(labels, matrix.tolist()):
            writer.writerow([label] + row)
