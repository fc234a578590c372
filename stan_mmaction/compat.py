"""Repairs for the pinned stack (torch 2.14, mmengine 0.10.7, mmaction2 1.2.0).

Every repair here is applied by :func:`apply_all` (called on
``import stan_mmaction`` and at the top of ``tools/train.py`` / ``test.py``,
before ``Config.fromfile``), and each one first checks that it is needed, so
on a stack where upstream has fixed the problem it does nothing. Each repair
has its own test in ``tests/test_compat.py`` that fails without it.

Known breakages (docs/reliability.md, "Repairs of the pinned stack"):

1. The mmaction2 1.2.0 wheel lacks ``mmaction/models/localizers/drn``
   (open-mmlab/mmaction2#2714): ``import mmaction.models`` raises
   ``ModuleNotFoundError``. -> :func:`patch_missing_drn`
2. ``mmaction/utils/dependency.py`` imports the undeclared backport
   ``importlib_metadata``. -> :func:`patch_importlib_metadata`
3. mmengine resolves ``mmaction::`` base configs through ``pkg_resources``,
   which setuptools >= 82 no longer ships (and where it is shipped, names
   ``site-packages/<module>`` for a PEP 660 editable install). ->
   :func:`patch_pkg_resources`
4. torch >= 2.6 loads with ``weights_only=True``; mmengine's checkpoint
   loaders cannot read their own checkpoints (message hub, numpy arrays), so
   ``--resume`` fails; its URL loader unpickles everything. ->
   :func:`patch_torch_load`: mmengine's loaders go through
   ``stan_mmaction.utils.checkpoint.safe_torch_load`` (``weights_only=True``
   with numpy arrays/scalars and ``HistoryBuffer`` allowed, anything else
   refused with a message naming the opt-in for trusted files), and
   ``HistoryBuffer`` pickles as plain data (its default pickle needs
   ``getattr``).
5. numpy 2 removed ``np.in1d``, ``np.trapz`` and ``np.Inf``, still used by
   mmaction2 metrics and transforms. -> :func:`patch_numpy_aliases`
6. mmengine writes checkpoints and ``last_checkpoint`` in place: a crash
   while saving leaves a truncated file that ``--resume auto`` then picks.
   -> :func:`patch_atomic_local_writes`
7. mmengine's ``pytorch`` launcher calls ``torch.cuda.set_device`` and wraps
   models in DDP with ``device_ids``, so ``tools/dist_train.sh`` fails on
   machines without CUDA. -> :func:`patch_cpu_distributed` (gloo, no device
   ids, only when CUDA is unavailable)
8. ``--resume`` (auto) trusts ``last_checkpoint`` alone: without it, or with
   it emptied, training restarts at epoch 1 and overwrites the checkpoints
   of the earlier run; and ``CheckpointHook`` writes it in place with
   ``open``. -> :func:`patch_resume` (the newest ``epoch_N`` / ``iter_N``
   checkpoint when ``last_checkpoint`` is missing, empty or stale;
   ``last_checkpoint`` written atomically)
9. With ``transformers`` installed, mmaction2 1.2.0 imports its VindLU
   models, which import names newer ``transformers`` releases moved
   (``apply_chunking_to_forward`` from ``modeling_utils``, 4.57 tried), so
   ``import mmaction.models`` fails. -> :func:`patch_vindlu_imports`: when
   one of VindLU's ``transformers`` imports fails, mmaction2 registers its
   placeholders instead, as when ``transformers`` is missing
10. mmengine's ``FSDPStrategy`` keeps ``OptimWrapper``'s gradient clipping,
   ``torch.nn.utils.clip_grad_norm_`` over the parameters each rank holds:
   under FSDP those are shards, so every rank clips its shard by the norm
   of that shard alone (a different factor per rank, not the norm of the
   whole gradient). -> :func:`patch_fsdp_clip_grad`: norm clipping of an
   FSDP-wrapped model goes through FSDP's own ``clip_grad_norm_`` (the
   norm of the whole gradient, reduced over the ranks)
11. mmengine's ``DeepSpeedStrategy`` imports DeepSpeed's removed 1-bit
   optimizers. -> :func:`patch_deepspeed_optimizers`
12. mmengine's ``FSDPStrategy`` calls ``optim_state_dict_to_load`` in torch
   < 2.1's argument order (FSDP resume fails). -> :func:`patch_fsdp_resume`
13. torch's FSDP copies nothing out of its optimizer-state gather buffer on
   CPU processes. -> :func:`patch_fsdp_cpu_optim_state`
14. mmengine executes the config text a checkpoint carries:
   ``Runner.resume`` and ``FlexibleRunner.resume`` call
   ``Config.fromstring(checkpoint['meta']['config'], '.py')`` (to compare
   ``gpu_ids``), and ``BaseInferencer`` given weights alone does the same
   with ``message_hub.runtime_info.cfg`` / ``meta.cfg`` and builds the
   model from it. -> :func:`patch_checkpoint_config`: the runners read
   that text as data (``utils.config_text``, nothing executed), the
   inferencer refuses it and asks for the config file

Set ``STAN_MMACTION_NO_COMPAT=1`` to skip every repair (``import
stan_mmaction`` then loads only this module; used by the tests to show that
each breakage is real).
"""
import importlib.abc
import importlib.machinery
import importlib.metadata
import importlib.util
import logging
import os
import os.path as osp
import re
import sys
import types
from typing import Dict, List, Optional, Tuple

