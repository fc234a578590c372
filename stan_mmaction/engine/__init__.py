from .hooks import (DistributedTeardownHook, InferencePrecisionHook,
                    QueryBankHook, RNGStateHook, StanCheckpointHook)
from .optim import StanOptimWrapperConstructor
from .runner import (StanDistributedDataParallel, StanFlexibleRunner,
                     StanRunner, find_latest_checkpoint)
from .sharding import (StanFSDPStrategy, StanFullyShardedDataParallel,
                       fsdp_units)

__all__ = [
    'DistributedTeardownHook', 'InferencePrecisionHook', 'QueryBankHook',
    'RNGStateHook', 'StanCheckpointHook', 'StanDistributedDataParallel',
    'StanFlexibleRunner', 'StanFSDPStrategy', 'StanFullyShardedDataParallel',
    'StanOptimWrapperConstructor', 'StanRunner', 'find_latest_checkpoint',
    'fsdp_units'
]
