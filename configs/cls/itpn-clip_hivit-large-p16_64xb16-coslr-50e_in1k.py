# Fine-tuning iTPN-L pre-trained with a CLIP teacher (CLIP-B or CLIP-L) on
# ImageNet-1k (official itpn_clip README launch line): 50 epochs (5 warmup),
# total batch 1024 (64 GPUs x 16), lr 2e-4, layer decay 0.55, drop path
# 0.25; the rest as iTPN-B.
_base_ = './itpn-clip_hivit-base-p16_64xb32-coslr-100e_in1k.py'

pretrained = 'work_dirs/itpn-clip-l_hivit-large-p16_8xb256-amp-coslr-300e_in1k/epoch_300.pth'  # noqa: E501

model = dict(
    backbone=dict(
        arch='large',
        drop_path_rate=0.25,
        init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=768),
    head=dict(in_channels=768))

train_dataloader = dict(batch_size=16)

optim_wrapper = dict(
    optimizer=dict(lr=2e-4), paramwise_cfg=dict(layer_decay_rate=0.55))

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
        eta_min_ratio=1e-6 / 2e-4,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)

auto_scale_lr = dict(base_batch_size=1024)
