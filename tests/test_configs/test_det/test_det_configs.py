"""configs/det: mmdet-based configs parse with the paper's recipe, and the
tiny one builds and trains (loss forward + backward) on a synthetic batch."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope

from det_test_utils import DET_CONFIGS, tiny_det_cfg

COCO_CONFIGS = sorted(
    p for p in glob.glob(osp.join(DET_CONFIGS, '*.py'))
    if p.endswith('_coco.py'))


def test_every_scale_schedule_and_pretraining_has_a_config():
    names = {osp.basename(p) for p in COCO_CONFIGS}
    for algo, schedule in (('mask-rcnn', '1x'), ('mask-rcnn', '3x'),
                           ('cascade-mask-rcnn', '3x')):
        for pretrain, size in (('pixel', 'base'), ('clip-b', 'base'),
                               ('pixel', 'large'), ('clip-l', 'large')):
            assert (f'{algo}_itpn-{pretrain}_hivit-{size}-p16_ms-crop-'
                    f'{schedule}_coco.py') in names
    assert any('mmdet-fpn' in n for n in names)


@pytest.mark.parametrize('path', COCO_CONFIGS, ids=osp.basename)
def test_coco_config_recipe(path):
    cfg = Config.fromfile(path)
    name = osp.basename(path)
    large = 'large' in name
    assert cfg.default_scope == 'mmdet'
    model = cfg.model
    assert model.type == ('CascadeRCNN' if name.startswith('cascade')
                          else 'MaskRCNN')
    backbone = model.backbone
    assert backbone.type == 'mmitpn.iTPNHiViT'
    assert backbone.arch == ('large' if large else 'base')
    assert 'depth' not in backbone  # mmdet's ResNet keys are gone
    assert backbone.out_indices == (0, 1, 2)
    assert backbone.init_cfg.type == 'Pretrained'
    assert backbone.init_cfg.prefix == 'backbone.'
    clip = 'clip' in name
    assert backbone.get('layer_scale_init_value', 0.) == (0.1 if clip else 0.)
    assert backbone.drop_path_rate > 0
    in_channels = (192, 384, 768) if large else (128, 256, 512)
    if 'mmdet-fpn' in name:
        assert model.neck.type == 'FPN' and 'init_cfg' not in model.neck
        assert tuple(model.neck.in_channels) == in_channels
    else:
        neck = model.neck
        assert neck.type == 'mmitpn.iTPNPyramid'
        assert tuple(neck.in_channels) == in_channels
        assert (neck.num_outs, neck.extra_pool) == (5, 'avg')
        assert neck.fpn_depth == (1 if clip else 2)
        # backbone and pyramid come from the same pre-training checkpoint
        assert neck.init_cfg == dict(type='Pretrained',
                                     checkpoint=backbone.init_cfg.checkpoint,
                                     prefix='neck.')
    heads = model.roi_head.bbox_head
    for head in heads if isinstance(heads, list) else [heads]:
        assert head.type == 'Shared4Conv1FCBBoxHead'
        assert head.reg_decoded_bbox and head.loss_bbox.type == 'GIoULoss'
        assert head.norm_cfg.type == 'SyncBN'

    optim = cfg.optim_wrapper
    assert optim.constructor == 'mmitpn.iTPNLayerDecayOptimWrapperConstructor'
    assert optim.optimizer.type == 'AdamW'
    assert optim.optimizer.weight_decay == 0.05
    assert optim.paramwise_cfg.layer_decay_rate == (0.95 if large else 0.9)
    epochs = 12 if '1x' in name else 36
    assert cfg.train_cfg.max_epochs == epochs
    # lr /10 after 3/4 and 11/12 of the run
    assert cfg.param_scheduler[1].milestone_fractions == (3 / 4, 11 / 12)
    assert cfg.test_evaluator.type == 'CocoMetric'
    assert cfg.test_evaluator.metric == ['bbox', 'segm']
    resize = cfg.train_pipeline[3].transforms[0][0]
    assert [s[0] for s in resize.scales] == list(range(480, 801, 32))


def test_mask_rcnn_base_builds_with_official_param_count():
    """Reference NOTES §4: 101.46 M with the pre-training pyramid (fpn_depth
    2), whose only difference to the released det model (100.41 M) is the
    second block of each top-down fusion."""
    from mmdet.registry import MODELS
    cfg = Config.fromfile(COCO_CONFIGS[[
        osp.basename(p) for p in COCO_CONFIGS
    ].index('mask-rcnn_itpn-pixel_hivit-base-p16_ms-crop-1x_coco.py')])
    init_default_scope('mmdet')
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    params = sum(p.numel() for p in model.parameters())
    assert params == pytest.approx(101.46e6, rel=2e-3)


def test_tiny_config_loss_forward_and_backward(synthetic_coco):
    from mmdet.registry import DATASETS, MODELS
    cfg = tiny_det_cfg(synthetic_coco)
    init_default_scope('mmdet')
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.init_weights()
    model.train()
    data = model.data_preprocessor(
        pseudo_collate([dataset[0], dataset[1]]), True)
    assert data['inputs'].shape[-1] == 256  # long side of the 96x128 images
    losses = model(**data, mode='loss')
    for key in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox',
                'loss_mask'):
        assert key in losses
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total) and total > 0
    total.backward()
    for part in (model.backbone.patch_embed, model.backbone.blocks[-1],
                 model.neck.out_blocks[0]):
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)
