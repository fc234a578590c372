"""Repair 4: torch_load.

Breakage: torch >= 2.6 loads with ``weights_only=True``; mmengine's checkpoint
loaders cannot read their own checkpoints (message hub, numpy arrays), so
``--resume`` fails; its URL loader unpickles everything. ->
:func:`patch_torch_load`: mmengine's loaders go through
``stan_mmaction.utils.checkpoint.safe_torch_load`` (``weights_only=True``
with numpy arrays/scalars and ``HistoryBuffer`` allowed, anything else
refused with a message naming the opt-in for trusted files), and
``HistoryBuffer`` pickles as plain data (its default pickle needs
``getattr``).

Detected by: ``torch.load``'s ``weights_only`` default is ``True`` (torch >=
2.6).

Fixed upstream: not in a release yet (latest checked: mmengine 0.10.7).

Test: test_mmengine_checkpoint_unreadable_without_compat,
test_mmengine_checkpoint_loads_with_compat.
"""
import types

from ._versions import version_tuple as _version_tuple


class _SafeTorch(types.ModuleType):
    """``torch`` as seen by mmengine's checkpoint module: everything is the
    real torch except ``load``, which runs no code from the file
    (``stan_mmaction.utils.checkpoint.safe_torch_load``).

    mmengine checkpoints store the message hub (``HistoryBuffer``) and numpy
    arrays next to the weights; torch >= 2.6 refuses those with its
    ``weights_only=True`` default, and turning it off for them would let any
    checkpoint (``--resume``, ``load_from``, ``init_cfg=Pretrained``) run
    code. Exactly those types are allowed.
    """

    def __init__(self, torch_module):
        super().__init__('torch')
        self._torch = torch_module

    def __getattr__(self, name):
        return getattr(self._torch, name)

    def load(self, f, map_location=None, **kwargs):
        from ..utils.checkpoint import safe_torch_load
        return safe_torch_load(f, map_location=map_location, **kwargs)


def _safe_load_url(url, model_dir=None, map_location=None, **kwargs):
    from ..utils.checkpoint import safe_load_url
    return safe_load_url(url, model_dir=model_dir, map_location=map_location,
                         **kwargs)


def _history_buffer_getstate(self) -> dict:
    """Plain data: the default pickle of ``HistoryBuffer`` also carries its
    statistics methods, reconstructed through ``getattr``."""
    return dict(max_length=self.max_length,
                _log_history=self._log_history,
                _count_history=self._count_history)


def _history_buffer_setstate(self, state: dict) -> None:
    import numpy as np
    self.max_length = state['max_length']
    self._log_history = np.asarray(state['_log_history'])
    self._count_history = np.asarray(state['_count_history'])
    self._set_default_statistics()


def _weights_only_is_default() -> bool:
    import inspect

    import torch
    default = inspect.signature(torch.load).parameters.get('weights_only')
    if default is None:
        return False
    if default.default is None:  # resolved at call time (torch >= 2.6)
        return _version_tuple(torch.__version__) >= (2, 6)
    return bool(default.default)


def patch_torch_load() -> bool:
    if not _weights_only_is_default():
        return False
    # mmengine's own checkpoint loaders (local, http, petrel, ...) and the
    # URL loader they call (torch.hub with weights_only=False otherwise).
    import mmengine.runner.checkpoint as checkpoint_module
    from mmengine.logging.history_buffer import HistoryBuffer
    if isinstance(checkpoint_module.torch, _SafeTorch):
        return False
    checkpoint_module.torch = _SafeTorch(checkpoint_module.torch)
    checkpoint_module.load_url = _safe_load_url
    HistoryBuffer.__getstate__ = _history_buffer_getstate
    HistoryBuffer.__setstate__ = _history_buffer_setstate
    return True
