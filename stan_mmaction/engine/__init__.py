from .hooks import QueryBankHook, RNGStateHook
from .optim import StanOptimWrapperConstructor

__all__ = ['QueryBankHook', 'RNGStateHook', 'StanOptimWrapperConstructor']
