# Faster R-CNN (boxes only) with iTPN-B and its pre-trained pyramid: mmdet's
# Faster R-CNN with the official det box head (itpn-det_hivit-base-p16.py),
# as in the Mask R-CNN base without the mask branch.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    './itpn-det_hivit-base-p16.py',
]
from mmitpn.models.utils.strides import pyramid_strides  # noqa: E402

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
        bbox_head={{_base_.itpn_bbox_head}}))
