# Runtime of iTPN seg: mmseg's own, plus mmitpn's run guards (default hooks
# of the pre-training runtime; here custom hooks, since the schedule bases
# define default_hooks).
_base_ = 'mmseg::_base_/default_runtime.py'

custom_hooks = [
    # Stops at the first NaN/Inf loss term, before it is checkpointed.
    dict(type='mmitpn.NonFiniteLossHook'),
    # Model randomness (drop path) drawn from (seed, rank, iteration), so
    # that `--resume` continues as an uninterrupted run would.
    dict(type='mmitpn.IterationSeedHook'),
    # The heads' num_classes must match the dataset's classes.
    dict(type='mmitpn.SegNumClassesCheckHook'),
]