#: Supported version ranges, ``name: (min inclusive, max exclusive)``.
#: Mirrors ``requirements/pinned.txt``; mmaction2 1.2.0 itself refuses
#: mmcv >= 2.2.0.
SUPPORTED = {
    'mmcv': ('2.0.0', '2.2.0'),
    'mmengine': ('0.10.0', '1.0.0'),
    'mmaction2': ('1.2.0', '1.3.0'),
}
INSTALL_HINT = ('pip install "mmcv-lite==2.1.0" (or full "mmcv==2.1.0" on GPU '
                'clusters) "mmengine==0.10.7" "mmaction2==1.2.0"; '
                'the tested set is in requirements/pinned.txt')

_APPLIED: List[str] = []


class UnsupportedStackError(ImportError):
    """Raised when installed OpenMMLab versions cannot work together."""


def _version_tuple(version: str) -> Tuple[int, ...]:
    parts = []
    for piece in version.split('+')[0].split('.'):
        digits = ''.join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
        if not piece.isdigit():
            break
    return tuple(parts)


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
    for name, (low, high) in SUPPORTED.items():
        found = versions.get(name)
        if found is None:
            problems.append(f'{name} is not installed (need >={low}, <{high})')
        elif not (_version_tuple(low) <= _version_tuple(found) <
                  _version_tuple(high)):
            problems.append(f'{name}=={found} is installed but '
                            f'stan_mmaction needs {name}>={low}, <{high}')
    if problems:
        raise UnsupportedStackError(
            'stan_mmaction cannot run on this package set: ' +
            '; '.join(problems) + '. Install the tested versions: ' +
            INSTALL_HINT + '.')


# --------------------------------------------------------------------------
# 1. missing mmaction.models.localizers.drn
# --------------------------------------------------------------------------
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


# --------------------------------------------------------------------------
# 2. importlib_metadata backport
# --------------------------------------------------------------------------
def patch_importlib_metadata() -> bool:
    if 'importlib_metadata' in sys.modules or importlib.util.find_spec(
            'importlib_metadata') is not None:
        return False
    # The stdlib module has the two names mmaction uses
    # (``distribution``, ``PackageNotFoundError``).
    sys.modules['importlib_metadata'] = importlib.metadata
    return True


# --------------------------------------------------------------------------
# 3. pkg_resources in mmengine.utils.package_utils
# --------------------------------------------------------------------------
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


