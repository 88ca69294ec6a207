# Overfit / smoke run of the det recipe on CPU: Mask R-CNN with a tiny iTPN
# (C=128, 1-1-4 blocks, 0.9 M parameters), a 64-channel pyramid and
# heads, trained from scratch at 256 px on the 18 real images of
# tools/dataset_converters/prepare_tiny_coco_instances.py, then evaluated by
# mmdet's CocoMetric on the same images. Everything else (box head, pyramid
# with avg-pooled extra levels, AdamW with layer decay) is the COCO recipe.
_base_ = './mask-rcnn_itpn-pixel_hivit-base-p16_ms-crop-1x_coco.py'

data_root = 'data/tiny_coco_instances/'
ann_file = 'annotations/instances.json'
metainfo = dict(classes=(
    'nucleus', 'bottle', 'chair', 'person', 'diningtable', 'mouse_traps',
    'burts_bees_baby_wipes', 'laugh_out_loud_jokes', 'irish_spring_soap',
    'measuring_spoons', 'fiskars_scissors', 'ice_cube_tray', 'hanes_socks'))
num_classes = 13
img_scale = (256, 256)
backbone_dims = (32, 64, 128)
fpn_dim = 64

model = dict(
    backbone=dict(
        arch='nano',  # C = 128, so the widths are backbone_dims
        drop_path_rate=0.,
        init_cfg=None),
    neck=dict(
        in_channels=backbone_dims,
        out_channels=fpn_dim,
        fpn_depth=1,
        init_cfg=None),
    rpn_head=dict(in_channels=fpn_dim, feat_channels=fpn_dim),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=fpn_dim),
        bbox_head=dict(
            in_channels=fpn_dim,
            conv_out_channels=fpn_dim,
            fc_out_channels=256,
            num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=fpn_dim),
        mask_head=dict(
            in_channels=fpn_dim,
            conv_out_channels=fpn_dim,
            num_classes=num_classes)),
    # fewer proposals and sampled RoIs than on COCO: RoIAlign and NMS
    # dominate a CPU step
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(max_per_img=300)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]
tiny_coco = dict(
    data_root=data_root,
    ann_file=ann_file,
    data_prefix=dict(img='images/'),
    metainfo=metainfo)
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(pipeline=train_pipeline, **tiny_coco))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(pipeline=test_pipeline, **tiny_coco))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + ann_file, classwise=True)
test_evaluator = val_evaluator

# 60 epochs of 9 iterations; lr for a from-scratch tiny model, batch 2.
max_epochs = 60
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
        end=50),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[45, 55],
        gamma=0.1)
]
auto_scale_lr = dict(base_batch_size=2)
default_hooks = dict(
    logger=dict(interval=9),
    checkpoint=dict(interval=max_epochs))
