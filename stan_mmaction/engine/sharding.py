"""FSDP for STAN models: the units a model is sharded in, and the MMEngine
model wrapper that uses them (``FSDPStrategy``'s ``model_wrapper``).

FSDP flattens the parameters of each unit into one ``FlatParameter``, which
has one ``requires_grad``. A STAN model mixes frozen CLIP parts
(``frozen_stages``: the stem, the first blocks) with trainable ones (the
later blocks, the branch, ``proj``, the head), so the units must never
straddle the two:

- every transformer block (open_clip ``ResidualAttentionBlock``: CLIP's
  video and text blocks) and every STAN layer (temporal + spatial module)
  is its own unit;
- every other module whose parameters are all frozen and that is not inside
  such a block (the stem: ``conv1``, ``ln_pre``) is its own unit;
- frozen parameters held directly by a module that stays in the root unit
  (``class_embedding``, ``positional_embedding``: a few hundred thousand
  numbers) are left out of FSDP (``ignored_states``): whole on every rank,
  never reduced, saved in the full state dict like any other;
- the rest (``ln_post``, ``proj``, the temporal embedding, the head, the
  text tower's embeddings) is the trainable root unit.

With these units ``use_orig_params=True`` (needed for the parameter-wise
learning rates and weight decay of ``StanOptimWrapperConstructor``, which
match parameter names) costs no gradient memory on frozen weights: a unit
is either wholly frozen (no gradient) or wholly trainable.

:class:`StanFSDPStrategy` (``strategy = dict(type='StanFSDPStrategy')``,
``configs/_base_/strategies/fsdp.py``) is MMEngine's ``FSDPStrategy`` with
three behaviours of ours: gradient clipping by the norm of the whole
gradient, optimizer states loaded on resume, and processes without CUDA.
"""
import dataclasses
from typing import Iterable, List, Optional, Set, Union

import torch
import torch.nn as nn
from mmengine._strategy import FSDPStrategy
from mmengine.model.wrappers import MMFullyShardedDataParallel
from mmengine.optim import OptimWrapperDict
from mmengine.registry import MODEL_WRAPPERS, STRATEGIES
from open_clip.transformer import ResidualAttentionBlock

from ..models.stan_branch import STANLayer
from .runner import init_cpu_process_group

#: Module types that are always units of their own.
BLOCK_TYPES = (ResidualAttentionBlock, STANLayer)


def _is_frozen(module: nn.Module) -> bool:
    params = list(module.parameters())
    return bool(params) and not any(p.requires_grad for p in params)


def fsdp_units(model: nn.Module) -> List[nn.Module]:
    """The modules of ``model`` that become FSDP units (see the module doc):
    blocks and STAN layers, then the largest wholly frozen modules outside
    them (not ``model`` itself)."""
    units: List[nn.Module] = []

    def visit(module: nn.Module) -> None:
        for child in module.children():
            if isinstance(child, BLOCK_TYPES) or _is_frozen(child):
                units.append(child)
            else:
                visit(child)

    visit(model)
    return units


def unit_param_ids(units: Iterable[nn.Module]) -> Set[int]:
    """``id`` of every parameter inside ``units``."""
    return {id(p) for unit in units for p in unit.parameters()}


def frozen_root_params(model: nn.Module,
                       units: Iterable[nn.Module]) -> List[nn.Parameter]:
    """Frozen parameters outside every unit: FSDP leaves them out."""
    inside = unit_param_ids(units)
    return [p for p in model.parameters()
            if id(p) not in inside and not p.requires_grad]


def _to_fp32(module, args, output):
    if isinstance(output, torch.Tensor) and output.is_floating_point():
        return output.float()
    return output


def fp32_output_modules(model: nn.Module) -> List[nn.Module]:
    """The modules whose outputs leave the low-precision compute under FSDP
    mixed precision: a recognizer's ``cls_head`` (its scores go to the loss
    and to MMAction2's metrics, which convert to numpy), a retriever's
    ``backbone`` and ``text_encoder`` (their embeddings go to the head's
    similarities, temperature and loss)."""
    head = getattr(model, 'cls_head', None)
    if head is not None:
        return [head]
    return [m for m in (getattr(model, 'backbone', None),
                        getattr(model, 'text_encoder', None))
            if m is not None and getattr(model, 'head', None) is not None]


