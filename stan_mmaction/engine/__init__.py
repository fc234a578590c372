from .hooks import (DistributedTeardownHook, InferencePrecisionHook,
                    QueryBankHook, RNGStateHook)
from .optim import StanOptimWrapperConstructor
from .sharding import StanFullyShardedDataParallel, fsdp_units

__all__ = [
    'DistributedTeardownHook', 'InferencePrecisionHook', 'QueryBankHook',
    'RNGStateHook',
    'StanFullyShardedDataParallel', 'StanOptimWrapperConstructor',
    'fsdp_units'
]
