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


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint needs a global that could run code when unpickled."""


class CheckpointContentError(CheckpointError):
    """A checkpoint that loads but does not hold what a model loads (a
    ``state_dict`` entry that is not a tensor, no mapping at all)."""


def check_state_dict(source: str, checkpoint) -> dict:
    """The ``state_dict`` of a loaded checkpoint (or the checkpoint itself
    when it is one), every value a tensor.

    Raises:
        CheckpointContentError: naming the file and the first bad key.
    """
    state = checkpoint.get('state_dict', checkpoint) \
        if isinstance(checkpoint, dict) else checkpoint
    if not isinstance(state, dict):
        raise CheckpointContentError(
            f'{source}: holds a {type(state).__name__}, not a state dict')
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointContentError(
                f'{source}: state_dict[{key!r}] is a '
                f'{type(value).__module__}.{type(value).__name__}, not a '
                'tensor; this is not a checkpoint of a model')
    return state


def trusted() -> bool:
    """True when the user opted in to full unpickling (trusted files)."""
    return os.environ.get(TRUST_ENV) == '1'


#: numpy dtype kinds a checkpoint may hold: bool, signed and unsigned
#: integers, floats, complex. No objects, void/structured or strings.
PLAIN_KINDS = 'biufc'


def _refuse(what: str) -> None:
    raise pickle.UnpicklingError(
        f'numpy {what} (only arrays and scalars of plain numeric and bool '
        'dtypes are loaded)')


def plain_dtype(dtype):
    """The dtype an array or scalar of the file is built with: rebuilt from
    the type string of what unpickling made (``'<f8'``), so that nothing
    a file set inside a dtype object (fields, flags) is used; refused
    unless its kind is plain (:data:`PLAIN_KINDS`)."""
    import numpy as np
    if not isinstance(dtype, np.dtype):
        _refuse(f'dtype {type(dtype).__name__}')
    try:
        clean = np.dtype(dtype.str)
    except (TypeError, ValueError):
        _refuse(f'dtype {dtype.str!r}')
    if clean.kind not in PLAIN_KINDS or clean.hasobject or \
            clean.fields is not None or clean.subdtype is not None:
        _refuse(f'dtype {clean.str!r}')
    return clean


def _checked_dtype(*args):
    """``numpy.dtype`` for unpickling, as numpy pickles it (``(type
    string, align, copy)``): plain kinds only."""
    import numpy as np
    if not (1 <= len(args) <= 3 and isinstance(args[0], str)
            and all(isinstance(a, bool) for a in args[1:])):
        _refuse(f'dtype arguments {args!r}')
    try:
        dtype = np.dtype(*args)
    except (TypeError, ValueError) as err:
        _refuse(f'dtype {args!r}: {err}')
    if dtype.kind not in PLAIN_KINDS or dtype.fields is not None:
        _refuse(f'dtype {dtype.str!r}')
    return dtype


def _checked_scalar(dtype, data=None):
    """``numpy.core.multiarray.scalar`` for unpickling: raw bytes of the
    clean dtype's size, nothing else."""
    import numpy as np
    clean = plain_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != clean.itemsize:
        _refuse(f'scalar of dtype {clean.str!r} from '
                f'{type(data).__name__} data')
    return np.frombuffer(data, dtype=clean)[0]


def _empty_bytes(*args):
    """``bytes()`` as pickle protocol 2 writes the empty data of an empty
    array; any argument (``bytes(10**12)`` allocates) is refused."""
    if args:
        _refuse('bytes(...) with arguments')
    return b''


class _ArrayClassToken:
    """What ``numpy.ndarray`` names inside a checkpoint: only an argument of
    :func:`_checked_reconstruct`; calling it (a raw-memory array
    constructor) is refused."""

    def __new__(cls, *args, **kwargs):
        _refuse('ndarray constructor')


class _CheckedArray:
    """Placeholder, replaced by an ``np.ndarray`` subclass on first use
    (numpy is imported lazily)."""