# --------------------------------------------------------------------------
# 4. torch.load(weights_only=True) default vs mmengine checkpoints
# --------------------------------------------------------------------------
class _SafeTorch(types.ModuleType):
    """``torch`` as seen by mmengine's checkpoint module: everything is the
    real torch except ``load``, which runs no code from the file
    (``stan_mmaction.utils.checkpoint.safe_torch_load``).

    mmengine checkpoints store the message hub (``HistoryBuffer``) and numpy
    arrays next to the weights; torch >= 2.6 refuses those with its
    ``weights_only=True`` default, and turning it off for them would let any
    checkpoint (``--resume``, ``load_from``, ``init_cfg=Pretrained``) run
    code. Exactly those types are allowed.
    """

    def __init__(self, torch_module):
        super().__init__('torch')
        self._torch = torch_module

    def __getattr__(self, name):
        return getattr(self._torch, name)

    def load(self, f, map_location=None, **kwargs):
        from .utils.checkpoint import safe_torch_load
        return safe_torch_load(f, map_location=map_location, **kwargs)


def _safe_load_url(url, model_dir=None, map_location=None, **kwargs):
    from .utils.checkpoint import safe_load_url
    return safe_load_url(url, model_dir=model_dir, map_location=map_location,
                         **kwargs)


def _history_buffer_getstate(self) -> dict:
    """Plain data: the default pickle of ``HistoryBuffer`` also carries its
    statistics methods, reconstructed through ``getattr``."""
    return dict(max_length=self.max_length,
                _log_history=self._log_history,
                _count_history=self._count_history)


def _history_buffer_setstate(self, state: dict) -> None:
    import numpy as np
    self.max_length = state['max_length']
    self._log_history = np.asarray(state['_log_history'])
    self._count_history = np.asarray(state['_count_history'])
    self._set_default_statistics()


def _weights_only_is_default() -> bool:
    import inspect

    import torch
    default = inspect.signature(torch.load).parameters.get('weights_only')
    if default is None:
        return False
    if default.default is None:  # resolved at call time (torch >= 2.6)
        return _version_tuple(torch.__version__) >= (2, 6)
    return bool(default.default)


def patch_torch_load() -> bool:
    if not _weights_only_is_default():
        return False
    # mmengine's own checkpoint loaders (local, http, petrel, ...) and the
    # URL loader they call (torch.hub with weights_only=False otherwise).
    import mmengine.runner.checkpoint as checkpoint_module
    from mmengine.logging.history_buffer import HistoryBuffer
    if isinstance(checkpoint_module.torch, _SafeTorch):
        return False
    checkpoint_module.torch = _SafeTorch(checkpoint_module.torch)
    checkpoint_module.load_url = _safe_load_url
    HistoryBuffer.__getstate__ = _history_buffer_getstate
    HistoryBuffer.__setstate__ = _history_buffer_setstate
    return True


# --------------------------------------------------------------------------
# 5. numpy 2 removed aliases
# --------------------------------------------------------------------------
def _in1d(ar1, ar2, assume_unique=False, invert=False, *, kind=None):
    import numpy as np
    return np.isin(
        ar1, ar2, assume_unique=assume_unique, invert=invert,
        kind=kind).ravel()


def patch_numpy_aliases() -> bool:
    import numpy as np
    added = False
    aliases = {
        'in1d': _in1d,
        'trapz': getattr(np, 'trapezoid', None),
        'Inf': np.inf,
    }
    for name, value in aliases.items():
        if value is None:
            continue
        try:
            getattr(np, name)
        except AttributeError:
            setattr(np, name, value)
            added = True
    return added


# --------------------------------------------------------------------------
# 6. atomic local writes (checkpoints, last_checkpoint)
# --------------------------------------------------------------------------
def _atomic_write(filepath, data, mode: str, encoding=None) -> None:
    """Write to a temporary file beside ``filepath``, then rename it over
    ``filepath`` (atomic on POSIX): readers see the old or the new file,
    never half of one."""
    from .utils.atomic import atomic_path
    with atomic_path(filepath) as tmp:
        with open(tmp, mode, encoding=encoding) as f:
            f.write(data)


def _atomic_put(self, obj: bytes, filepath) -> None:
    _atomic_write(filepath, obj, 'wb')


