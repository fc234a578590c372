"""Repair 2: importlib_metadata.

Breakage: ``mmaction/utils/dependency.py`` imports the undeclared backport
``importlib_metadata``. -> :func:`patch_importlib_metadata`

Detected by: ``importlib_metadata`` cannot be imported.

Fixed upstream: not in a release yet (latest checked: mmaction2 1.2.0).

Test: test_importlib_metadata_missing_without_compat,
test_importlib_metadata_alias_serves_mmaction.
"""
import importlib.util
import sys


def patch_importlib_metadata() -> bool:
    if 'importlib_metadata' in sys.modules or importlib.util.find_spec(
            'importlib_metadata') is not None:
        return False
    # The stdlib module has the two names mmaction uses
    # (``distribution``, ``PackageNotFoundError``).
    sys.modules['importlib_metadata'] = importlib.metadata
    return True
