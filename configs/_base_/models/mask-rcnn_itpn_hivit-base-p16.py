# Mask R-CNN with iTPN-B and its pre-trained pyramid (official det recipe):
# mmdet's Mask R-CNN whose box head has 4 shared convs + 1 fc with SyncBN and
# regresses decoded boxes with a GIoU loss (weight 10).
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    './itpn-det_hivit-base-p16.py',
]

model = dict(
    backbone={{_base_.itpn_backbone}},
    neck={{_base_.itpn_pyramid}},
    roi_head=dict(
        bbox_head=dict(
            type='Shared4Conv1FCBBoxHead',
            conv_out_channels=256,
            norm_cfg=dict(type='SyncBN', requires_grad=True),
            reg_decoded_bbox=True,
            loss_bbox=dict(type='GIoULoss', loss_weight=10.0))))
