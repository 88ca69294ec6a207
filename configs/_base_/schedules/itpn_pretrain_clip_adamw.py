# CLIP-teacher pre-training optimiser (Table 9): AdamW, lr 1.5e-3 at batch
# 2048, betas (0.9, 0.98), weight decay 0.05 except on norms, biases, layer
# scales, position tables and mask tokens; gradient norm clipped at 3.0.
optim_wrapper = dict(
    # Plain fp32 here; `tools/train.py --amp` switches it to AmpOptimWrapper
    # (float16, dynamic loss scaling) on GPUs and to
    # mmitpn.BF16AutocastOptimWrapper (bfloat16 autocast) on CPUs.
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1.5e-3, betas=(0.9, 0.98), weight_decay=0.05,
        fused=True),
    clip_grad=dict(max_norm=3.0),
    # No layer decay in pre-training (rate 1); the constructor supplies the
    # no-weight-decay rules and leaves out the frozen EMA/CLIP teacher.
    constructor='mmitpn.iTPNLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=1.0))

# 10 warmup epochs, then cosine decay to 1e-5 at the end of the run (300
# epochs; longer schedules set train_cfg.max_epochs, which is all it takes:
# see mmitpn/engine/schedulers/run_length.py).
param_scheduler = [
    dict(
        type='mmitpn.LinearWarmupLR',
        warmup=10,
        start_factor=1e-4,
        by_epoch=True,
        convert_to_iter_based=True),
    dict(
        type='mmitpn.CosineAnnealingAfterWarmupLR',
        warmup=10,
        eta_min=1e-5,
        by_epoch=True,
        convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=300)

# The lr above is for a total batch of 2048; `--auto-scale-lr` rescales it.
auto_scale_lr = dict(base_batch_size=2048)