def _checked_array_class():
    global _CheckedArray
    import numpy as np
    if isinstance(_CheckedArray, type) and issubclass(_CheckedArray,
                                                      np.ndarray):
        return _CheckedArray

    class CheckedArray(np.ndarray):
        """An array being unpickled: its state is checked before numpy
        sees it (plain dtype rebuilt, raw bytes of exactly the right
        size); turned into a plain ``np.ndarray`` after loading."""

        def __new__(cls, *args, **kwargs):
            _refuse('ndarray constructor')

        def __setstate__(self, state):
            if not (isinstance(state, tuple) and len(state) == 5):
                _refuse('array state')
            version, shape, dtype, fortran, data = state
            clean = plain_dtype(dtype)
            if not (isinstance(shape, tuple) and all(
                    type(n) is int and n >= 0 for n in shape)):
                _refuse(f'array shape {shape!r}')
            size = clean.itemsize
            for n in shape:
                size *= n
            if not isinstance(data, bytes) or len(data) != size:
                _refuse(f'array data ({type(data).__name__}, not '
                        f'{size} bytes)')
            np.ndarray.__setstate__(self, (version, shape, clean,
                                           bool(fortran), data))

    CheckedArray.__module__ = __name__
    _CheckedArray = CheckedArray
    return CheckedArray


def _checked_reconstruct(cls, shape, code):
    """``numpy.core.multiarray._reconstruct`` for unpickling: an empty
    checked array whose state (BUILD) is checked before it is used."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    if cls is not _ArrayClassToken:
        _refuse(f'array class {cls!r}')
    return multiarray._reconstruct(_checked_array_class(), (0, ), b'b')


def plain_arrays(obj):
    """``obj`` with every checked array (in dicts, lists, tuples) turned
    into a plain ``np.ndarray`` view, so nothing of ours is saved again."""
    cls = _CheckedArray
    if isinstance(obj, dict):
        for key, value in obj.items():
            new = plain_arrays(value)
            if new is not value:
                obj[key] = new
        return obj
    if isinstance(obj, list):
        obj[:] = [plain_arrays(v) for v in obj]
        return obj
    if isinstance(obj, tuple) and not hasattr(obj, '_fields'):
        items = [plain_arrays(v) for v in obj]
        return obj if all(a is b for a, b in zip(items, obj)) else \
            tuple(items)
    if isinstance(cls, type) and isinstance(obj, cls):
        import numpy as np
        return obj.view(np.ndarray)
    return obj


def _numpy_globals() -> List[Any]:
    """numpy's unpickling entry points, each replaced by a checked one under
    its own name (numpy 2 and numpy 1 module paths), and the DType classes
    of plain kinds (numpy calls ``__setstate__`` on dtypes)."""
    import numpy as np
    items: List[Any] = []
    for core in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        items += [(_checked_reconstruct, f'{core}._reconstruct'),
                  (_checked_scalar, f'{core}.scalar')]
    items += [(_ArrayClassToken, 'numpy.ndarray'),
              (_checked_dtype, 'numpy.dtype'), _checked_array_class(),
              (_empty_bytes, 'builtins.bytes')]
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        for name in dir(dtypes):
            cls = getattr(dtypes, name)
            if name.endswith('DType') and isinstance(cls, type):
                try:
                    kind = cls().kind  # plain DTypes build without args
                except TypeError:
                    continue
                if kind in PLAIN_KINDS:
                    items.append(cls)
    return items


def safe_globals() -> List[Any]:
    """The globals MMEngine checkpoints need beyond torch's defaults."""
    from mmengine.logging.history_buffer import HistoryBuffer
    return _numpy_globals() + [HistoryBuffer]


def _refused_global(err: Exception) -> str:
    m = re.search(r'(numpy [^\n]*?) \(only arrays and scalars', str(err))
    if m:
        return m.group(1)
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
            return plain_arrays(load(weights_only=True))
    except pickle.UnpicklingError as err:
        raise unsafe_error(source, err) from None
    except OSError:
        raise  # a missing or unreadable file: the caller names it
    except (RuntimeError, ValueError, TypeError, KeyError, IndexError,
            AttributeError, EOFError, OverflowError, MemoryError,
            RecursionError, UnicodeDecodeError, AssertionError) as err:
        # Allowed globals called with arguments they do not take, a
        # truncated or corrupt archive, ...: not a checkpoint we can read.
        raise CheckpointContentError(
            f'{source}: not a readable checkpoint ({type(err).__name__}: '
            f'{str(err).splitlines()[0] if str(err) else ""})') from None


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
