# Official iTPN ADE20K schedule (reference NOTES §5): AdamW lr 3e-5 for a
# batch of 16, linear warmup over 1500 iterations, then poly (power 1) to 0
# at 160k. Layer-wise lr decay with mmitpn's constructor: 0.90 per layer for
# iTPN-B (iTPN-L configs: 0.95), spread over the model as over a 12-layer ViT
# like the official seg constructor; the pyramid and heads keep the full lr.
_base_ = 'mmseg::_base_/schedules/schedule_160k.py'

max_iters = 160000
warmup_iters = 1500

# CPU-friendly default; tools/train.py --amp switches to mixed precision.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=3e-5, betas=(0.9, 0.999), weight_decay=0.05,
        fused=True),
    constructor='mmitpn.iTPNLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9, decay_rescale_depth=12))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-6,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type='PolyLR',
        power=1.0,
        eta_min=0.0,
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=16000)
# The lr above is for 8 GPUs x 2 images.
auto_scale_lr = dict(enable=False, base_batch_size=16)
