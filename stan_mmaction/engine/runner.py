"""Our runners: MMEngine's ``Runner`` and ``FlexibleRunner`` with the
behaviour our configs select (``runner_type = 'StanRunner'`` in
``configs/_base_/default_runtime.py``, ``'StanFlexibleRunner'`` in the
sharded strategies' bases). Importing the plugin changes neither of
MMEngine's runners; a config that names these gets:

- **resume that finds the newest checkpoint**: ``--resume`` (auto) follows
  ``last_checkpoint`` when it names a file, else continues from the newest
  ``epoch_N.pth`` / ``iter_N.pth`` in the work dir. MMEngine's trusts
  ``last_checkpoint`` alone: without it (deleted, never written because
  the run was killed during its first save, copied work dirs) training
  restarts at epoch 1 and overwrites the earlier run's checkpoints.
- **distributed training on machines without CUDA** (``StanRunner``; the
  FSDP strategy has its own, :class:`~.sharding.StanFSDPStrategy`): with
  the ``pytorch`` launcher (``torchrun``, ``tools/dist_train.sh``) the
  process group starts with gloo where MMEngine's launcher would call
  ``torch.cuda.set_device`` and fail, and the model is wrapped in
  :class:`StanDistributedDataParallel` (no CUDA device ids for a CPU
  model).
"""
import logging
import os
import os.path as osp
import re
from typing import Optional

import torch
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel, is_model_wrapper
# MMEngine's registries: `RUNNERS.build(cfg)` (MMAction2's train.py and
# ours) looks in the root before any scope is set.
from mmengine.registry import MODEL_WRAPPERS, RUNNERS
from mmengine.runner import FlexibleRunner, Runner

from ..utils.log_levels import (FILE_CLIENT_DEPRECATION, HOOK_TABLE,
                                LinesToDebug)
from ..utils.system import keep_freed_memory

_CHECKPOINT_NAME = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


def find_latest_checkpoint(path: str) -> Optional[str]:
    """The checkpoint ``--resume`` (auto) continues from: the file
    ``last_checkpoint`` names when it exists, else the newest
    ``epoch_N.pth`` / ``iter_N.pth`` in ``path`` (newest written, then
    highest N); None when there is none (a fresh start overwrites
    nothing)."""
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


def init_cpu_process_group(launcher: str, dist_cfg: Optional[dict]) -> bool:
    """Start the process group of a ``pytorch``-launched run on a machine
    without CUDA (gloo; ``nccl`` needs GPUs). MMEngine's launcher calls
    ``torch.cuda.set_device`` first and fails there.

    Returns:
        bool: True when it started the group; False where MMEngine's
        launcher applies (CUDA present, another launcher, a group already
        running).
    """
    import torch.distributed as dist
    if launcher != 'pytorch' or torch.cuda.is_available() or \
            dist.is_initialized():
        return False
    kwargs = dict(dist_cfg or {})
    backend = kwargs.pop('backend', 'gloo')
    init_backend = kwargs.pop('init_backend', 'torch')
    if init_backend != 'torch':
        raise ValueError('distributed training without CUDA runs with '
                         f'init_backend="torch", got {init_backend!r}')
    dist.init_process_group(
        backend='gloo' if backend == 'nccl' else backend, **kwargs)
    return True


def keep_freed_memory_on_cpu(env_cfg: dict) -> bool:
    """Without CUDA, keep the memory a training step frees for the next
    one (:func:`stan_mmaction.utils.system.keep_freed_memory`; the CPU
    training step 3.9x -> 3.2x an inference for STAN-attn B/16). On unless
    ``env_cfg.keep_freed_memory=False``. Returns whether it applies."""
    if not env_cfg.get('keep_freed_memory', True) or \
            torch.cuda.is_available():
        return False
    kept = keep_freed_memory()
    if kept:
        print_log('CPU training: freed memory is kept for reuse (glibc '
                  'mallopt; env_cfg.keep_freed_memory=False turns it off)',
                  logger='current', level=logging.INFO)
    return kept


