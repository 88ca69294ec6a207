# Table 7 schedule for 1600 epochs: 40 warmup epochs, then cosine decay.
_base_ = './itpn_pretrain_pixel_adamw.py'

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=40,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=0.,
        by_epoch=True,
        begin=40,
        end=1600,
        convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=1600)
