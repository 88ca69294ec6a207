"""tools/analysis_tools/browse_dataset.py on the demo configs: the pipeline
outputs drawn with their ground truth."""
import mmcv
import pytest
from mmengine.config import Config

from mmitpn.tools.dataset_browser import browse_dataset
from tool_test_utils import (CLS_CONFIG, DET_CONFIG, SEG_CONFIG, load_tool,
                             write_fashion_mnist_det, write_synthetic_seg_set)


@pytest.fixture(scope='module')
def browse_tool():
    return load_tool('analysis_tools', 'browse_dataset.py')


def test_classification_items_with_their_labels(browse_tool, tmp_path):
    names = browse_tool.main([
        CLS_CONFIG, '--phase', 'test', '--output-dir',
        str(tmp_path), '--not-show', '--show-number', '3'
    ])
    assert names == ['0', '1', '2']
    for name in names:
        image = mmcv.imread(str(tmp_path / f'{name}.png'))
        # drawn at 224 pixels, the label written in white at the top
        assert image.shape == (224, 224, 3)
        assert (image[:20] == 255).any()


def test_detection_items_with_boxes_and_masks(browse_tool, tmp_path):
    data_root = write_fashion_mnist_det(tmp_path / 'data')
    names = browse_tool.main([
        DET_CONFIG, '--output-dir',
        str(tmp_path / 'out'), '--not-show', '--cfg-options',
        f'train_dataloader.dataset.data_root={data_root}'
    ])
    # the two training canvases, after the training pipeline (random flip)
    assert names == ['0_000001', '1_000002']
    for name in names:
        drawn = mmcv.imread(str(tmp_path / 'out' / f'{name}.png'))
        canvas = mmcv.imread(
            str(tmp_path / 'data' / 'images' / 'train' /
                f'{name.split("_")[1]}.png'))
        assert drawn.shape == (56, 56, 3)
        # boxes, masks and class names are drawn over both orientations
        assert (drawn != canvas).any() and (drawn != canvas[:, ::-1]).any()


def test_segmentation_items_with_label_maps(tmp_path):
    data_root = str(tmp_path / 'data')
    write_synthetic_seg_set(data_root)
    cfg = Config.fromfile(SEG_CONFIG)
    cfg.train_dataloader.dataset.data_root = data_root
    out = tmp_path / 'out'
    names = list(browse_dataset(cfg, output_dir=str(out), show_number=2))
    assert names == ['0_img0', '1_img1']
    for name in names:
        drawn = mmcv.imread(str(out / f'{name}.png'))
        # a 256-pixel crop of the randomly resized image
        assert drawn.shape[2] == 3 and max(drawn.shape[:2]) <= 256


def test_bad_requests_are_refused(browse_tool):
    with pytest.raises(SystemExit):  # argparse: nothing to do
        browse_tool.parse_args([CLS_CONFIG, '--not-show'])
    cfg = Config.fromfile(CLS_CONFIG)
    cfg.val_dataloader = None
    with pytest.raises(ValueError, match='no val_dataloader'):
        next(browse_dataset(cfg, phase='val', output_dir='unused'))
