from .hooks import RNGStateHook
from .optim import StanOptimWrapperConstructor

__all__ = ['RNGStateHook', 'StanOptimWrapperConstructor']