@MODEL_WRAPPERS.register_module()
class StanDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that also wraps a CPU model: MMEngine's
    runner passes ``device_ids=[local_rank]``, which torch refuses for a
    module on the CPU, so they are dropped there (and kept for a model on
    a GPU)."""

    def __init__(self, module, detect_anomalous_params: bool = False,
                 **kwargs):
        if all(p.device.type == 'cpu' for p in module.parameters()):
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
        super().__init__(module=module,
                         detect_anomalous_params=detect_anomalous_params,
                         **kwargs)


def without_scope_tags(cfg_dict, scope: str = 'stan_mmaction'):
    """A copy of a config dict without the ``_scope_=scope`` entries MMEngine
    adds to every ``type`` dict of a ``scope::`` base. For the log only:
    the child registries of that scope find the same modules as MMAction2's
    own (``stan_mmaction.registry``), so the tags change nothing a reader
    needs, and a leaf config inheriting a shipped one through the package
    scope printed one in every dict of its dump."""
    if isinstance(cfg_dict, dict):
        return type(cfg_dict)(
            (k, without_scope_tags(v, scope)) for k, v in cfg_dict.items()
            if not (k == '_scope_' and v == scope))
    if isinstance(cfg_dict, (list, tuple)):
        return type(cfg_dict)(without_scope_tags(v, scope) for v in cfg_dict)
    return cfg_dict


class _ResumeFromNewest:
    """``load_or_resume`` with :func:`find_latest_checkpoint` for auto
    resume, the config logged without scope tags
    (:func:`without_scope_tags`), MMEngine's FileClient deprecation notes
    and its hook table at DEBUG (:mod:`~stan_mmaction.utils.log_levels`),
    and CPU memory kept for reuse when training starts (a mixin of both
    runners)."""

    def build_logger(self, *args, **kwargs):
        logger = super().build_logger(*args, **kwargs)
        if not any(isinstance(f, LinesToDebug) for f in logger.filters):
            quiet = FILE_CLIENT_DEPRECATION + HOOK_TABLE
            logger.addFilter(LinesToDebug(quiet))
        return logger

    def _log_env(self, *args) -> None:
        # (Runner passes env_cfg, FlexibleRunner nothing.)
        from mmengine.config import Config
        full = self.cfg
        self.cfg = Config(without_scope_tags(full.to_dict()),
                          filename=full.filename)
        try:
            super()._log_env(*args)
        finally:
            self.cfg = full

    def train(self):
        # Training only: a test or an inference keeps glibc's defaults
        # (and its log keeps quiet about them).
        keep_freed_memory_on_cpu(self.cfg.get('env_cfg', {}))
        return super().train()

    def load_or_resume(self):
        auto = (self._resume and not isinstance(self._resume, str)
                and self._load_from is None)
        if auto and not self._has_loaded:
            latest = find_latest_checkpoint(self.work_dir)
            if latest is None:
                self.logger.info(f'No checkpoint to resume from in '
                                 f'{self.work_dir}: training starts anew.')
                return None
            self.logger.info(  # MMEngine's words
                f'Auto resumed from the latest checkpoint {latest}.')
            self._load_from = latest
        return super().load_or_resume()


@RUNNERS.register_module()
class StanRunner(_ResumeFromNewest, Runner):
    """MMEngine's ``Runner`` with our resume (:func:`find_latest_checkpoint`)
    and distributed training without CUDA (gloo, CPU DDP). Selected by
    ``runner_type = 'StanRunner'``; arguments as ``Runner``."""

    def setup_env(self, env_cfg: dict) -> None:
        if self.distributed:
            init_cpu_process_group(self.launcher, env_cfg.get('dist_cfg'))
        super().setup_env(env_cfg)

    def wrap_model(self, model_wrapper_cfg: Optional[dict], model):
        if self.distributed and model_wrapper_cfg is None and \
                not is_model_wrapper(model):
            # MMEngine's default wrapper, as MMEngine configures it.
            model_wrapper_cfg = dict(
                type='StanDistributedDataParallel', broadcast_buffers=False,
                find_unused_parameters=self.cfg.get(
                    'find_unused_parameters', False))
        return super().wrap_model(model_wrapper_cfg, model)


@RUNNERS.register_module()
class StanFlexibleRunner(_ResumeFromNewest, FlexibleRunner):
    """MMEngine's ``FlexibleRunner`` (FSDP, DeepSpeed) with our resume, and
    checkpoints that record the epoch and iteration their caller gives.
    Selected by ``runner_type = 'StanFlexibleRunner'``; arguments as
    ``FlexibleRunner``."""

    def save_checkpoint(self, out_dir, filename, file_client_args=None,
                        save_optimizer=True, save_param_scheduler=True,
                        meta=None, by_epoch=True, backend_args=None):
        """``FlexibleRunner.save_checkpoint`` writing ``meta``'s epoch and
        iteration where the caller gives them. MMEngine 0.10.7's
        FlexibleRunner overwrites them with its counters plus one
        (``Runner`` keeps them): when a validation finds a new best
        checkpoint, ``CheckpointHook`` saves the epoch checkpoint again
        with ``epoch`` = the epoch just trained, and the FlexibleRunner
        recorded the next one, so ``--resume`` skipped an epoch (found by
        tests/test_shipped_configs.py on the FSDP configs: resumed at
        epoch 2 after one epoch). Here the counters are set to what the
        runner would have added one to, for the call only."""
        loop = self.train_loop
        if not isinstance(loop, dict) and meta and \
                {'epoch', 'iter'} <= set(meta):
            counters = loop._epoch, loop._iter
            loop._epoch = meta['epoch'] - 1 if by_epoch else meta['epoch']
            loop._iter = meta['iter'] if by_epoch else meta['iter'] - 1
        else:
            counters = None
        try:
            return super().save_checkpoint(
                out_dir, filename, file_client_args=file_client_args,
                save_optimizer=save_optimizer,
                save_param_scheduler=save_param_scheduler, meta=meta,
                by_epoch=by_epoch, backend_args=backend_args)
        finally:
            if counters is not None:
                loop._epoch, loop._iter = counters
