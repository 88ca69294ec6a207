# Runtime of iTPN classification (fine-tuning, linear probing): the
# pre-training runtime, plus keeping the checkpoint with the best top-1.
_base_ = './pretrain_runtime.py'

default_hooks = dict(
    checkpoint=dict(
        type='CheckpointHook', interval=1, max_keep_ckpts=3, save_best='auto'))
