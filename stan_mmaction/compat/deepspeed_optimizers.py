"""Repair 8: deepspeed_optimizers.

Breakage: mmengine's ``DeepSpeedStrategy`` imports DeepSpeed's removed 1-bit
optimizers. -> :func:`patch_deepspeed_optimizers`

Detected by: mmengine's DeepSpeed optimizer registration fails on the installed
DeepSpeed.

Fixed upstream: not in a release yet (latest checked: mmengine 0.10.7).

Test: test_deepspeed_optimizers_register_without_onebit (and make
test-deepspeed).
"""
import importlib.util
from typing import List

_DEEPSPEED_OPTIMIZERS = (
    ('deepspeed.ops.adam', ('DeepSpeedCPUAdam', 'FusedAdam')),
    ('deepspeed.ops.lamb', ('FusedLamb', )),
    ('deepspeed.runtime.fp16.onebit', ('OnebitAdam', 'OnebitLamb',
                                       'ZeroOneAdam')),
)


def register_deepspeed_optimizers() -> List[str]:
    """Register the DeepSpeed optimizers this DeepSpeed has in MMEngine's
    ``OPTIMIZERS`` (mmengine's function of the same name, minus the
    failure on optimizers DeepSpeed removed); returns their names."""
    from mmengine.registry import OPTIMIZERS
    registered = []
    for module_name, names in _DEEPSPEED_OPTIMIZERS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name in names:
            optimizer = getattr(module, name, None)
            if optimizer is None:
                continue
            if OPTIMIZERS.get(name) is not optimizer:
                OPTIMIZERS.register_module(module=optimizer, force=True)
            registered.append(name)
    return registered


def patch_deepspeed_optimizers() -> bool:
    try:
        import mmengine._strategy.deepspeed as ds_strategy
    except ImportError:  # mmengine without DeepSpeed support
        return False
    if ds_strategy.register_deepspeed_optimizers is \
            register_deepspeed_optimizers:
        return False
    if importlib.util.find_spec('deepspeed') is None:
        return False  # nothing to register; the strategy refuses anyway
    try:
        ds_strategy.register_deepspeed_optimizers()
        return False  # upstream works with this DeepSpeed
    except ImportError:
        pass
    ds_strategy.register_deepspeed_optimizers = register_deepspeed_optimizers
    return True
