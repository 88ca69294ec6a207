"""A detector whose heads assume other strides than its iTPN pyramid has
does not start."""
import os.path as osp
from types import SimpleNamespace

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmitpn.engine.hooks import PyramidStrideCheckHook
from mmitpn.engine.hooks.pyramid_stride_check_hook import \
    head_stride_mismatches

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(REPO, 'configs', 'det',
                'mask-rcnn_itpn-demo_fashion-mnist-det.py')
# The demo detector with another patch size and nothing else changed.
PATCH_8 = {'model.backbone.patch_size': 8, 'model.backbone.img_size': 32}


def _detector(config=DEMO, **options):
    from mmdet.registry import MODELS
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(options)
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(cfg.model)


def _check(model):
    PyramidStrideCheckHook().before_run(SimpleNamespace(model=model))


def test_strides_derived_from_the_patch_size_pass():
    model = _detector()  # patch size 4: levels at strides 1 ... 16
    assert model.rpn_head.prior_generator.strides[0] == (1, 1)
    assert head_stride_mismatches(model) == []
    _check(model)


def test_mmdet_fpn_on_the_backbone_is_checked_too():
    model = _detector(osp.join(
        REPO, 'configs', 'det',
        'mask-rcnn_itpn-demo_mmdet-fpn_fashion-mnist-det.py'))
    assert head_stride_mismatches(model) == []
    model = _detector(osp.join(
        REPO, 'configs', 'det',
        'mask-rcnn_itpn-demo_mmdet-fpn_fashion-mnist-det.py'),
        **PATCH_8)
    assert len(head_stride_mismatches(model)) == 3


def test_a_patch_size_changed_alone_is_refused():
    model = _detector(**PATCH_8)
    assert head_stride_mismatches(model) == [
        'model.rpn_head.anchor_generator.strides = [1, 2, 4, 8, 16], but '
        'its levels are at [2, 4, 8, 16, 32]',
        'model.roi_head.bbox_roi_extractor.featmap_strides = [1, 2, 4, 8], '
        'but its levels are at [2, 4, 8, 16]',
        'model.roi_head.mask_roi_extractor.featmap_strides = [1, 2, 4, 8], '
        'but its levels are at [2, 4, 8, 16]',
    ]
    with pytest.raises(ValueError) as error:
        _check(model)
    message = str(error.value)
    assert 'patch_size 8, 5 levels' in message
    assert 'pyramid_strides(patch_size)' in message
    assert 'docs/your_own_data.md' in message


def test_retinanet_anchors_are_checked():
    model = _detector(
        osp.join(REPO, 'configs', '_base_', 'models',
                 'retinanet_itpn_hivit-base-p16.py'),
        **{'model.bbox_head.anchor_generator.strides': [8, 16, 32, 64, 128]})
    assert head_stride_mismatches(model) == [
        'model.bbox_head.anchor_generator.strides = [8, 16, 32, 64, 128], '
        'but its levels are at [4, 8, 16, 32, 64]']


def test_other_backbones_are_not_checked():
    model = _detector(**{'model.backbone': dict(
        _delete_=True, type='ResNet', depth=18, num_stages=4,
        out_indices=(0, 1, 2, 3))})
    assert head_stride_mismatches(model) == []
