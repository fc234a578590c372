"""Repair 5: numpy_aliases.

Breakage: numpy 2 removed ``np.in1d``, ``np.trapz`` and ``np.Inf``, still used
by mmaction2 metrics and transforms. -> :func:`patch_numpy_aliases`

Detected by: each alias is missing from ``numpy``.

Fixed upstream: not in a release yet (latest checked: mmaction2 1.2.0).

Test: test_numpy_aliases_missing_without_compat,
test_numpy_aliases_match_their_replacements,
test_mmaction_metric_using_in1d_runs.
"""


def _in1d(ar1, ar2, assume_unique=False, invert=False, *, kind=None):
    import numpy as np
    return np.isin(
        ar1, ar2, assume_unique=assume_unique, invert=invert,
        kind=kind).ravel()


def patch_numpy_aliases() -> bool:
    import numpy as np
    added = False
    aliases = {
        'in1d': _in1d,
        'trapz': getattr(np, 'trapezoid', None),
        'Inf': np.inf,
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
