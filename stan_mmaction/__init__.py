"""STAN for MMAction2 1.x.

``import stan_mmaction`` repairs the known breakages of the pinned stack
(:mod:`stan_mmaction.compat`) and registers our modules into MMAction2's
registries (``mmaction.registry.MODELS``, ...).
"""
from . import compat

compat.apply_all()

from .models import *  # noqa: E402,F401,F403
from .version import __version__  # noqa: E402,F401
from .datasets import *  # noqa: E402,F401,F403
from .engine import *  # noqa: E402,F401,F403
from .evaluation import *  # noqa: E402,F401,F403
