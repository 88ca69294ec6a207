# Pixel pre-training optimiser (Table 7, official itpn_pixel): AdamW,
# lr 1.5e-4 per 256 images (2.4e-3 at the paper's batch 4096), betas
# (0.9, 0.95), weight decay 0.05 except on norms, biases, layer scales,
# position embeddings and mask tokens; no gradient clipping.
optim_wrapper = dict(
    # Plain fp32 here; `tools/train.py --amp` switches it to AmpOptimWrapper
    # (float16, dynamic loss scaling) on GPUs and to
    # mmitpn.BF16AutocastOptimWrapper (bfloat16 autocast) on CPUs.
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1.5e-4 * 4096 / 256, betas=(0.9, 0.95),
        # fused: one kernel for all parameters, 2x faster than the default
        # per-tensor loop on CPU; the same update.
        weight_decay=0.05, fused=True),
    # No layer decay in pre-training (rate 1); the constructor supplies the
    # no-weight-decay rules and leaves out the frozen EMA/CLIP teacher.
    constructor='mmitpn.iTPNLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=1.0))

# 40 warmup epochs, then cosine decay to 0 at the end of the run (400
# epochs; longer schedules set train_cfg.max_epochs, which is all it takes:
# see mmitpn/engine/schedulers/run_length.py).
param_scheduler = [
    dict(
        type='mmitpn.LinearWarmupLR',
        warmup=40,
        start_factor=1e-4,
        by_epoch=True,
        convert_to_iter_based=True),
    dict(
        type='mmitpn.CosineAnnealingAfterWarmupLR',
        warmup=40,
        eta_min=0.,
        by_epoch=True,
        convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=400)

# The lr above is for a total batch of 4096; `--auto-scale-lr` rescales it
# linearly to the actual total batch (GPUs x samples per GPU).
auto_scale_lr = dict(base_batch_size=4096)
