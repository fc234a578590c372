"""The supported OpenMMLab versions, from one source each, and the check
``import stan_mmaction`` makes before anything imports mmaction.

- mmengine and mmaction2: the ranges of ``requirements/runtime.txt``, read
  from the installed package's metadata (built from that file; a source
  tree without metadata reads the file itself).
- mmcv (left out of our requirements: a cluster keeps the mmcv it built):
  the bounds mmaction2 itself asserts, read from its ``__init__.py``
  without importing it.
"""
import importlib.metadata
import importlib.util
import os.path as osp
import re
from typing import Dict, Optional, Tuple

INSTALL_HINT = ('pip install "mmcv-lite==2.1.0" (or full "mmcv==2.1.0" on GPU '
                'clusters) "mmengine==0.10.7" "mmaction2==1.2.0"; '
                'the tested set is in requirements/pinned.txt')
_RUNTIME_TXT = osp.join(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))), 'requirements', 'runtime.txt')


class UnsupportedStackError(ImportError):
    """Raised when installed OpenMMLab versions cannot work together."""


UnsupportedStackError.__module__ = 'stan_mmaction.compat'


def version_tuple(version: str) -> Tuple[int, ...]:
    """``'2.0.0rc4'`` -> ``(2, 0, 0)``: the leading numbers, up to the first
    piece that carries more than digits (a pre-release, a local tag)."""
    parts = []
    for piece in version.split('+')[0].split('.'):
        digits = re.match(r'\d*', piece).group(0)
        if not digits:
            break
        parts.append(int(digits))
        if digits != piece:
            break
    return tuple(parts)


def _requirement_lines():
    try:
        lines = importlib.metadata.requires('stan_mmaction') or []
    except importlib.metadata.PackageNotFoundError:
        lines = []
    if not lines and osp.isfile(_RUNTIME_TXT):
        with open(_RUNTIME_TXT, encoding='utf-8') as f:
            lines = [line.split('#')[0].strip() for line in f]
    return [line for line in lines if line and ';' not in line]


def requirement_range(name: str) -> Tuple[str, str]:
    """``(low, high)`` of ``name>=low,<high`` in our requirements."""
    for line in _requirement_lines():
        match = re.match(r'([A-Za-z0-9_.-]+)\s*(.*)', line)
        if match.group(1).lower().replace('_', '-') != name:
            continue
        specs = dict(re.findall(r'(>=|<)\s*([\w.]+)', match.group(2)))
        if '>=' in specs and '<' in specs:
            return specs['>='], specs['<']
    raise RuntimeError(f'no "{name}>=A,<B" in the requirements of '
                       'stan_mmaction (requirements/runtime.txt)')


def mmaction_mmcv_range() -> Optional[Tuple[str, str]]:
    """The mmcv bounds mmaction2's ``__init__.py`` asserts (``None``: not
    installed, or the bounds are not written there)."""
    spec = importlib.util.find_spec('mmaction')
    if spec is None or not spec.origin or not osp.isfile(spec.origin):
        return None
    with open(spec.origin, encoding='utf-8') as f:
        text = f.read()
    low = re.search(r"mmcv_minimum_version\s*=\s*'([^']+)'", text)
    high = re.search(r"mmcv_maximum_version\s*=\s*'([^']+)'", text)
    return (low.group(1), high.group(1)) if low and high else None


def supported() -> Dict[str, Tuple[str, str]]:
    """``name: (min inclusive, max exclusive)`` for mmcv, mmengine and
    mmaction2 (mmcv: 2.0.0 - 2.2.0 where mmaction2 states nothing)."""
    return {
        'mmcv': mmaction_mmcv_range() or ('2.0.0', '2.2.0'),
        'mmengine': requirement_range('mmengine'),
        'mmaction2': requirement_range('mmaction2'),
    }


def _installed_version(dist_names: Tuple[str, ...]) -> Optional[str]:
    for name in dist_names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def installed_versions() -> Dict[str, Optional[str]]:
    """Versions of the OpenMMLab packages as installed (``None``: missing)."""
    return {
        'mmcv': _installed_version(('mmcv', 'mmcv-lite', 'mmcv-full')),
        'mmengine': _installed_version(('mmengine', 'mmengine-lite')),
        'mmaction2': _installed_version(('mmaction2', )),
    }


def check_versions(
        versions: Optional[Dict[str, Optional[str]]] = None) -> None:
    """Fail with one clear message on an unsupported package combination.

    Runs before anything imports mmaction, whose own check is a bare
    ``AssertionError`` from deep inside its ``__init__``.

    Args:
        versions (dict, optional): ``{'mmcv': '2.1.0', ...}``; defaults to
            what is installed.

    Raises:
        UnsupportedStackError: naming each bad version and what to install.
    """
    versions = installed_versions() if versions is None else versions
    problems = []
    for name, (low, high) in supported().items():
        found = versions.get(name)
        if found is None:
            problems.append(f'{name} is not installed (need >={low}, <{high})')
        elif not (version_tuple(low) <= version_tuple(found) <
                  version_tuple(high)):
            problems.append(f'{name}=={found} is installed but '
                            f'stan_mmaction needs {name}>={low}, <{high}')
    if problems:
        raise UnsupportedStackError(
            'stan_mmaction cannot run on this package set: ' +
            '; '.join(problems) + '. Install the tested versions: ' +
            INSTALL_HINT + '.')
