from .data_fit_check_hooks import InputSizeCheckHook, SegNumClassesCheckHook
from .ema_teacher_hook import EMATeacherHook
from .iteration_seed_hook import IterationSeedHook
from .nonfinite_loss_hook import NonFiniteLossError, NonFiniteLossHook
from .pyramid_stride_check_hook import PyramidStrideCheckHook
from .rank_heartbeat_hook import RankHeartbeatHook

__all__ = [
    'EMATeacherHook', 'InputSizeCheckHook', 'IterationSeedHook',
    'NonFiniteLossError', 'NonFiniteLossHook', 'PyramidStrideCheckHook',
    'RankHeartbeatHook', 'SegNumClassesCheckHook'
]
