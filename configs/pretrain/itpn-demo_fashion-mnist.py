# `make demo`: integral pre-training (pixel MIM + MFM with an EMA teacher,
# paper Eq. 4) of a tiny iTPN on the 60,000 Fashion-MNIST training images,
# sized to finish in about ten minutes on two CPU cores. The recipe is the
# ImageNet one (same bases); only sizes and schedule differ.
_base_ = [
    '../_base_/models/itpn_pretrain_pixel-mfm_hivit-base-p16.py',
    '../_base_/datasets/fashion-mnist_bs64_mim.py',
    '../_base_/schedules/itpn_pretrain_pixel_adamw.py',
    '../_base_/pretrain_runtime.py',
]

# 28x28 images in 4x4 patches: a 7x7 patch grid, 12 of 49 patches visible at
# mask ratio 0.75. Stage widths C/4, C/2, C = 32, 64, 128.
img_size = {{_base_.img_size}}
patch_size = 4
backbone_dims = (32, 64, 128)
fpn_dim = 64

model = dict(
    backbone=dict(
        arch='nano',  # C = 128, so the widths are backbone_dims
        img_size=img_size,
        patch_size=patch_size),
    neck=dict(in_channels=backbone_dims, out_channels=fpn_dim, fpn_depth=1),
    head=dict(
        in_channels=fpn_dim,
        embed_dims=128,
        depth=2,
        num_heads=4,
        patch_size=patch_size,
        img_size=img_size),
    mfm_head=dict(in_channels=fpn_dim, out_channels=backbone_dims))

# 1500 iterations of 64 images (1.6 epochs), 0.3-0.45 s each on 2 CPU cores
# (measured; the more other processes share the cores, the slower).
# Iteration-based: warmup, then cosine decay over the rest.
max_iters = 1500
warmup_iters = 100
optim_wrapper = dict(optimizer=dict(lr=1.5e-3))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type='CosineAnnealingLR',
        T_max=max_iters - warmup_iters,
        eta_min=1e-5,
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters)
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters)
# The lr above is for this batch of 64.
auto_scale_lr = dict(base_batch_size=64)

default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=500, max_keep_ckpts=2))
log_processor = dict(by_epoch=False, window_size=20)