def _as_device(device_id) -> Optional[torch.device]:
    """FSDP's ``device_id`` (an int: that CUDA device) as a device."""
    if device_id is None or isinstance(device_id, torch.device):
        return device_id
    if isinstance(device_id, int):
        return torch.device('cuda', device_id)
    return torch.device(device_id)


def _unit_policy(unit_ids: Set[int]):

    def policy(module: nn.Module, recurse: bool,
               nonwrapped_numel: int = 0) -> bool:
        return recurse or id(module) in unit_ids

    return policy


def _require_process_group(process_group) -> None:
    """FSDP shards over a process group; without one (MMAction2's
    ``tools/test.py`` or ``train.py`` on a sharded config, no launcher)
    torch fails deep inside with "Default process group has not been
    initialized". Say what to run instead."""
    import torch.distributed as dist
    if process_group is None and not (dist.is_available()
                                      and dist.is_initialized()):
        raise RuntimeError(
            'FSDP needs distributed processes, and none were started: '
            'launch the sharded config with `tools/dist_train.sh CONFIG N` '
            'or `tools/dist_test.sh CONFIG CHECKPOINT N` (MMAction2\'s or '
            'ours; N may be 1), or test it in one process with our '
            '`tools/test.py` (`stan-mmaction test`), which tests sharded '
            'configs with the plain runner')


@MODEL_WRAPPERS.register_module()
class StanFullyShardedDataParallel(MMFullyShardedDataParallel):
    """``MMFullyShardedDataParallel`` with STAN's units (:func:`fsdp_units`),
    frozen root parameters left out of FSDP, and a CPU default.

    Args:
        module (nn.Module): the model.
        device_id (int | str | torch.device, optional): where the shards
            live. MMEngine's ``FSDPStrategy`` passes the local rank; on a
            machine without CUDA that would name ``cuda:<rank>``, so it
            becomes the CPU (FSDP needs it named: it refuses CPU modules
            without a device; gloo reduces).
        auto_wrap_policy: ``None`` (default) for STAN's units; anything
            else is passed on to ``MMFullyShardedDataParallel`` unchanged
            (and no parameters are left out).
        **kwargs: ``MMFullyShardedDataParallel``'s arguments. With
            ``mixed_precision``, the outputs of
            :func:`fp32_output_modules` are cast to fp32 (losses and
            metrics in full precision). ``use_orig_params`` defaults to
            True as there.
    """

    def __init__(self,
                 module: nn.Module,
                 device_id: Union[int, str, torch.device, None] = None,
                 auto_wrap_policy=None,
                 **kwargs):
        device = _as_device(device_id)
        if device is not None and device.type == 'cuda' and \
                not torch.cuda.is_available():
            device_id = device = torch.device('cpu')
        ignored = []
        if auto_wrap_policy is None:
            units = fsdp_units(module)
            auto_wrap_policy = _unit_policy({id(u) for u in units})
            ignored = frozen_root_params(module, units)
            if ignored and ('ignored_parameters' in kwargs
                            or 'ignored_modules' in kwargs):
                raise ValueError(
                    'StanFullyShardedDataParallel chooses the ignored '
                    'parameters itself; pass auto_wrap_policy to choose '
                    'them yourself')
        _require_process_group(kwargs.get('process_group'))
        # Checked, nothing changed so far; now the model is prepared.
        if ignored:
            kwargs['ignored_states'] = ignored + list(
                kwargs.pop('ignored_states', None) or [])
            if device is not None and device.type == 'cuda':
                for param in ignored:
                    param.data = param.data.to(device)
        if kwargs.get('mixed_precision') is not None:
            for part in fp32_output_modules(module):
                part.register_forward_hook(_to_fp32)
        super().__init__(module, device_id=device_id,
                         auto_wrap_policy=auto_wrap_policy, **kwargs)

    @staticmethod
    def set_state_dict_type(module, state_dict_type, state_dict_config=None,
                            optim_state_dict_config=None):
        """FSDP's ``set_state_dict_type`` (what ``FSDPStrategy`` calls with
        its ``state_dict_cfg``), without ``offload_to_cpu`` when the model
        computes on the CPU: there the offload copies nothing, and torch
        relies on it copying (torch 2.9: a segmentation fault while saving
        a full state dict; torch 2.14: every optimizer state of a unit
        saved as the last one gathered, see compat repair 9)."""
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        def no_offload(config):
            if getattr(config, 'offload_to_cpu', False):
                return dataclasses.replace(config, offload_to_cpu=False)
            return config

        if getattr(module, 'compute_device', None) is not None and \
                module.compute_device.type == 'cpu':
            state_dict_config = no_offload(state_dict_config)
            optim_state_dict_config = no_offload(optim_state_dict_config)
        return FSDP.set_state_dict_type(module, state_dict_type,
                                        state_dict_config,
                                        optim_state_dict_config)


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
    from torch.distributed.fsdp import FullyShardedDataParallel
    if not isinstance(model, FullyShardedDataParallel):
        return
    wrappers = optim_wrapper.values() if isinstance(
        optim_wrapper, OptimWrapperDict) else [optim_wrapper]
    for wrapper in wrappers:
        if getattr(wrapper, 'clip_grad_kwargs', None) and getattr(
                wrapper, 'clip_func', None) is torch.nn.utils.clip_grad_norm_:
            wrapper.clip_func = _fsdp_clip_norm(model)


