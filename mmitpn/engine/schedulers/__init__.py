from .run_length import (CosineAnnealingAfterWarmupLR, LinearWarmupLR,
                         MultiStepFractionLR, PolyAfterWarmupLR)

__all__ = [
    'LinearWarmupLR', 'CosineAnnealingAfterWarmupLR', 'PolyAfterWarmupLR',
    'MultiStepFractionLR'
]
