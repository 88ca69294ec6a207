"""The own-data detection configs (docs/your_own_data.md): Faster R-CNN and
RetinaNet on a box-only COCO set, Mask R-CNN on one with masks, each set up
as the docs say (the data block of a copy of configs/ set to a tiny set the
test writes), shortened by one override, trained and evaluated."""
import json
import os.path as osp
import runpy

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from det_test_utils import SYNTHETIC_CLASSES
from mmitpn.models.utils.strides import pyramid_strides
from own_data_utils import (REPO, TINY_DIMS, TINY_FPN,
                            configs_with_data_block, run_tool,
                            small_images_lines, tiny_model_line, write_config)
from tiny_models import TINY_HIVIT

FASTER = 'faster-rcnn_itpn-pixel_hivit-base-p16_1x_custom-coco.py'
RETINA = 'retinanet_itpn-pixel_hivit-base-p16_1x_custom-coco.py'
MASK = 'mask-rcnn_itpn-pixel_hivit-base-p16_1x_custom-coco.py'
IMAGE_FOLDER = ('itpn-pixel-mfm_hivit-base-p16_8xb64-amp-coslr-400e_'
                'image-folder.py')
# The synthetic images are 96x128: keep them at their size.
SCALE = (128, 128)
ROI_HEADS = dict(
    rpn_head=dict(in_channels=TINY_FPN, feat_channels=TINY_FPN),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=TINY_FPN),
        bbox_head=dict(in_channels=TINY_FPN, conv_out_channels=TINY_FPN,
                       fc_out_channels=64)))
TINY_HEADS = {
    FASTER: ROI_HEADS,
    # every box scored: after a few steps all would be below the default
    # threshold and there would be nothing to evaluate
    RETINA: dict(bbox_head=dict(in_channels=TINY_FPN,
                                feat_channels=TINY_FPN, stacked_convs=1),
                 test_cfg=dict(score_thr=0.)),
    MASK: dict(ROI_HEADS, roi_head=dict(
        ROI_HEADS['roi_head'],
        mask_roi_extractor=dict(out_channels=TINY_FPN),
        mask_head=dict(in_channels=TINY_FPN, conv_out_channels=TINY_FPN))),
}


def _user_configs(tmp_path, data_root, with_masks):
    """configs/ with the data block set to the synthetic set, as a user
    sets it: for a box-only set, its annotation files without masks."""
    ann_file = 'annotations/instances.json'
    if not with_masks:
        with open(osp.join(data_root, ann_file)) as f:
            coco = json.load(f)
        for ann in coco['annotations']:
            del ann['segmentation']
        ann_file = 'annotations/boxes.json'
        with open(osp.join(data_root, ann_file), 'w') as f:
            json.dump(coco, f)
    return configs_with_data_block(
        str(tmp_path), 'custom-coco_detection.py', data_root=data_root,
        classes=SYNTHETIC_CLASSES, train_ann_file=ann_file,
        val_ann_file=ann_file)


def _tiny_user_config(configs, leaf, extra=()):
    """The user's tiny variant of an own-data config: model and images
    shrunk, data and schedule as they are."""
    return write_config(
        osp.join(configs, 'det', 'tiny_' + leaf), './' + leaf,
        [tiny_model_line(**TINY_HEADS[leaf]), *small_images_lines(SCALE),
         *extra])


