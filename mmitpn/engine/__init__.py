from .hooks import (EMATeacherHook, IterationSeedHook, NonFiniteLossError,
                    NonFiniteLossHook)
from .optimizers import iTPNLayerDecayOptimWrapperConstructor

__all__ = [
    'EMATeacherHook', 'IterationSeedHook', 'NonFiniteLossError',
    'NonFiniteLossHook', 'iTPNLayerDecayOptimWrapperConstructor'
]
