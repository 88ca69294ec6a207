# Mini ablation (docs/mini_ablation.md), detection, "pyramid loaded": Mask
# R-CNN on the composed Fashion-MNIST set with the demo's tiny iTPN backbone
# AND pyramid taken from an integral pre-training checkpoint (paper Table 5,
# iPT with the pre-trained pyramid). The heads are mmdet's Mask R-CNN heads,
# narrowed to the 64-channel pyramid; the recipe is the COCO one (AdamW,
# layer-wise lr decay 0.9) on a CPU-sized schedule and box head.
_base_ = [
    '../_base_/models/mask-rcnn_itpn_hivit-base-p16.py',
    '../_base_/datasets/fashion-mnist-det_56x56.py',
    '../_base_/schedules/itpn-det_adamw_1x.py',
    '../_base_/det_runtime.py',
]
from mmitpn.models.utils.strides import pyramid_strides  # noqa: E402

# What the demo pre-training (or the integral rows of the mini ablation)
# leaves behind; the mini-ablation driver passes the checkpoint it made.
pretrained = 'work_dirs/itpn-demo_fashion-mnist/iter_1500.pth'
backbone_dims = [32, 64, 128]  # a list: mmdet's FPN takes no tuple
fpn_dim = 64
# 4x4 patches: the three stages are at strides 1, 2 and 4 of the 56x56
# canvas; the pyramid adds avg-pooled levels at strides 8 and 16.
patch_size = 4
strides = pyramid_strides(patch_size)

model = dict(
    # the pre-training normalisation (Fashion-MNIST pixel mean and std)
    data_preprocessor=dict(
        mean=[72.94] * 3, std=[90.02] * 3, pad_size_divisor=16),
    backbone=dict(
        arch='nano',  # C = 128, so the widths are backbone_dims
        img_size=28,
        patch_size=patch_size,
        drop_path_rate=0.,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(
        in_channels=backbone_dims,
        out_channels=fpn_dim,
        fpn_depth=1,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='neck.')),
    rpn_head=dict(
        in_channels=fpn_dim,
        feat_channels=fpn_dim,
        # anchors of 8-128 pixels; the items are 28 pixels at most
        anchor_generator=dict(strides=strides)),
    roi_head=dict(
        bbox_roi_extractor=dict(
            out_channels=fpn_dim, featmap_strides=strides[:4]),
        # mmdet's standard two-fc box head: the COCO recipe's four 3x3 convs
        # over every sampled RoI would be most of a CPU step
        bbox_head=dict(
            _delete_=True,
            type='Shared2FCBBoxHead',
            in_channels=fpn_dim,
            fc_out_channels=256,
            roi_feat_size=7,
            num_classes=10,
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder',
                target_means=[0., 0., 0., 0.],
                target_stds=[0.1, 0.1, 0.2, 0.2]),
            reg_class_agnostic=False,
            loss_cls=dict(
                type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        mask_roi_extractor=dict(
            out_channels=fpn_dim, featmap_strides=strides[:4]),
        mask_head=dict(
            in_channels=fpn_dim, conv_out_channels=fpn_dim,
            num_classes=10)),
    # at most 5 objects per image: far fewer proposals and sampled RoIs than
    # on COCO, whose numbers would make RoIAlign and NMS dominate a CPU step
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=200), rcnn=dict(max_per_img=20)))

# 400 iterations of 8 canvases (1.1 epochs of the 3000, about 10 minutes on
# one CPU core), warmup, lr / 10 for the last 20%; validation every 200
# iterations for the mAP curve.
max_iters = 400
train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=200)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
        end=100),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_iters,
        by_epoch=False,
        milestones=[int(max_iters * 0.8)],
        gamma=0.1)
]
auto_scale_lr = dict(base_batch_size=8)
default_hooks = dict(
    # validation metrics logged at their iteration (not under epoch 0)
    logger=dict(interval=50, log_metric_by_epoch=False),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False, window_size=50)
