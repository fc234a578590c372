"""Repair 12: imgaug_numpy_bool.

Breakage: mmaction2's ``ImgAug.__init__`` sets ``np.bool = bool`` for the
whole process whenever numpy >= 1.24 (a hack for numpy 1.24-1.26, which
had no ``np.bool``, and imgaug, which used it). numpy 2 has ``np.bool``
again (its boolean scalar type); replacing it with Python's ``bool``
breaks numpy's own code that relies on it, e.g. ``numpy.testing``'s
``assert_allclose`` afterwards, in every later test or transform of the
process. -> :func:`patch_imgaug_numpy_bool`

Detected by: constructing an ``ImgAug`` changes ``numpy.bool`` while numpy
has its own ``bool`` (numpy 2); under numpy 1.24-1.26 the hack is what
imgaug needs and is left alone.

Fixed upstream: not in a release yet (latest checked: mmaction2 1.2.0).
(imgaug 0.4.0, its last release, also reads ``np.sctypes`` at import,
which numpy 2 removed: repair 5 puts it back.)

Test: test_imgaug_replaces_numpy_bool_without_compat,
test_imgaug_leaves_numpy_bool_alone, test_imgaug_runs_on_numpy2.
"""
import functools


def changes_numpy_bool(init) -> bool:
    """Whether calling ``init`` (an ``ImgAug.__init__``) leaves
    ``numpy.bool`` changed; it is put back either way."""
    import numpy as np
    before = np.__dict__.get('bool')
    try:
        init(object.__new__(_Probe), 'default')
    except Exception:  # noqa: BLE001  (no imgaug installed, ...)
        pass
    changed = np.__dict__.get('bool') is not before
    np.bool = before
    return changed


class _Probe:
    """What ``changes_numpy_bool`` hands ``__init__`` as ``self``."""


def _keeping_numpy_bool(init):
    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        import numpy as np
        before = np.__dict__.get('bool')
        try:
            init(self, *args, **kwargs)
        finally:
            np.bool = before
    __init__.stan_keeps_numpy_bool = True
    return __init__


def patch_imgaug_numpy_bool() -> bool:
    import numpy as np
    from mmaction.datasets.transforms.wrappers import ImgAug
    init = ImgAug.__init__
    if getattr(init, 'stan_keeps_numpy_bool', False) or \
            'bool' not in np.__dict__ or not changes_numpy_bool(init):
        return False
    ImgAug.__init__ = _keeping_numpy_bool(init)
    return True
