# Linear-probing optimiser (paper §4.2, Table 3, following MAE): LARS with
# momentum 0.9 and no weight decay, base lr 0.1 per 256 images, i.e. 6.4 at
# the paper's total batch of 16384; 10 warmup epochs, then cosine decay to 0
# over 90 epochs. Only the linear head trains (the backbone is frozen).
optim_wrapper = dict(
    # `tools/train.py --amp` switches it to mixed precision.
    type='OptimWrapper',
    optimizer=dict(type='LARS', lr=0.1 * 16384 / 256, weight_decay=0.,
                   momentum=0.9))

warmup_epochs = 10
max_epochs = 90
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
        eta_min=0.,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True),
]

train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# `--auto-scale-lr` rescales the lr linearly to the actual total batch.
auto_scale_lr = dict(base_batch_size=16384)
