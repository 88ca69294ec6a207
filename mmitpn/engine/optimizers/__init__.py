from .layer_decay_constructor import iTPNLayerDecayOptimWrapperConstructor

__all__ = ['iTPNLayerDecayOptimWrapperConstructor']
