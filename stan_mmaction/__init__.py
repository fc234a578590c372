"""STAN for MMAction2 1.x.

``import stan_mmaction`` repairs the known breakages of the pinned stack
(:mod:`stan_mmaction.compat`) and registers our modules into MMAction2's
registries (``mmaction.registry.MODELS``, ...).
"""
# isort: skip_file  (the stack is repaired before anything imports mmaction)
import os
import warnings

# mmcv-lite (no compiled ops) warns at import that its deformable attention
# is missing; nothing here or in MMAction2's video models uses it, so our
# tools and configs do not show it. Every other warning is left alone.
warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``',
    category=UserWarning)

from . import compat  # noqa: E402
from .version import __version__  # noqa: E402,F401

compat.apply_all()

# STAN_MMACTION_NO_COMPAT=1 (the compat tests' switch, to show the stack's
# breakages unrepaired) loads only the compat module: our modules import
# mmaction.models, which the unrepaired stack cannot import.
if os.environ.get('STAN_MMACTION_NO_COMPAT') != '1':
    from .models import *  # noqa: E402,F401,F403
    from .datasets import *  # noqa: E402,F401,F403
    from .engine import *  # noqa: E402,F401,F403
    from .evaluation import *  # noqa: E402,F401,F403
    from . import registry  # noqa: E402,F401  (the stan_mmaction:: scope)
