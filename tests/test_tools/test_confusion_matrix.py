"""tools/analysis_tools/confusion_matrix.py: counts of hand-made results of
each task, and the tool on the demo configs' class names."""
import csv

import mmcv
import mmengine
import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmitpn.tools.confusion_matrix import (ResultsError, config_classes,
                                           confusion_matrix)
from tool_test_utils import CLS_CONFIG, DET_CONFIG, SEG_CONFIG, load_tool

FASHION_CLASSES = [
    'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
    'Sneaker', 'Bag', 'Ankle boot'
]


@pytest.fixture(scope='module')
def confusion_tool():
    return load_tool('analysis_tools', 'confusion_matrix.py')


def _cls_result(gt, pred):
    return dict(
        gt_label=torch.tensor([gt]),
        pred_label=torch.tensor([pred]),
        pred_score=torch.rand(10))


def _det_result():
    """Ground truth of classes 0, 1, 2 on the test pipeline's image, twice
    the original size; predictions on the original image."""
    gt_boxes = torch.tensor([[0., 0., 10., 10.], [20., 20., 30., 30.],
                             [40., 40., 50., 50.]]) * 2
    pred = [
        ([0., 0., 10., 10.], 0, .9),  # on box 0, right class
        ([20., 20., 30., 31.], 2, .8),  # on box 1, class 2 for 1
        ([0., 0., 10., 9.], 1, .7),  # on box 0 again: already matched
        ([20., 20., 30., 30.], 1, .1),  # below the score threshold
        ([70., 70., 80., 80.], 0, .6),  # on nothing
    ]  # box 2 is missed
    return dict(
        scale_factor=(2., 2.),
        gt_instances=dict(bboxes=gt_boxes, labels=torch.tensor([0, 1, 2])),
        pred_instances=dict(
            bboxes=torch.tensor([p[0] for p in pred]),
            labels=torch.tensor([p[1] for p in pred]),
            scores=torch.tensor([p[2] for p in pred])))


def test_detection_matches_by_score_and_iou():
    matrix, labels = confusion_matrix([_det_result()], ['a', 'b', 'c'],
                                      score_thr=0.3,
                                      tp_iou_thr=0.5)
    assert labels == ['a', 'b', 'c', 'background']
    expected = np.zeros((4, 4), int)
    expected[0, 0] = 1  # true positive
    expected[1, 2] = 1  # b detected as c
    expected[3, 1] = 1  # a second detection of box 0
    expected[3, 0] = 1  # a detection of nothing
    expected[2, 3] = 1  # c missed
    np.testing.assert_array_equal(matrix, expected)
    # a stricter IoU leaves the slightly shifted box-1 detection unmatched
    strict, _ = confusion_matrix([_det_result()], ['a', 'b', 'c'],
                                 score_thr=0.3,
                                 tp_iou_thr=0.95)
    assert strict[1, 2] == 0 and strict[1, 3] == 1 and strict[3, 2] == 1


def test_segmentation_counts_pixels_and_skips_ignored():
    gt = torch.tensor([[[0, 0, 1, 255]]])
    pred = torch.tensor([[[0, 1, 1, 0]]])
    result = dict(gt_sem_seg=dict(data=gt), pred_sem_seg=dict(data=pred))
    matrix, labels = confusion_matrix([result, result], ['x', 'y'])
    np.testing.assert_array_equal(matrix, [[2, 2], [0, 2]])
    assert labels == ['x', 'y']


def test_results_that_do_not_fit_are_refused():
    with pytest.raises(ResultsError, match=r'no ground truth \(gt_label\)'):
        confusion_matrix([dict(pred_label=torch.tensor([1]))], ['a', 'b'])
    with pytest.raises(ResultsError, match='tools/test.py CONFIG'):
        confusion_matrix([dict(img_path='x.png')], ['a', 'b'])
    with pytest.raises(ResultsError, match='class index 3.* 2 classes'):
        confusion_matrix([_cls_result(0, 3)], ['a', 'b'])


def test_class_names_come_from_the_demo_configs():
    assert config_classes(Config.fromfile(DET_CONFIG)) == FASHION_CLASSES
    seg = config_classes(Config.fromfile(SEG_CONFIG))
    assert len(seg) == 14 and seg[0] == 'background'


def test_tool_writes_plot_and_counts(confusion_tool, tmp_path):
    results = [
        _cls_result(gt, pred)
        for gt, pred in [(0, 0), (0, 0), (0, 6), (6, 6), (9, 7)]
    ]
    mmengine.dump(results, str(tmp_path / 'results.pkl'))
    matrix, labels = confusion_tool.main(
        [CLS_CONFIG,
         str(tmp_path / 'results.pkl'),
         str(tmp_path / 'out')])
    assert labels == FASHION_CLASSES
    assert (matrix[0, 0], matrix[0, 6], matrix[6, 6], matrix[9, 7],
            matrix.sum()) == (2, 1, 1, 1, 5)
    with open(tmp_path / 'out' / 'confusion_matrix.csv') as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['true \\ predicted'] + FASHION_CLASSES
    assert rows[1][1:] == ['2', '0', '0', '0', '0', '0', '1', '0', '0', '0']
    image = mmcv.imread(str(tmp_path / 'out' / 'confusion_matrix.png'))
    assert image.shape[0] > 400 and image.shape[1] > 400

    with pytest.raises(SystemExit, match='is no results file'):
        confusion_tool.main([CLS_CONFIG, CLS_CONFIG, str(tmp_path)])
