"""The mini ablation's Mask R-CNN configs (composed Fashion-MNIST canvases):
the three necks of paper Table 5 on the demo's 4x4-patch backbone."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope

from det_test_utils import DET_CONFIGS, SYNTHETIC_CLASSES

LOADED = osp.join(DET_CONFIGS, 'mask-rcnn_itpn-demo_fashion-mnist-det.py')
RANDOM = osp.join(DET_CONFIGS,
                  'mask-rcnn_itpn-demo_random-pyramid_fashion-mnist-det.py')
MMDET_FPN = osp.join(DET_CONFIGS,
                     'mask-rcnn_itpn-demo_mmdet-fpn_fashion-mnist-det.py')


def test_the_three_necks_differ_only_in_the_neck():
    cfgs = {path: Config.fromfile(path) for path in (LOADED, RANDOM, MMDET_FPN)}
    loaded, random, fpn = (cfgs[p].model for p in (LOADED, RANDOM, MMDET_FPN))
    assert loaded.neck.type == random.neck.type == 'mmitpn.iTPNPyramid'
    assert loaded.neck.init_cfg == dict(
        type='Pretrained', checkpoint=cfgs[LOADED].pretrained, prefix='neck.')
    assert random.neck.init_cfg is None
    assert fpn.neck.type == 'FPN' and fpn.neck.in_channels == [32, 64, 128]
    assert fpn.neck.out_channels == loaded.neck.out_channels == 64
    for model in (random, fpn):
        assert model.backbone == loaded.backbone
        assert model.roi_head == loaded.roi_head
        assert model.rpn_head == loaded.rpn_head
    assert loaded.backbone.init_cfg.prefix == 'backbone.'
    # the demo pre-training's architecture, so its checkpoint loads
    demo = Config.fromfile(
        osp.join(DET_CONFIGS, '..', 'pretrain', 'itpn-demo_fashion-mnist.py'))
    assert loaded.backbone.arch == demo.model.backbone.arch
    assert loaded.backbone.patch_size == demo.model.backbone.patch_size
    assert loaded.neck.fpn_depth == demo.model.neck.fpn_depth
    assert (cfgs[LOADED].model.data_preprocessor.mean ==
            demo.data_preprocessor.mean)


@pytest.mark.parametrize('path', [LOADED, MMDET_FPN], ids=osp.basename)
def test_strides_match_the_features_and_a_step_trains(path, synthetic_coco):
    from mmdet.registry import DATASETS, MODELS
    cfg = Config.fromfile(path)
    dataset_cfg = cfg.train_dataloader.dataset
    dataset_cfg.update(
        data_root=synthetic_coco,
        ann_file='annotations/instances.json',
        metainfo=dict(classes=SYNTHETIC_CLASSES))
    init_default_scope('mmdet')
    dataset = DATASETS.build(dataset_cfg)
    cfg.model.backbone.init_cfg = None
    cfg.model.neck.pop('init_cfg', None)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.init_weights()
    model.train()
    data = model.data_preprocessor(
        pseudo_collate([dataset[0], dataset[1]]), True)
    # 96x128 images resized into the 56x56 canvas size, padded to 16
    assert data['inputs'].shape[-2:] == (48, 64)
    feats = model.extract_feat(data['inputs'])
    strides = cfg.model.rpn_head.anchor_generator.strides
    assert [f.shape[-2:] for f in feats] == [
        (-(-48 // s), -(-64 // s)) for s in strides
    ]
    assert cfg.model.roi_head.bbox_roi_extractor.featmap_strides == strides[:4]
    losses = model(**data, mode='loss')
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total) and total > 0
    assert losses['loss_mask'] > 0
    total.backward()
    grads = [p.grad for p in model.backbone.patch_embed.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
