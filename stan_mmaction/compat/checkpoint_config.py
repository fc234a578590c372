"""Repair 10: checkpoint_config.

Breakage: mmengine executes the config text a checkpoint carries:
``Runner.resume`` and ``FlexibleRunner.resume`` call
``Config.fromstring(checkpoint['meta']['config'], '.py')`` (to compare
``gpu_ids``), and ``BaseInferencer`` given weights alone does the same
with ``message_hub.runtime_info.cfg`` / ``meta.cfg`` and builds the
model from it. -> :func:`patch_checkpoint_config`: the runners read
that text as data (``utils.config_text``, nothing executed), the
inferencer refuses it and asks for the config file

Detected by: ``Config.fromstring`` executes Python (the config text), and the
runners and inferencer call it.

Fixed upstream: not in a release yet (latest checked: mmengine 0.10.7).

Test: test_checkpoint_config_text_runs_without_compat;
tests/test_file_content_safety.py.
"""
import types


class _ConfigLike(type):
    """Metaclass of the ``Config`` stand-ins below: every class attribute
    and ``isinstance`` / ``issubclass`` answer is mmengine's ``Config``'s;
    only ``fromstring`` differs."""

    def __getattr__(cls, name):
        from mmengine.config import Config
        return getattr(Config, name)

    def __instancecheck__(cls, obj):
        from mmengine.config import Config
        return isinstance(obj, Config)

    def __subclasscheck__(cls, sub):
        from mmengine.config import Config
        return issubclass(sub, Config)

    def __call__(cls, *args, **kwargs):
        from mmengine.config import Config
        return Config(*args, **kwargs)


class DataOnlyConfig(metaclass=_ConfigLike):
    """``Config`` for the runners' resume: ``fromstring`` reads the text of
    a checkpoint as data (:func:`.utils.config_text.config_text_to_dict`)
    and executes nothing."""

    @staticmethod
    def fromstring(cfg_str: str, file_format: str):
        from mmengine.config import Config

        from ..utils.config_text import config_text_to_dict
        return Config(config_text_to_dict(cfg_str, file_format))


class RefusedCheckpointConfig(metaclass=_ConfigLike):
    """``Config`` for mmengine's inferencers: the config stored in a
    checkpoint is never turned into a model."""

    @staticmethod
    def fromstring(cfg_str: str, file_format: str):
        raise ValueError(
            'stan_mmaction: the config stored inside a checkpoint is not '
            'executed or built (it could run code); pass the config file '
            'as well (model=CONFIG, weights=CHECKPOINT)')


class _WithConfig(types.ModuleType):
    """``mmengine`` as seen by one module: the real package, except its
    ``Config``."""

    def __init__(self, module, config):
        super().__init__(module.__name__)
        self._module, self.Config = module, config

    def __getattr__(self, name):
        return getattr(self._module, name)


def config_fromstring_executes() -> bool:
    """Whether mmengine's ``Config.fromstring(text, '.py')`` runs the text
    (the assignment below is only an expression if executed)."""
    from mmengine.config import Config
    try:
        cfg = Config.fromstring('x = len([0, 0])\n', file_format='.py')
    except Exception:
        return False
    return cfg.get('x') == 2


def patch_checkpoint_config() -> bool:
    import mmengine.infer.infer as infer_module
    import mmengine.runner._flexible_runner as flexible_module
    import mmengine.runner.runner as runner_module
    if isinstance(runner_module.mmengine, _WithConfig):
        return False
    if not config_fromstring_executes():
        return False
    for module in (runner_module, flexible_module):
        module.mmengine = _WithConfig(module.mmengine, DataOnlyConfig)
    infer_module.Config = RefusedCheckpointConfig
    return True