@STRATEGIES.register_module()
class StanFSDPStrategy(FSDPStrategy):
    """MMEngine's ``FSDPStrategy`` with:

    - **clipping by the norm of the whole gradient**: ``OptimWrapper``'s
      ``clip_grad=dict(max_norm=...)`` calls ``torch.nn.utils.
      clip_grad_norm_`` over the parameters this rank holds, under FSDP
      its shards, so each rank would clip by the norm of its shard alone (a
      different factor per rank). Here norm clipping goes through FSDP's
      own ``clip_grad_norm_`` (reduced over the ranks).
    - **optimizer states loaded on resume**: MMEngine 0.10.7 passes
      ``optim_state_dict_to_load`` its arguments in torch < 2.1's order
      (``(state_dict, model, optim)``; torch >= 2.1 takes ``(model, optim,
      optim_state_dict)``), so an FSDP run cannot resume; here they are
      passed by name.
    - **processes without CUDA**: the ``pytorch`` launcher's group with gloo
      (:func:`~.runner.init_cpu_process_group`); the shards then live on
      the CPU (:class:`StanFullyShardedDataParallel`).

    Arguments as ``FSDPStrategy``.
    """

    def _setup_distributed(self, launcher='pytorch', backend='nccl',
                           **kwargs):
        if not init_cpu_process_group(launcher,
                                      dict(kwargs, backend=backend)):
            super()._setup_distributed(launcher, backend, **kwargs)

    def build_optim_wrapper(self, optim_wrapper, model=None):
        wrapper = super().build_optim_wrapper(optim_wrapper, model)
        clip_grad_through_fsdp(wrapper, model)
        return wrapper

    def load_optim_state_dict(self, state_dict: dict) -> None:
        """The saved optimizer state (full or local, as the strategy saved
        it) converted for this rank's optimizer, then loaded."""
        from torch.distributed.fsdp import FullyShardedDataParallel
        optim_state_dict = FullyShardedDataParallel.optim_state_dict_to_load(
            model=self.model, optim=self.optim_wrapper.optimizer,
            optim_state_dict=state_dict)
        self.optim_wrapper.load_state_dict(optim_state_dict)


def flat_param_report(model: nn.Module) -> List[dict]:
    """One entry per FSDP unit of a wrapped model: its name, number of
    parameters and the ``requires_grad`` values of the original parameters
    it holds (a set: ``{True}``, ``{False}``, or both when mixed)."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    report = []
    for name, unit in model.named_modules():
        if not isinstance(unit, FSDP):
            continue
        handle = getattr(unit, '_handle', None)
        flat: Optional[nn.Parameter] = getattr(handle, 'flat_param', None)
        if flat is None:
            continue
        params = list(getattr(flat, '_params', None) or [])
        report.append(dict(
            name=name or '(root)',
            numel=int(sum(n for n in flat._numels)),
            requires_grad={bool(p.requires_grad) for p in params}
            or {bool(flat.requires_grad)}))
    return report
