"""Repair 3: pkg_resources.

Breakage: mmengine resolves ``mmaction::`` base configs through
``pkg_resources``, which setuptools >= 82 no longer ships (and where it is
shipped, names ``site-packages/<module>`` for a PEP 660 editable install). ->
:func:`patch_pkg_resources`

Detected by: ``pkg_resources`` cannot be imported, or mmengine's
``get_installed_path`` names another folder than the one the package is in.

Fixed upstream: not in a release yet (latest checked: mmengine 0.10.7).

Test: test_mmaction_base_config_fails_without_compat,
test_mmaction_base_config_resolves, test_installed_path_without_pkg_resources.
"""
import importlib.metadata
import importlib.util
import os.path as osp
import sys


def _top_level_module(dist: importlib.metadata.Distribution,
                      package: str) -> str:
    top = dist.read_text('top_level.txt')
    if top and top.split():
        return top.split()[0]
    for f in dist.files or []:
        if f.name == '__init__.py' and len(f.parts) == 2:
            return f.parts[0]
    raise ValueError(f'can not infer the module name of {package}')


def is_installed(package: str) -> bool:
    """``mmengine.utils.is_installed`` without ``pkg_resources``."""
    try:
        importlib.metadata.distribution(package)
        return True
    except importlib.metadata.PackageNotFoundError:
        spec = importlib.util.find_spec(package)
        return spec is not None and spec.origin is not None


def package2module(package: str) -> str:
    """``mmengine.utils.package_utils.package2module`` without
    ``pkg_resources``."""
    return _top_level_module(importlib.metadata.distribution(package), package)


def get_installed_path(package: str) -> str:
    """``mmengine.utils.get_installed_path`` without ``pkg_resources``."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        spec = importlib.util.find_spec(package)
        if spec is None:
            raise
        if spec.origin is None:
            raise RuntimeError(f'{package} is a namespace package, which is '
                               'invalid for `get_install_path`')
        return osp.dirname(spec.origin)
    module = package if importlib.util.find_spec(package) else \
        _top_level_module(dist, package)
    spec = importlib.util.find_spec(module)
    if spec is not None and spec.origin is not None:
        return osp.dirname(spec.origin)
    return str(dist.locate_file(module))


def _installed_path_wrong() -> bool:
    """Whether mmengine's ``get_installed_path`` (``pkg_resources``) misses
    where a package is: for a PEP 660 editable install (``pip install
    -e``) it names ``site-packages/<module>``, which does not exist, so
    ``pkg::`` configs of an editable package do not resolve."""
    spec = importlib.util.find_spec('stan_mmaction')
    try:
        from mmengine.utils import get_installed_path as theirs
        return osp.realpath(theirs('stan_mmaction')) != osp.realpath(
            osp.dirname(spec.origin))
    except Exception:  # noqa: BLE001  (any failure: theirs is unusable)
        return True


def patch_pkg_resources() -> bool:
    import mmengine.utils as utils_module
    if utils_module.get_installed_path is get_installed_path:
        return False
    if importlib.util.find_spec('pkg_resources') is not None and \
            not _installed_path_wrong():
        return False
    import mmengine.config.config as config_module
    import mmengine.utils.package_utils as package_utils
    replaced = False
    for module in (package_utils, utils_module, config_module):
        for name, func in (('is_installed', is_installed),
                           ('get_installed_path', get_installed_path),
                           ('package2module', package2module)):
            if hasattr(module, name) and getattr(module, name) is not func:
                setattr(module, name, func)
                replaced = True
    hub = sys.modules.get('mmengine.hub.hub')
    if hub is not None:
        hub.get_installed_path = get_installed_path
    return replaced
