# Official iTPN ADE20K schedule (reference NOTES §5): AdamW lr 3e-5 for a
# batch of 16, linear warmup over 1500 iterations, then poly (power 1) to 0
# at 160k. Layer-wise lr decay with mmitpn's constructor: 0.90 per layer for
# iTPN-B (iTPN-L configs: 0.95), spread over the model as over a 12-layer ViT
# like the official seg constructor; the pyramid and heads keep the full lr.
_base_ = 'mmseg::_base_/schedules/schedule_160k.py'

# CPU-friendly default; tools/train.py --amp switches to mixed precision.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=3e-5, betas=(0.9, 0.999), weight_decay=0.05,
        fused=True),
    constructor='mmitpn.iTPNLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9, decay_rescale_depth=12))

# Both follow train_cfg.max_iters, so that it alone sets the length of a run
# (the warmup is capped at a quarter of a short run; see
# mmitpn/engine/schedulers/run_length.py).
warmup_iters = 1500
param_scheduler = [
    dict(
        type='mmitpn.LinearWarmupLR',
        warmup=warmup_iters,
        start_factor=1e-6,
        by_epoch=False),
    dict(
        type='mmitpn.PolyAfterWarmupLR',
        warmup=warmup_iters,
        power=1.0,
        eta_min=0.0,
        by_epoch=False),
]
train_cfg = dict(max_iters=160000, val_interval=16000)
# The lr above is for 8 GPUs x 2 images.
auto_scale_lr = dict(enable=False, base_batch_size=16)
