# RetinaNet (one stage, boxes only) with iTPN-B and its pre-trained pyramid:
# mmdet's RetinaNet head on the pyramid's five levels. Those are at strides
# 4-64 (patch size 16), one octave finer than mmdet's RetinaNet (8-128 from
# ResNet's C3-C5 plus two extra convs), so the anchors are twice as many
# strides large (octave_base_scale 8 instead of 4): the same 32-813 px
# anchor sizes as mmdet's RetinaNet, on finer maps.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    './itpn-det_hivit-base-p16.py',
]
from mmitpn.models.utils.strides import pyramid_strides  # noqa: E402

strides = pyramid_strides(_base_.itpn_backbone.patch_size,
                          _base_.itpn_pyramid.num_outs)
model = dict(
    backbone={{_base_.itpn_backbone}},
    neck={{_base_.itpn_pyramid}},
    bbox_head=dict(
        anchor_generator=dict(strides=strides, octave_base_scale=8)))