def _atomic_put_text(self, obj: str, filepath, encoding: str = 'utf-8'):
    _atomic_write(filepath, obj, 'w', encoding=encoding)


def patch_atomic_local_writes() -> bool:
    from mmengine.fileio.backends import LocalBackend
    if LocalBackend.put is _atomic_put:
        return False
    LocalBackend.put = _atomic_put
    LocalBackend.put_text = _atomic_put_text
    return True


# --------------------------------------------------------------------------
# 7. distributed training on CPU-only machines
# --------------------------------------------------------------------------
def _init_dist_pytorch_cpu(backend='nccl', init_backend='torch', **kwargs):
    import torch.distributed as torch_dist
    if init_backend != 'torch':
        raise ValueError('stan_mmaction runs CPU-only distributed training '
                         f'with init_backend="torch", got {init_backend!r}')
    if backend == 'nccl':
        backend = 'gloo'  # NCCL needs GPUs
    torch_dist.init_process_group(backend=backend, **kwargs)


def _ddp_init_cpu(self, module, detect_anomalous_params: bool = False,
                  **kwargs):
    import torch
    if all(p.device.type == 'cpu' for p in module.parameters()):
        kwargs.pop('device_ids', None)
        kwargs.pop('output_device', None)
    torch.nn.parallel.DistributedDataParallel.__init__(
        self, module=module, **kwargs)
    self.detect_anomalous_params = detect_anomalous_params


def patch_cpu_distributed() -> bool:
    import torch
    if torch.cuda.is_available():
        return False
    import mmengine.dist.utils as dist_utils
    from mmengine.model.wrappers.distributed import MMDistributedDataParallel
    if dist_utils._init_dist_pytorch is _init_dist_pytorch_cpu:
        return False
    dist_utils._init_dist_pytorch = _init_dist_pytorch_cpu
    MMDistributedDataParallel.__init__ = _ddp_init_cpu
    return True


# --------------------------------------------------------------------------
# 8. resume without a usable last_checkpoint; last_checkpoint in place
# --------------------------------------------------------------------------
_CHECKPOINT_NAME = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


class _AtomicTextFile:
    """``open(path, 'w')`` for ``with ... as f: f.write(text)``: the text
    goes to a temporary file that replaces ``path`` on a clean exit."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.parts: List[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            _atomic_write(self.path, ''.join(self.parts), 'w',
                          encoding='utf-8')
        return False


def _checkpoint_hook_open(file, mode='r', *args, **kwargs):
    """``open`` as seen by mmengine's checkpoint hook module."""
    if 'w' in mode and osp.basename(os.fspath(file)) == 'last_checkpoint':
        return _AtomicTextFile(file)
    return open(file, mode, *args, **kwargs)


def find_latest_checkpoint(path: str) -> Optional[str]:
    """The checkpoint ``--resume`` should continue from: the file
    ``last_checkpoint`` names when it exists, else the newest ``epoch_N.pth``
    / ``iter_N.pth`` in ``path`` (newest written, then highest N); None
    when there is none (a fresh start overwrites nothing)."""
    from mmengine.logging import print_log
    save_file = osp.join(path, 'last_checkpoint')
    named = None
    if osp.isfile(save_file):
        with open(save_file) as f:
            named = f.read().strip() or None
        if named is not None and osp.isfile(named):
            return named
    found = []
    if osp.isdir(path):
        for name in os.listdir(path):
            m = _CHECKPOINT_NAME.match(name)
            if m:
                full = osp.join(path, name)
                found.append((osp.getmtime(full), int(m.group(2)), full))
    if not found:
        return None
    latest = max(found)[2]
    why = 'is missing' if not osp.isfile(save_file) else (
        'is empty' if named is None else f'names a missing file {named}')
    print_log(f'{save_file} {why}; resuming from the newest checkpoint in '
              f'{path}: {latest}', logger='current', level=logging.WARNING)
    return latest