@pytest.mark.parametrize('leaf', [FASTER, RETINA, MASK])
def test_everything_follows_the_data_block(tmp_path, leaf):
    classes = ('cat', 'dog', 'bird')
    configs = configs_with_data_block(
        str(tmp_path), 'custom-coco_detection.py', data_root='/data/mine/',
        classes=classes, val_ann_file='val/coco.json', val_img_dir='val/')
    cfg = Config.fromfile(osp.join(configs, 'det', leaf))
    model = cfg.model
    heads = ([model.bbox_head] if leaf == RETINA else
             [model.roi_head.bbox_head] +
             ([model.roi_head.mask_head] if leaf == MASK else []))
    assert [h.num_classes for h in heads] == [3] * len(heads)
    for loader in (cfg.train_dataloader, cfg.val_dataloader,
                   cfg.test_dataloader):
        assert loader.dataset.type == 'CocoDataset'
        assert loader.dataset.data_root == '/data/mine/'
        assert loader.dataset.metainfo.classes == classes
    assert cfg.train_dataloader.dataset.ann_file == 'annotations/train.json'
    assert cfg.val_dataloader.dataset.ann_file == 'val/coco.json'
    assert cfg.val_dataloader.dataset.data_prefix.img == 'val/'
    assert cfg.test_evaluator.ann_file == '/data/mine/val/coco.json'
    loads = [t for t in cfg.train_pipeline if t.type == 'LoadAnnotations']
    assert loads[0].get('with_mask', False) == (leaf == MASK)
    assert cfg.test_evaluator.metric == (['bbox', 'segm'] if leaf == MASK
                                         else 'bbox')
    # backbone and pyramid from one pre-training checkpoint
    assert model.backbone.init_cfg.checkpoint == cfg.pretrained
    assert model.neck.init_cfg == dict(
        type='Pretrained', checkpoint=cfg.pretrained, prefix='neck.')
    # strides from the patch size, the warmup and lr steps from the run
    generator = (model.bbox_head if leaf == RETINA else
                 model.rpn_head).anchor_generator
    assert generator.strides == pyramid_strides(16) == [4, 8, 16, 32, 64]
    if leaf != RETINA:
        assert model.roi_head.bbox_roi_extractor.featmap_strides == [
            4, 8, 16, 32]
    assert [s.type for s in cfg.param_scheduler] == [
        'mmitpn.LinearWarmupLR', 'mmitpn.MultiStepFractionLR']
    assert all('end' not in s for s in cfg.param_scheduler)


def _coco_metrics_are_sane(metrics, with_masks):
    kinds = ('bbox', 'segm') if with_masks else ('bbox', )
    for kind in kinds:
        for key in ('mAP', 'mAP_50', 'mAP_75'):
            assert 0. <= metrics[f'coco/{kind}_{key}'] <= 1.
    assert not any(k.startswith('coco/segm') for k in metrics) or with_masks


@pytest.mark.slow
def test_faster_rcnn_with_the_tools_box_only_set(tmp_path, synthetic_coco):
    """tools/train.py with one override for the length, then
    tools/test.py; the training run prints no pkg_resources warnings."""
    configs = _user_configs(tmp_path, synthetic_coco, with_masks=False)
    config = _tiny_user_config(configs, FASTER)
    work_dir = str(tmp_path / 'work')
    train = run_tool('train.py', config, '--work-dir', work_dir,
                     '--cfg-options', 'train_cfg.max_epochs=2')
    assert train.returncode == 0, train.stderr[-3000:]
    assert 'pkg_resources' not in train.stdout + train.stderr
    # 2 epochs of 2 iterations: a 2-step warmup (not 500), then 2 steps at
    # the full lr (the steps at 3/4 and 11/12 fall on the end)
    log = [json.loads(line) for line in open(
        next((tmp_path / 'work').rglob('scalars.json')))
        if '"loss"' in line]
    assert [round(entry['base_lr'], 10) for entry in log] == [2e-4, 2e-4]

    # tools/test.py in this process (its main returns the metrics)
    test_tool = runpy.run_path(osp.join(REPO, 'tools', 'test.py'))
    metrics = test_tool['main'](
        [config, osp.join(work_dir, 'epoch_2.pth'), '--work-dir', work_dir])
    _coco_metrics_are_sane(metrics, with_masks=False)


def _train_and_test(config, work_dir):
    cfg = Config.fromfile(config)
    cfg.merge_from_dict({
        'work_dir': work_dir,
        'train_cfg.max_epochs': 2,
        'train_cfg.val_interval': 2,
        'default_hooks.logger.interval': 1,
    })
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner, runner.test()


