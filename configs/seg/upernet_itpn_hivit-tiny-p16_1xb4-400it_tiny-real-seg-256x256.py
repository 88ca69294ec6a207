# A few-minute CPU overfit run of the iTPN UPerNet on the small real set
# (make the data with tools/dataset_converters/prepare_tiny_real_seg.py):
# the ADE20K model and schedule (same bases, layer-wise lr decay 0.9) with
# the tiny backbone (HiViT 1-1-12, C=192), narrow heads, 256x256 crops and
# 400 iterations from scratch at lr 1e-3 (no pre-training).
_base_ = [
    '../_base_/models/upernet_itpn_hivit-base-p16.py',
    '../_base_/datasets/tiny-real-seg_256x256.py',
    '../_base_/schedules/itpn-seg_adamw_160k.py',
    '../_base_/seg_runtime.py',
]

crop_size = (256, 256)
backbone_dims = (48, 96, 192)
fpn_dim = 64
level_channels = [fpn_dim + c for c in backbone_dims] + \
    [fpn_dim + backbone_dims[-1]]
num_classes = 14

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch='tiny', img_size=crop_size, drop_path_rate=0.),
    neck=dict(in_channels=backbone_dims, out_channels=fpn_dim),
    decode_head=dict(
        in_channels=level_channels, channels=64, num_classes=num_classes),
    auxiliary_head=dict(
        in_channels=level_channels[2], channels=32,
        num_classes=num_classes),
    test_cfg=dict(crop_size=crop_size, stride=(171, 171)))

max_iters = 400
warmup_iters = 40
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type='PolyLR',
        power=1.0,
        eta_min=0.0,
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
auto_scale_lr = dict(base_batch_size=4)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_iters),
    visualization=dict(draw=False))