def patch_resume() -> bool:
    import inspect

    import mmengine.hooks.checkpoint_hook as hook_module
    import mmengine.runner.checkpoint as checkpoint_module
    import mmengine.runner.runner as runner_module
    if runner_module.find_latest_checkpoint is find_latest_checkpoint:
        return False
    source = inspect.getsource(
        hook_module.CheckpointHook._save_checkpoint_with_step)
    if "open(save_file, 'w')" in source:
        hook_module.open = _checkpoint_hook_open
    for module in (runner_module, checkpoint_module):
        module.find_latest_checkpoint = find_latest_checkpoint
    try:
        import mmengine.runner._flexible_runner as flexible
        flexible.find_latest_checkpoint = find_latest_checkpoint
    except ImportError:  # older mmengine
        pass
    return True


# --------------------------------------------------------------------------
# 9. mmaction2's VindLU imports under newer transformers
# --------------------------------------------------------------------------
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


# --------------------------------------------------------------------------
# 10. gradient norm clipping under FSDP
# --------------------------------------------------------------------------
def _fsdp_clip_norm(root):
    """A ``clip_grad_norm_`` stand-in that clips by the whole gradient's
    norm through the FSDP root module (the ``params`` argument is not
    needed: the root holds every shard)."""

    def clip(params, max_norm, norm_type=2.0, **kwargs):
        return root.clip_grad_norm_(max_norm, norm_type)

    clip.fsdp_root = root
    return clip


def clip_grad_through_fsdp(optim_wrapper, model) -> None:
    """Point every norm-clipping ``OptimWrapper`` in ``optim_wrapper`` at
    the FSDP root ``model`` (no-op for value clipping, no clipping, or a
    model that is not FSDP)."""
    import torch
    from mmengine.optim import OptimWrapperDict
    from torch.distributed.fsdp import FullyShardedDataParallel
    if not isinstance(model, FullyShardedDataParallel):
        return
    wrappers = optim_wrapper.values() if isinstance(
        optim_wrapper, OptimWrapperDict) else [optim_wrapper]
    for wrapper in wrappers:
        if getattr(wrapper, 'clip_grad_kwargs', None) and getattr(
                wrapper, 'clip_func', None) is torch.nn.utils.clip_grad_norm_:
            wrapper.clip_func = _fsdp_clip_norm(model)


def patch_fsdp_clip_grad() -> bool:
    import inspect
    try:
        from mmengine._strategy.fsdp import FSDPStrategy
    except ImportError:  # mmengine without FSDP support
        return False
    build = FSDPStrategy.build_optim_wrapper
    if getattr(build, '_stan_clips_through_fsdp', False) or \
            'clip_grad_norm_' in inspect.getsource(FSDPStrategy):
        return False

    def build_optim_wrapper(self, optim_wrapper, model=None):
        wrapper = build(self, optim_wrapper, model)
        clip_grad_through_fsdp(wrapper, model)
        return wrapper

    build_optim_wrapper._stan_clips_through_fsdp = True
    build_optim_wrapper.__doc__ = build.__doc__
    build_optim_wrapper.__wrapped__ = build
    FSDPStrategy.build_optim_wrapper = build_optim_wrapper
    return True


# --------------------------------------------------------------------------
# 11. DeepSpeedStrategy with a DeepSpeed without the 1-bit optimizers
# --------------------------------------------------------------------------
_DEEPSPEED_OPTIMIZERS = (
    ('deepspeed.ops.adam', ('DeepSpeedCPUAdam', 'FusedAdam')),
    ('deepspeed.ops.lamb', ('FusedLamb', )),
    ('deepspeed.runtime.fp16.onebit', ('OnebitAdam', 'OnebitLamb',
                                       'ZeroOneAdam')),
)


def register_deepspeed_optimizers() -> List[str]:
    """Register the DeepSpeed optimizers this DeepSpeed has in MMEngine's
    ``OPTIMIZERS`` (mmengine's function of the same name, minus the
    failure on optimizers DeepSpeed removed); returns their names."""
    from mmengine.registry import OPTIMIZERS
    registered = []
    for module_name, names in _DEEPSPEED_OPTIMIZERS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name in names:
            optimizer = getattr(module, name, None)
            if optimizer is None:
                continue
            if OPTIMIZERS.get(name) is not optimizer:
                OPTIMIZERS.register_module(module=optimizer, force=True)
            registered.append(name)
    return registered


