from .hooks import (EMATeacherHook, IterationSeedHook, NonFiniteLossError,
                    NonFiniteLossHook)
from .optimizers import iTPNLayerDecayOptimWrapperConstructor
from .runner import CheckedRunner

__all__ = [
    'CheckedRunner', 'EMATeacherHook', 'IterationSeedHook', 'NonFiniteLossError',
    'NonFiniteLossHook', 'iTPNLayerDecayOptimWrapperConstructor'
]
