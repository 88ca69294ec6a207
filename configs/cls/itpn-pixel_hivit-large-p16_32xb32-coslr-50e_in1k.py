# Fine-tuning iTPN-L pre-trained with pixel supervision on ImageNet-1k
# (official itpn_pixel README launch line): 50 epochs (5 warmup), total
# batch 1024 (32 GPUs x 32), lr 4e-3 (base lr 1e-3 per 256), layer decay
# 0.55, drop path 0.2; the rest as iTPN-B.
_base_ = './itpn-pixel_hivit-base-p16_32xb32-coslr-100e_in1k.py'

pretrained = 'work_dirs/itpn-pixel_hivit-large-p16_8xb512-amp-coslr-1600e_in1k/epoch_1600.pth'  # noqa: E501

model = dict(
    backbone=dict(
        arch='large',
        drop_path_rate=0.2,
        init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=768),
    head=dict(in_channels=768))

optim_wrapper = dict(
    optimizer=dict(lr=4e-3), paramwise_cfg=dict(layer_decay_rate=0.55))

warmup_epochs = 5
max_epochs = 50
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - warmup_epochs,
        eta_min_ratio=5e-6 / 4e-3,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