def patch_deepspeed_optimizers() -> bool:
    try:
        import mmengine._strategy.deepspeed as ds_strategy
    except ImportError:  # mmengine without DeepSpeed support
        return False
    if ds_strategy.register_deepspeed_optimizers is \
            register_deepspeed_optimizers:
        return False
    if importlib.util.find_spec('deepspeed') is None:
        return False  # nothing to register; the strategy refuses anyway
    try:
        ds_strategy.register_deepspeed_optimizers()
        return False  # upstream works with this DeepSpeed
    except ImportError:
        pass
    ds_strategy.register_deepspeed_optimizers = register_deepspeed_optimizers
    return True


# --------------------------------------------------------------------------
# 12. resuming an FSDP run
# --------------------------------------------------------------------------
def _fsdp_load_optim_state_dict(self, state_dict: dict) -> None:
    """``FSDPStrategy.load_optim_state_dict`` with torch's argument names:
    the saved optimizer state (full or local, as the strategy saved it)
    converted for this rank's optimizer, then loaded."""
    from torch.distributed.fsdp import FullyShardedDataParallel
    optim_state_dict = FullyShardedDataParallel.optim_state_dict_to_load(
        model=self.model, optim=self.optim_wrapper.optimizer,
        optim_state_dict=state_dict)
    self.optim_wrapper.load_state_dict(optim_state_dict)


def patch_fsdp_resume() -> bool:
    import inspect
    try:
        from mmengine._strategy.fsdp import FSDPStrategy
        from torch.distributed.fsdp import FullyShardedDataParallel
    except ImportError:
        return False
    if FSDPStrategy.load_optim_state_dict is _fsdp_load_optim_state_dict:
        return False
    params = list(inspect.signature(
        FullyShardedDataParallel.optim_state_dict_to_load).parameters)
    source = inspect.getsource(FSDPStrategy.load_optim_state_dict)
    if params[:3] != ['model', 'optim', 'optim_state_dict'] or \
            'state_dict, self.model' not in source:
        return False
    _fsdp_load_optim_state_dict.__wrapped__ = \
        FSDPStrategy.load_optim_state_dict
    FSDPStrategy.load_optim_state_dict = _fsdp_load_optim_state_dict
    return True


# --------------------------------------------------------------------------
# 13. FSDP full optimizer state dicts on CPU processes
# --------------------------------------------------------------------------
_UNFLATTEN_ORIG_PARAM_STATES = []


def _unflatten_orig_param_states_cpu(fsdp_param_info, output_states,
                                     state_name, shard_state, to_save,
                                     cpu_offload):
    """torch's ``_unflatten_orig_param_states``, then a copy of each state
    out of the reused gather buffer when ``.cpu()`` did not copy."""
    _UNFLATTEN_ORIG_PARAM_STATES[0](fsdp_param_info, output_states,
                                    state_name, shard_state, to_save,
                                    cpu_offload)
    if not (to_save and cpu_offload and not shard_state):
        return
    if fsdp_param_info.state.compute_device.type != 'cpu':
        return
    for gathered_state in output_states.values():
        value = gathered_state.get(state_name)
        if hasattr(value, 'clone'):
            gathered_state[state_name] = value.clone()


def patch_fsdp_cpu_optim_state() -> bool:
    import inspect
    try:
        from torch.distributed.fsdp import _optim_utils
    except ImportError:
        return False
    current = getattr(_optim_utils, '_unflatten_orig_param_states', None)
    if current is None or current is _unflatten_orig_param_states_cpu:
        return False
    source = inspect.getsource(current)
    if 'value.cpu()' not in source or 'elif not cpu_offload' not in source:
        return False  # torch copies in every case: nothing to repair
    _UNFLATTEN_ORIG_PARAM_STATES[:] = [current]
    _optim_utils._unflatten_orig_param_states = \
        _unflatten_orig_param_states_cpu
    return True


