# `make demo`, second part: fine-tune the demo's pre-trained tiny iTPN
# (configs/pretrain/itpn-demo_fashion-mnist.py) on the labelled Fashion-MNIST
# training set and evaluate on the 10,000 test images. The ImageNet recipe
# (AdamW, layer-wise lr decay, drop path, relative position bias, label
# smoothing) at the demo's size. Mixup,
# CutMix, RandAugment and random erasing are left out: they pay off over
# long schedules, not over two epochs.
_base_ = [
    '../_base_/models/itpn_hivit-tiny-p16.py',
    '../_base_/datasets/fashion-mnist_bs64_cls.py',
    '../_base_/schedules/itpn_finetune_adamw.py',
    '../_base_/cls_runtime.py',
]

# What `tools/run_demo.py` (or tools/train.py on the pre-training config)
# leaves behind; run_demo passes the checkpoint it made.
pretrained = 'work_dirs/itpn-demo_fashion-mnist/iter_1500.pth'

model = dict(
    backbone=dict(
        # The demo pre-training architecture: 4x4 patches on 28x28 images
        # (a 7x7 grid), stage widths 32, 64, 128.
        arch='nano',
        img_size=28,
        patch_size=4,
        drop_path_rate=0.1,
        init_cfg=dict(
            type='Pretrained',
            checkpoint=pretrained,
            prefix='backbone.',
            # Pixel pre-training has no relative position tables: these
            # start at zero (no bias), as in the official fine-tuning.
            allow_missing=['blocks.*.attn.relative_position_bias_table'])),
    neck=dict(in_channels=128),
    head=dict(
        num_classes=10,
        in_channels=128,
        loss=dict(
            _delete_=True,
            type='LabelSmoothLoss',
            label_smooth_val=0.1,
            mode='original')))

# Seven layers: a plain decay per layer (0.75 ** 7 = 0.13 for the patch
# embedding); the 12-layer renormalisation would decay far more steeply.
optim_wrapper = dict(
    optimizer=dict(lr=1e-3),
    paramwise_cfg=dict(layer_decay_rate=0.75, decay_rescale_depth=None))

# 400 iterations of 64 images (0.43 epochs, about 2 minutes on two quiet
# CPU cores); warmup, then cosine decay to 1% of the lr; one evaluation on
# the test set at the end.
max_iters = 400
warmup_iters = 40
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
        eta_min_ratio=1e-2,
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters)
]
train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=max_iters)
# The lr above is for this batch of 64.
auto_scale_lr = dict(base_batch_size=64)

default_hooks = dict(
    # validation metrics logged at their iteration (not under epoch 0)
    logger=dict(interval=50, log_metric_by_epoch=False),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False, window_size=50)
