from .hooks import (EMATeacherHook, IterationSeedHook, NonFiniteLossError,
                    NonFiniteLossHook)
from .optimizers import (BF16AutocastOptimWrapper,
                         iTPNLayerDecayOptimWrapperConstructor)

__all__ = [
    'BF16AutocastOptimWrapper', 'EMATeacherHook', 'IterationSeedHook',
    'NonFiniteLossError', 'NonFiniteLossHook',
    'iTPNLayerDecayOptimWrapperConstructor'
]
