from .cpu_distributed import CPUDistributedDataParallel
from .hooks import (EMATeacherHook, IterationSeedHook, NonFiniteLossError,
                    NonFiniteLossHook)
from .optimizers import (BF16AutocastOptimWrapper,
                         iTPNLayerDecayOptimWrapperConstructor)

__all__ = [
    'BF16AutocastOptimWrapper', 'CPUDistributedDataParallel',
    'EMATeacherHook', 'IterationSeedHook', 'NonFiniteLossError',
    'NonFiniteLossHook', 'iTPNLayerDecayOptimWrapperConstructor'
]
