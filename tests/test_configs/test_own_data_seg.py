"""The own-data segmentation config (docs/your_own_data.md) on a two-class
set in mmseg's custom layout that the test writes, set up as the docs say
(the data block of a copy of configs/), shortened by one override, trained
and evaluated."""
import os
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.runner import Runner
from PIL import Image

from own_data_utils import (TINY_DIMS, TINY_FPN, configs_with_data_block,
                            small_images_lines, tiny_model_line,
                            write_config)

LEAF = 'upernet_itpn-pixel_hivit-base-p16_8xb2-40k_custom-seg-512x512.py'
CLASSES = ('background', 'disc')
CROP = (64, 64)


def write_two_class_set(root, splits=(('train', 4), ('val', 2))):
    """Noise images with one bright disc each; label maps 0 (background)
    and 1 (disc) in single-channel PNGs; img_dir/ and ann_dir/ per split."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[:64, :80]
    for split, count in splits:
        os.makedirs(osp.join(root, 'img_dir', split))
        os.makedirs(osp.join(root, 'ann_dir', split))
        for i in range(count):
            image = rng.integers(0, 60, (64, 80, 3), dtype=np.uint8)
            cy, cx, r = rng.integers(20, 44), rng.integers(20, 60), 12
            disc = (rows - cy)**2 + (cols - cx)**2 < r * r
            image[disc] = (200, 80, 80)
            Image.fromarray(image).save(
                osp.join(root, 'img_dir', split, f'{i}.jpg'))
            Image.fromarray(disc.astype(np.uint8)).save(
                osp.join(root, 'ann_dir', split, f'{i}.png'))


def test_everything_follows_the_data_block(tmp_path):
    classes = ('road', 'car', 'tree')
    configs = configs_with_data_block(
        str(tmp_path), 'custom-seg_512x512.py', data_root='/data/mine/',
        classes=classes, img_suffix='.png', seg_map_suffix='_mask.png',
        val_img_dir='images/test')
    cfg = Config.fromfile(osp.join(configs, 'seg', LEAF))
    assert cfg.model.decode_head.num_classes == 3
    assert cfg.model.auxiliary_head.num_classes == 3
    for loader in (cfg.train_dataloader, cfg.val_dataloader,
                   cfg.test_dataloader):
        dataset = loader.dataset
        assert dataset.type == 'BaseSegDataset'
        assert dataset.data_root == '/data/mine/'
        assert dataset.metainfo.classes == classes
        assert (dataset.img_suffix, dataset.seg_map_suffix) == ('.png',
                                                                '_mask.png')
        assert not dataset.reduce_zero_label
    assert cfg.train_dataloader.dataset.data_prefix == dict(
        img_path='img_dir/train', seg_map_path='ann_dir/train')
    assert cfg.val_dataloader.dataset.data_prefix == dict(
        img_path='images/test', seg_map_path='ann_dir/val')
    # label values are class indices: nothing is shifted
    loads = [t for t in cfg.train_pipeline if t.type == 'LoadAnnotations']
    assert not loads[0].get('reduce_zero_label', False)
    assert cfg.test_evaluator.type == 'IoUMetric'
    assert cfg.model.neck.init_cfg == dict(
        type='Pretrained', checkpoint=cfg.checkpoint, prefix='neck.')
    assert cfg.train_cfg.max_iters == 40000
    assert [s.type for s in cfg.param_scheduler] == [
        'mmitpn.LinearWarmupLR', 'mmitpn.PolyAfterWarmupLR']


@pytest.mark.slow
def test_trains_and_evaluates_a_two_class_set(tmp_path):
    data_root = str(tmp_path / 'data')
    write_two_class_set(data_root)
    configs = configs_with_data_block(
        str(tmp_path), 'custom-seg_512x512.py', data_root=data_root,
        classes=CLASSES)
    levels = [TINY_FPN + c for c in TINY_DIMS] + [TINY_FPN + TINY_DIMS[-1]]
    config = write_config(
        osp.join(configs, 'seg', 'tiny_' + LEAF), './' + LEAF, [
            tiny_model_line(
                backbone=dict(img_size=CROP),
                data_preprocessor=dict(size=CROP),
                decode_head=dict(in_channels=levels, channels=32),
                auxiliary_head=dict(in_channels=levels[2], channels=16),
                test_cfg=dict(crop_size=CROP, stride=(43, 43))),
            *small_images_lines((128, 64), crop_size=CROP),
        ])
    cfg = Config.fromfile(config)
    cfg.merge_from_dict({
        'work_dir': str(tmp_path / 'work'),
        'train_cfg.max_iters': 6,
        'default_hooks.logger.interval': 1,
    })
    runner = Runner.from_cfg(cfg)
    runner.train()
    # the one override set the schedule: a 2-step warmup, then poly to 0
    warmup, poly = runner.param_schedulers
    assert (warmup.begin, warmup.end, poly.begin, poly.end) == (0, 2, 2, 6)
    assert runner.optim_wrapper.get_lr()['lr'][0] == 0.
    metrics = runner.test()
    assert set(metrics) >= {'aAcc', 'mIoU', 'mAcc'}
    assert 0. <= float(metrics['mIoU']) <= 100.
    assert runner.model.decode_head.conv_seg.out_channels == len(CLASSES)