@pytest.mark.slow
def test_retinanet_box_only_set(tmp_path, synthetic_coco):
    configs = _user_configs(tmp_path, synthetic_coco, with_masks=False)
    runner, metrics = _train_and_test(
        _tiny_user_config(configs, RETINA), str(tmp_path / 'work'))
    _coco_metrics_are_sane(metrics, with_masks=False)
    head = runner.model.bbox_head
    assert head.num_classes == len(SYNTHETIC_CLASSES)
    assert [s[0] for s in head.prior_generator.strides] == [4, 8, 16, 32, 64]
    # mmdet's RetinaNet anchor sizes (32-813 px), on the pyramid's levels
    sizes = [(a[:, 2:] - a[:, :2]).prod(1).sqrt()
             for a in head.prior_generator.base_anchors]
    assert sizes[0].min().item() == pytest.approx(32)
    assert sizes[-1].max().item() == pytest.approx(812.7, abs=0.1)


@pytest.mark.slow
def test_mask_rcnn_from_image_folder_pretraining(tmp_path, synthetic_coco):
    """Pre-training on a folder of images (the set's own, labels unused)
    at patch size 16 gives the checkpoint the own-data detector loads,
    backbone and pyramid complete; that detector trains and evaluates."""
    configs = _user_configs(tmp_path, synthetic_coco, with_masks=True)
    pretrain = write_config(
        osp.join(configs, 'pretrain', 'tiny_' + IMAGE_FOLDER),
        './' + IMAGE_FOLDER, [
            f'model = dict(backbone=dict(arch=dict(_delete_=True, '
            f'**{TINY_HIVIT!r}), img_size=64),',
            f'    neck=dict(in_channels={TINY_DIMS!r}, '
            f'out_channels={TINY_FPN}),',
            f'    head=dict(in_channels={TINY_FPN}, embed_dims=32, depth=1, '
            'num_heads=2, img_size=64),',
            f'    mfm_head=dict(in_channels={TINY_FPN}, '
            f'out_channels={TINY_DIMS!r}))',
            'train_dataloader = dict(batch_size=2, num_workers=0, '
            'persistent_workers=False, dataset=dict(pipeline=[',
            '    dict(t, scale=64) if t["type"] == "RandomResizedCrop" '
            'else t for t in _base_.train_pipeline]))',
        ])
    cfg = Config.fromfile(pretrain)
    cfg.merge_from_dict({
        'work_dir': str(tmp_path / 'pretrain'),
        'train_dataloader.dataset.data_root': synthetic_coco + 'images',
        'train_cfg.max_epochs': 2,
    })
    Runner.from_cfg(cfg).train()  # 4 images: 2 iterations per epoch
    checkpoint = str(tmp_path / 'pretrain' / 'epoch_2.pth')

    detector = _tiny_user_config(configs, MASK, [
        f'pretrained = {checkpoint!r}',
        'model.update(backbone=dict(model["backbone"], init_cfg=dict('
        'type="Pretrained", checkpoint=pretrained, prefix="backbone.")),',
        '    neck=dict(model["neck"], init_cfg=dict(type="Pretrained", '
        'checkpoint=pretrained, prefix="neck.")))',
    ])
    runner, metrics = _train_and_test(detector, str(tmp_path / 'work'))
    _coco_metrics_are_sane(metrics, with_masks=True)
    state = torch.load(checkpoint, weights_only=False)['state_dict']
    for part in ('backbone', 'neck'):
        report = getattr(runner.model, part).pretrained_report
        own = {k for k in getattr(runner.model, part).state_dict()}
        assert set(report.loaded) == own
        assert not report.missing
        # pixel pre-training has no relative position tables, the
        # detector none either: nothing left over but the pre-training's
        # own parts
        assert {f'{part}.{k}' for k in report.loaded} <= set(state)
