# Runtime of iTPN det: mmdet's own, plus mmitpn's run guards (default hooks
# of the pre-training runtime; here custom hooks, since the schedule bases
# define default_hooks) and two config checks.
_base_ = 'mmdet::_base_/default_runtime.py'

custom_hooks = [
    # Stops at the first NaN/Inf loss term, before it is checkpointed.
    dict(type='mmitpn.NonFiniteLossHook'),
    # Model randomness (drop path) drawn from (seed, rank, iteration), so
    # that `--resume` continues as an uninterrupted run would.
    dict(type='mmitpn.IterationSeedHook'),
    # Anchor / RoI strides that do not follow the backbone's patch size stop
    # the run (mmdet would train on mismatched anchors without a word).
    dict(type='mmitpn.PyramidStrideCheckHook'),
    # mmdet's check that the heads' num_classes match the data set's classes.
    dict(type='NumClassCheckHook'),
]
