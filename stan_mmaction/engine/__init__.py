from .optim import StanOptimWrapperConstructor

__all__ = ['StanOptimWrapperConstructor']
