# 1x detection fine-tuning of iTPN (paper §4.3, official det configs): 12
# epochs, AdamW (betas 0.9/0.999, weight decay 0.05, none on norms, biases,
# position tables and tokens), layer-wise lr decay 0.90 through the backbone
# (0.95 for large models; the pyramid and heads get the full lr), 500
# linear warm-up iterations from 0.001x, lr /10 after 3/4 and 11/12 of the
# run (epochs 9 and 11). The lr is for 64 images per step (official: 32
# GPUs x 2); --auto-scale-lr rescales it. `tools/train.py --amp` trains in
# float16 on GPUs.
_base_ = 'mmdet::_base_/schedules/schedule_1x.py'

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='mmitpn.iTPNLayerDecayOptimWrapperConstructor',
    optimizer=dict(
        type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05,
        fused=True),
    paramwise_cfg=dict(layer_decay_rate=0.9))
# Both follow train_cfg.max_epochs, so that it alone sets the length of a
# run (the warmup is capped at a quarter of a short run; see
# mmitpn/engine/schedulers/run_length.py).
param_scheduler = [
    dict(
        type='mmitpn.LinearWarmupLR',
        warmup=500,
        start_factor=0.001,
        by_epoch=False),
    dict(
        type='mmitpn.MultiStepFractionLR',
        milestone_fractions=(3 / 4, 11 / 12),
        gamma=0.1,
        by_epoch=True)
]
auto_scale_lr = dict(enable=False, base_batch_size=64)
