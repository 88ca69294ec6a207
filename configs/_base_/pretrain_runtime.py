# Runtime of iTPN pre-training. Unprefixed types resolve in mmpretrain; the
# mmitpn ones are named `mmitpn.X` (their own nested types resolve in mmitpn).
default_scope = 'mmpretrain'

default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # only keeps the latest 3 checkpoints; resume with `--resume`
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # Stops at the first NaN/Inf loss term, before it is checkpointed.
    check_loss=dict(type='mmitpn.NonFiniteLossHook'),
    # Masks drawn from (seed, rank, iteration): `--resume` continues with
    # the same masks as an uninterrupted run.
    iteration_seed=dict(type='mmitpn.IterationSeedHook'),
    # Warns at the first batch when its images are not model.backbone's
    # img_size (masks and position embeddings are laid out for it).
    input_size=dict(type='mmitpn.InputSizeCheckHook'),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, diff_rank_seed=True)
