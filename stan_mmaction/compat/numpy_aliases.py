"""Repair 5: numpy_aliases.

Breakage: numpy 2 removed ``np.in1d``, ``np.trapz`` and ``np.Inf``, still used
by mmaction2 metrics and transforms, and ``np.sctypes``, which imgaug 0.4.0
(its last release, what mmaction2's ``ImgAug`` transform wraps) reads at
import: ``import imgaug`` fails. -> :func:`patch_numpy_aliases`

Detected by: each alias is missing from ``numpy``.

Fixed upstream: not in a release yet (latest checked: mmaction2 1.2.0).

Test: test_numpy_aliases_missing_without_compat,
test_numpy_aliases_match_their_replacements,
test_mmaction_metric_using_in1d_runs, test_imgaug_runs_on_numpy2 (with
imgaug installed beside the stack, as ``make test`` does).
"""


def _in1d(ar1, ar2, assume_unique=False, invert=False, *, kind=None):
    import numpy as np
    return np.isin(
        ar1, ar2, assume_unique=assume_unique, invert=invert,
        kind=kind).ravel()


def _sctypes() -> dict:
    """numpy 1's ``np.sctypes``: the scalar types by kind."""
    import numpy as np
    return {
        'int': [np.int8, np.int16, np.int32, np.int64],
        'uint': [np.uint8, np.uint16, np.uint32, np.uint64],
        'float': [np.float16, np.float32, np.float64, np.longdouble],
        'complex': [np.complex64, np.complex128, np.clongdouble],
        'others': [bool, object, bytes, str, np.void],
    }


def patch_numpy_aliases() -> bool:
    import numpy as np
    added = False
    aliases = {
        'in1d': _in1d,
        'trapz': getattr(np, 'trapezoid', None),
        'Inf': np.inf,
        'sctypes': _sctypes(),
    }
    for name, value in aliases.items():
        if value is None:
            continue
        try:
            getattr(np, name)
        except AttributeError:
            setattr(np, name, value)
            added = True
    return added