# --------------------------------------------------------------------------
# 14. config text from checkpoints executed by mmengine
# --------------------------------------------------------------------------
class _ConfigLike(type):
    """Metaclass of the ``Config`` stand-ins below: every class attribute
    and ``isinstance`` / ``issubclass`` answer is mmengine's ``Config``'s;
    only ``fromstring`` differs."""

    def __getattr__(cls, name):
        from mmengine.config import Config
        return getattr(Config, name)

    def __instancecheck__(cls, obj):
        from mmengine.config import Config
        return isinstance(obj, Config)

    def __subclasscheck__(cls, sub):
        from mmengine.config import Config
        return issubclass(sub, Config)

    def __call__(cls, *args, **kwargs):
        from mmengine.config import Config
        return Config(*args, **kwargs)


class DataOnlyConfig(metaclass=_ConfigLike):
    """``Config`` for the runners' resume: ``fromstring`` reads the text of
    a checkpoint as data (:func:`.utils.config_text.config_text_to_dict`)
    and executes nothing."""

    @staticmethod
    def fromstring(cfg_str: str, file_format: str):
        from mmengine.config import Config

        from .utils.config_text import config_text_to_dict
        return Config(config_text_to_dict(cfg_str, file_format))


class RefusedCheckpointConfig(metaclass=_ConfigLike):
    """``Config`` for mmengine's inferencers: the config stored in a
    checkpoint is never turned into a model."""

    @staticmethod
    def fromstring(cfg_str: str, file_format: str):
        raise ValueError(
            'stan_mmaction: the config stored inside a checkpoint is not '
            'executed or built (it could run code); pass the config file '
            'as well (model=CONFIG, weights=CHECKPOINT)')


class _WithConfig(types.ModuleType):
    """``mmengine`` as seen by one module: the real package, except its
    ``Config``."""

    def __init__(self, module, config):
        super().__init__(module.__name__)
        self._module, self.Config = module, config

    def __getattr__(self, name):
        return getattr(self._module, name)


def config_fromstring_executes() -> bool:
    """Whether mmengine's ``Config.fromstring(text, '.py')`` runs the text
    (the assignment below is only an expression if executed)."""
    from mmengine.config import Config
    try:
        cfg = Config.fromstring('x = len([0, 0])\n', file_format='.py')
    except Exception:
        return False
    return cfg.get('x') == 2


def patch_checkpoint_config() -> bool:
    import mmengine.infer.infer as infer_module
    import mmengine.runner._flexible_runner as flexible_module
    import mmengine.runner.runner as runner_module
    if isinstance(runner_module.mmengine, _WithConfig):
        return False
    if not config_fromstring_executes():
        return False
    for module in (runner_module, flexible_module):
        module.mmengine = _WithConfig(module.mmengine, DataOnlyConfig)
    infer_module.Config = RefusedCheckpointConfig
    return True


def apply_all() -> List[str]:
    """Check versions and apply every needed repair (idempotent).

    Returns:
        list[str]: names of the repairs applied by this or earlier calls.
    """
    if os.environ.get('STAN_MMACTION_NO_COMPAT') == '1':
        return []
    check_versions()
    for name, patch in (('missing_drn', patch_missing_drn),
                        ('importlib_metadata', patch_importlib_metadata),
                        ('pkg_resources', patch_pkg_resources),
                        ('torch_load', patch_torch_load),
                        ('numpy_aliases', patch_numpy_aliases),
                        ('atomic_local_writes', patch_atomic_local_writes),
                        ('cpu_distributed', patch_cpu_distributed),
                        ('resume', patch_resume),
                        ('vindlu_imports', patch_vindlu_imports),
                        ('fsdp_clip_grad', patch_fsdp_clip_grad),
                        ('deepspeed_optimizers',
                         patch_deepspeed_optimizers),
                        ('fsdp_resume', patch_fsdp_resume),
                        ('fsdp_cpu_optim_state',
                         patch_fsdp_cpu_optim_state),
                        ('checkpoint_config', patch_checkpoint_config)):
        if patch() and name not in _APPLIED:
            _APPLIED.append(name)
    return list(_APPLIED)
