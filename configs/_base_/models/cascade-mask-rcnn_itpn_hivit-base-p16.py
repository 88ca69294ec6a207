# Cascade Mask R-CNN with iTPN-B and its pre-trained pyramid: mmdet's cascade
# with, at every stage, a class-specific box head of 4 shared convs + 1 fc
# with SyncBN regressing decoded boxes with a GIoU loss (weight 10).
_base_ = [
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
    './itpn-det_hivit-base-p16.py',
]
from mmitpn.models.utils.strides import pyramid_strides  # noqa: E402


def conv_bbox_head(target_stds):
    return dict(
        type='Shared4Conv1FCBBoxHead',
        in_channels=256,
        conv_out_channels=256,
        fc_out_channels=1024,
        roi_feat_size=7,
        num_classes=80,
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[0., 0., 0., 0.],
            target_stds=target_stds),
        reg_class_agnostic=False,
        reg_decoded_bbox=True,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        loss_cls=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=10.0))


# The RPN's anchors on all pyramid levels, RoIs pooled from the first four
# (strides 4-64 and 4-32 at patch size 16).
strides = pyramid_strides(_base_.itpn_backbone.patch_size,
                          _base_.itpn_pyramid.num_outs)
model = dict(
    backbone={{_base_.itpn_backbone}},
    neck={{_base_.itpn_pyramid}},
    rpn_head=dict(anchor_generator=dict(strides=strides)),
    roi_head=dict(
        bbox_roi_extractor=dict(featmap_strides=strides[:4]),
        bbox_head=[
            conv_bbox_head([0.1, 0.1, 0.2, 0.2]),
            conv_bbox_head([0.05, 0.05, 0.1, 0.1]),
            conv_bbox_head([0.033, 0.033, 0.067, 0.067]),
        ],
        mask_roi_extractor=dict(featmap_strides=strides[:4])))
