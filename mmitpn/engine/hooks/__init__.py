from .ema_teacher_hook import EMATeacherHook
from .iteration_seed_hook import IterationSeedHook
from .nonfinite_loss_hook import NonFiniteLossError, NonFiniteLossHook

__all__ = [
    'EMATeacherHook', 'IterationSeedHook', 'NonFiniteLossError',
    'NonFiniteLossHook'
]
