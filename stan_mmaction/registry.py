"""The ``stan_mmaction`` config scope and where the shipped configs are.

Our modules register into MMAction2's registries (``mmaction.registry``);
this module makes the package a config scope of its own, the way MMEngine
treats OpenMMLab packages, so that a config anywhere can inherit what the
package ships::

    _base_ = ['stan_mmaction::demo/stan_tiny_synthetic.py']

Two things make that work, both done on ``import stan_mmaction``:

- MMEngine resolves ``pkg::path`` only for packages in its fixed list
  (``mmengine.config.utils.MODULE2PACKAGE``): the scope is added to it.
  Configs are read from ``<package>/.mim/configs`` (MMEngine's layout; the
  wheel carries ``configs/``, ``tools/`` and ``demo/`` there, and a clone
  has links to the repository's folders).
- MMEngine tags every ``type`` dict of a ``stan_mmaction::`` base with
  ``_scope_='stan_mmaction'`` and builds it in the registry of that scope.
  Each registry of MMAction2 gets a child with this scope (below), which
  finds everything its parent has: our modules and MMAction2's alike.

MMAction2's own tools read a config before its ``custom_imports`` run, so
they do not know the scope: there, name our configs by path
(:func:`config_path`, ``stan-mmaction config-path``).
"""
import os.path as osp

import mmaction.registry as _mmaction_registry
from mmengine.config import utils as _config_utils
from mmengine.registry import Registry

SCOPE = 'stan_mmaction'
#: Where the package keeps its configs, tools and demo (MMEngine's ``.mim``).
MIM_DIR = osp.join(osp.dirname(osp.abspath(__file__)), '.mim')


def _children():
    children = {}
    for name, parent in vars(_mmaction_registry).items():
        if isinstance(parent, Registry):
            child = parent.children.get(SCOPE)
            if child is None:
                # locations: what MMEngine imports before a look-up in the
                # child; a parent's own modules are imported only by a
                # look-up in the parent, so the child imports them too.
                locations = list(getattr(parent, '_locations', [])) + [SCOPE]
                child = Registry(parent.name, parent=parent, scope=SCOPE,
                                 locations=locations)
            children[name] = child
    return children


# MODELS, DATASETS, TRANSFORMS, METRICS, HOOKS, ... with scope SCOPE.
globals().update(_children())
_config_utils.MODULE2PACKAGE.setdefault(SCOPE, SCOPE)


def config_path(name: str = '') -> str:
    """The absolute path of a shipped config (or of the configs folder):
    :func:`stan_mmaction_cli.config_path` (the command line's, which
    imports nothing heavy)."""
    from stan_mmaction_cli import config_path as find
    return find(name)
