# Fine-tuning optimiser of iTPN (official classification recipe): AdamW,
# betas (0.9, 0.999), weight decay 0.05 except on norms, biases, layer
# scales and position tables, layer-wise lr decay renormalised to a 12-layer
# ViT (the official `decay ** (13 / num_layers)`). Configs set lr,
# layer_decay_rate and the schedule length; these are iTPN-B pixel values.
optim_wrapper = dict(
    # Plain fp32 here; `tools/train.py --amp` switches it to AmpOptimWrapper
    # (float16, dynamic loss scaling) on GPUs and to
    # mmitpn.BF16AutocastOptimWrapper (bfloat16 autocast) on CPUs.
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1.6e-3, betas=(0.9, 0.999), weight_decay=0.05,
        fused=True),
    constructor='mmitpn.iTPNLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.6, decay_rescale_depth=12))

# Linear warmup, then cosine decay per iteration. `eta_min_ratio` (min_lr /
# lr) ends every parameter group at min_lr times its layer-decay scale, as
# the official schedule does; an absolute eta_min would pull the deepest-
# decayed groups *up* to min_lr.
warmup_epochs = 5
max_epochs = 100
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
        eta_min_ratio=5e-6 / 1.6e-3,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True),
]

train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# The lr above is for a total batch of 1024; `--auto-scale-lr` rescales it
# linearly to the actual total batch (GPUs x samples per GPU).
auto_scale_lr = dict(base_batch_size=1024)
