from .hooks import EMATeacherHook
from .optimizers import (BF16AutocastOptimWrapper,
                         iTPNLayerDecayOptimWrapperConstructor)

__all__ = [
    'BF16AutocastOptimWrapper', 'EMATeacherHook',
    'iTPNLayerDecayOptimWrapperConstructor'
]
