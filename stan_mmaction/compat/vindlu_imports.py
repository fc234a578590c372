"""Repair 7: vindlu_imports.

Breakage: With ``transformers`` installed, mmaction2 1.2.0 imports its VindLU
models, which import names newer ``transformers`` releases moved
(``apply_chunking_to_forward`` from ``modeling_utils``, 4.57 tried), so
``import mmaction.models`` fails. -> :func:`patch_vindlu_imports`: when
one of VindLU's ``transformers`` imports fails, mmaction2 registers its
placeholders instead, as when ``transformers`` is missing

Detected by: one of VindLU's ``transformers`` imports fails (tried without
importing VindLU).

Fixed upstream: not in a release yet (latest checked: mmaction2 1.2.0).

Test: tests/test_transformers_compat.py.
"""
import importlib.util
import os
import os.path as osp
import sys
from typing import List, Optional, Tuple

#: why the VindLU placeholders were registered (for bug reports).
VINDLU_REASON: List[str] = []


def _vindlu_transformers_imports() -> List[Tuple[str, List[str]]]:
    """``(module, names)`` of every ``from transformers... import`` in
    mmaction2's VindLU sources, read without importing them."""
    import ast
    spec = importlib.util.find_spec('mmaction')
    if spec is None or not spec.submodule_search_locations:
        return []
    folder = osp.join(list(spec.submodule_search_locations)[0], 'models',
                      'multimodal', 'vindlu')
    found = []
    for name in sorted(os.listdir(folder)) if osp.isdir(folder) else []:
        if not name.endswith('.py'):
            continue
        with open(osp.join(folder, name), encoding='utf-8') as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.split('.')[0] == 'transformers' and \
                    node.col_offset == 0:
                found.append((node.module, [a.name for a in node.names]))
            elif isinstance(node, ast.Import) and node.col_offset == 0:
                found += [(a.name, []) for a in node.names
                          if a.name.split('.')[0] == 'transformers']
    return found


def vindlu_import_error() -> Optional[str]:
    """Why VindLU's ``transformers`` imports fail (None: they work)."""
    for module, names in _vindlu_transformers_imports():
        try:
            mod = importlib.import_module(module)
        except Exception as err:  # noqa: BLE001  (any import-time error)
            return f'import {module}: {type(err).__name__}: {err}'
        missing = [n for n in names if not hasattr(mod, n)]
        if missing:
            return f'{module} has no {missing}'
    return None


def patch_vindlu_imports() -> bool:
    if 'mmaction.models' in sys.modules:
        return False  # too late to choose; mmaction.models imported fine
    import mmaction.utils.dependency as dependency
    if not dependency.WITH_MULTIMODAL:
        return False
    why = vindlu_import_error()
    if why is None:
        return False
    dependency.WITH_MULTIMODAL = False
    VINDLU_REASON.append(why)
    return True
