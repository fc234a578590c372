"""Repairs of the upstream stack (torch 2.14, mmengine 0.10.7, mmaction2
1.2.0), one module per breakage.

Each module states the breakage, how :func:`apply_all` detects that it is
present (so a stack where upstream fixed it is left alone), the upstream
version that fixed it, and its test (``tests/test_compat.py`` unless
named). Where detection reads upstream source text and finds neither the
broken form nor a known fixed one, the repair is not applied and an
:class:`UndecidedRepairWarning` says so, never silently.

====  ========================  =============================================
 #    module                    breakage
====  ========================  =============================================
 1    ``missing_drn``           mmaction2 1.2.0's wheel lacks ``drn``
 2    ``metadata_backport``     undeclared ``importlib_metadata``
 3    ``package_paths``         ``pkg::`` configs need ``pkg_resources``
 4    ``torch_load``            ``weights_only`` default vs mmengine
 5    ``numpy_aliases``         numpy 2 removed ``in1d``, ``trapz``, ``Inf``
 6    ``atomic_local_writes``   files written in place (truncated on a crash)
 7    ``vindlu_imports``        VindLU vs newer ``transformers``
 8    ``deepspeed_optimizers``  DeepSpeed's removed 1-bit optimizers
 9    ``fsdp_cpu_optim_state``  FSDP optimizer states on CPU processes
 10   ``checkpoint_config``     a checkpoint's config text executed
 11   ``color_jitter_hue``      ``ColorJitter`` hue overflows under numpy 2
 12   ``imgaug_numpy_bool``     ``ImgAug`` replaces ``np.bool`` process-wide
====  ========================  =============================================

Only breakages are repaired here. What is our behaviour rather than a fix
(resume from the newest checkpoint, an atomic ``last_checkpoint``, CPU
distributed training, FSDP clipping by the whole norm and its optimizer
states on resume) is in registered engine parts our configs select
(``stan_mmaction/engine``: ``StanRunner``, ``StanFlexibleRunner``,
``StanCheckpointHook``, ``StanFSDPStrategy``,
``StanDistributedDataParallel``): importing the plugin leaves MMEngine's
runners, hooks and strategies as they are.

The supported versions (``_versions``) come from ``requirements/runtime.txt``
through the package metadata, and mmcv's from mmaction2's own bounds.
Names of the repair modules are reachable here (``compat.patch_torch_load``)
for the tools and tests.

Set ``STAN_MMACTION_NO_COMPAT=1`` to skip every repair (``import
stan_mmaction`` then loads only this package; used by the tests to show that
each breakage is real).
"""
import os
import warnings
from typing import List

from ._versions import (INSTALL_HINT, UnsupportedStackError,  # noqa: F401
                        check_versions, installed_versions, supported,
                        version_tuple)


class UndecidedRepairWarning(UserWarning):
    """A repair could not tell whether the installed upstream code has the
    breakage it repairs (the code it reads changed), so it left it alone."""


def undecided(repair: str, what: str) -> bool:
    """Warn that ``repair`` could not decide; report it as not applied."""
    warnings.warn(
        f'stan_mmaction repair {repair!r} left {what} alone: its source is '
        'neither the broken form the repair knows nor a fixed one. Check '
        'that behaviour by hand (see stan_mmaction/compat/) and report the '
        'upstream version.', UndecidedRepairWarning, stacklevel=2)
    return False


from . import (atomic_local_writes, checkpoint_config,  # noqa: E402
               color_jitter_hue, deepspeed_optimizers, fsdp_cpu_optim_state,
               imgaug_numpy_bool, metadata_backport, missing_drn,
               numpy_aliases, package_paths, torch_load, vindlu_imports)

#: ``(name, module, repair function)`` in the order they are applied.
REPAIRS = (
    ('missing_drn', missing_drn, missing_drn.patch_missing_drn),
    ('importlib_metadata', metadata_backport,
     metadata_backport.patch_importlib_metadata),
    ('pkg_resources', package_paths, package_paths.patch_pkg_resources),
    ('torch_load', torch_load, torch_load.patch_torch_load),
    ('numpy_aliases', numpy_aliases, numpy_aliases.patch_numpy_aliases),
    ('atomic_local_writes', atomic_local_writes,
     atomic_local_writes.patch_atomic_local_writes),
    ('vindlu_imports', vindlu_imports, vindlu_imports.patch_vindlu_imports),
    ('deepspeed_optimizers', deepspeed_optimizers,
     deepspeed_optimizers.patch_deepspeed_optimizers),
    ('fsdp_cpu_optim_state', fsdp_cpu_optim_state,
     fsdp_cpu_optim_state.patch_fsdp_cpu_optim_state),
    ('checkpoint_config', checkpoint_config,
     checkpoint_config.patch_checkpoint_config),
    ('color_jitter_hue', color_jitter_hue,
     color_jitter_hue.patch_color_jitter_hue),
    ('imgaug_numpy_bool', imgaug_numpy_bool,
     imgaug_numpy_bool.patch_imgaug_numpy_bool),
)

_APPLIED: List[str] = []


def __getattr__(name: str):
    """A name of one of the repair modules (``compat.patch_torch_load``)."""
    for _, module, _ in REPAIRS:
        if name in vars(module):
            return vars(module)[name]
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def apply_all() -> List[str]:
    """Check versions and apply every needed repair (idempotent).

    Returns:
        list[str]: names of the repairs applied by this or earlier calls.
    """
    if os.environ.get('STAN_MMACTION_NO_COMPAT') == '1':
        return []
    check_versions()
    for name, _, patch in REPAIRS:
        if patch() and name not in _APPLIED:
            _APPLIED.append(name)
    return list(_APPLIED)
