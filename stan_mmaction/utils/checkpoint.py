"""Loading checkpoints without running code from them.

``torch.load(weights_only=True)`` unpickles tensors, containers and the
globals it is told are safe, and nothing else. MMEngine's checkpoints hold,
next to the weights, numpy arrays and scalars (the message hub's history
buffers, ``eta``, numpy's RNG state) and ``HistoryBuffer`` objects: exactly
those are allow-listed here (:data:`SAFE_GLOBALS`); ``HistoryBuffer`` is made
to pickle as plain data (``stan_mmaction.compat`` gives it ``__getstate__``)
so that no ``getattr`` needs allowing. Anything else in a file is refused
with :class:`UnsafeCheckpointError`, which names the file, the refused global
and the opt-in for trusted legacy files: the environment variable
``STAN_MMACTION_TRUST_CHECKPOINTS=1`` (a warning is logged at every use).
"""
import os
import pickle
import re
from typing import Any, Callable, List

import torch

TRUST_ENV = 'STAN_MMACTION_TRUST_CHECKPOINTS'


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint needs a global that could run code when unpickled."""


def trusted() -> bool:
    """True when the user opted in to full unpickling (trusted files)."""
    return os.environ.get(TRUST_ENV) == '1'


def _numpy_globals() -> List[Any]:
    import numpy as np
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    items = [multiarray._reconstruct, multiarray.scalar, np.ndarray,
             np.dtype]
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        items += [getattr(dtypes, n) for n in dir(dtypes)
                  if n.endswith('DType')]
    return items


def safe_globals() -> List[Any]:
    """The globals MMEngine checkpoints need beyond torch's defaults."""
    from mmengine.logging.history_buffer import HistoryBuffer
    return _numpy_globals() + [HistoryBuffer]


def _refused_global(err: Exception) -> str:
    m = re.search(r'GLOBAL ([\w.]+)', str(err))
    if m:
        name = m.group(1)
        return name if '.' in name else f'builtins.{name}'
    m = re.search(r'Unsupported (?:global|operand)[^:]*: ([^\n]+)', str(err))
    return m.group(1).strip() if m else str(err).splitlines()[0]


def unsafe_error(source: str, err: Exception) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f'{source}: refused to unpickle {_refused_global(err)} (it could run '
        'code). Only tensors, containers, numpy arrays/scalars and '
        'MMEngine history buffers are loaded by default. If you trust this '
        f'file, set {TRUST_ENV}=1 to load it in full (then convert it once, '
        'e.g. with tools/convert_checkpoint.py, or re-save it).')


def warn_trusted(source: str) -> None:
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().warning(
        f'{TRUST_ENV}=1: unpickling {source} in full; it can run code')


def _load_safely(load: Callable[..., Any], source: str):
    """``load(weights_only=...)`` under the rules above: in full (warned)
    when trusted, else ``weights_only=True`` with :func:`safe_globals`."""
    if trusted():
        warn_trusted(source)
        return load(weights_only=False)
    try:
        with torch.serialization.safe_globals(safe_globals()):
            return load(weights_only=True)
    except pickle.UnpicklingError as err:
        raise unsafe_error(source, err) from None


def safe_torch_load(f, map_location='cpu', **kwargs):
    """``torch.load`` that runs no code from the file.

    ``weights_only=True`` with :func:`safe_globals` allowed, unless the
    user set ``STAN_MMACTION_TRUST_CHECKPOINTS=1`` (logged as a warning).

    Raises:
        UnsafeCheckpointError: the file needs another global.
    """
    kwargs.pop('weights_only', None)
    source = f if isinstance(f, (str, os.PathLike)) else 'checkpoint stream'
    return _load_safely(
        lambda weights_only: torch.load(f, map_location=map_location,
                                        weights_only=weights_only, **kwargs),
        str(source))


def safe_load_url(url: str, model_dir=None, map_location=None, **kwargs):
    """``torch.hub.load_state_dict_from_url`` with :func:`safe_torch_load`'s
    rules (MMEngine's ``load_url`` passes no ``weights_only``)."""
    kwargs.pop('weights_only', None)
    return _load_safely(
        lambda weights_only: torch.hub.load_state_dict_from_url(
            url, model_dir=model_dir, map_location=map_location,
            weights_only=weights_only, **kwargs), url)
