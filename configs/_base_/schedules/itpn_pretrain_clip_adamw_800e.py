# Table 9 schedule for 800 epochs: 10 warmup epochs, then cosine decay.
_base_ = './itpn_pretrain_clip_adamw.py'

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=10,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-5,
        by_epoch=True,
        begin=10,
        end=800,
        convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=800)
