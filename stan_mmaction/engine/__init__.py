from .hooks import InferencePrecisionHook, QueryBankHook, RNGStateHook
from .optim import StanOptimWrapperConstructor

__all__ = [
    'InferencePrecisionHook', 'QueryBankHook', 'RNGStateHook',
    'StanOptimWrapperConstructor'
]
