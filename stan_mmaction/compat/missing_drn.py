"""Repair 1: missing_drn.

Breakage: The mmaction2 1.2.0 wheel lacks ``mmaction/models/localizers/drn``
(open-mmlab/mmaction2#2714): ``import mmaction.models`` raises
``ModuleNotFoundError``. -> :func:`patch_missing_drn`

Detected by: ``importlib.util.find_spec`` finds no
``mmaction.models.localizers.drn``.

Fixed upstream: not in a release yet (latest checked: mmaction2 1.2.0).

Test: test_drn_missing_without_compat,
test_drn_stub_lets_mmaction_models_import,
test_drn_stub_not_installed_when_real_module_exists.
"""
import importlib.abc
import importlib.machinery
import importlib.util
import os.path as osp
import sys

_DRN_PACKAGE = 'mmaction.models.localizers.drn'
_DRN_MODULE = _DRN_PACKAGE + '.drn'


class _MissingDRN:
    """Stand-in for mmaction2's DRN localizer, absent from the 1.2.0 wheel."""

    def __init__(self, *args, **kwargs):
        raise ImportError(
            'DRN is missing from the mmaction2 1.2.0 wheel '
            '(open-mmlab/mmaction2#2714); install mmaction2 from source to '
            'use it. stan_mmaction replaced it with this stub so that the '
            'rest of mmaction.models imports.')


class _DRNStubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves stub modules for the two DRN names, only when no real module
    exists: it sits at the end of ``sys.meta_path``, so the normal path
    finders win whenever the files are there."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in (_DRN_PACKAGE, _DRN_MODULE):
            return importlib.machinery.ModuleSpec(
                fullname, self, is_package=fullname == _DRN_PACKAGE)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        if module.__name__ == _DRN_PACKAGE:
            module.__path__ = []
        else:
            module.DRN = _MissingDRN


def patch_missing_drn() -> bool:
    if any(isinstance(f, _DRNStubFinder) for f in sys.meta_path):
        return False
    spec = importlib.util.find_spec('mmaction')
    if spec is None or not spec.submodule_search_locations:
        return False
    root = list(spec.submodule_search_locations)[0]
    if osp.isfile(osp.join(root, 'models', 'localizers', 'drn', 'drn.py')):
        return False
    sys.meta_path.append(_DRNStubFinder())
    return True
