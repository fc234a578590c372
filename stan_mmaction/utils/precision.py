"""Precision and compilation of a model for inference.

The fast low-precision path is the model *cast* to bf16 or fp16 (weights and
activations), not ``torch.autocast``: on CPU autocast re-casts the weights at
every op and ran 3.5x slower than fp32 for open_clip ViT-B/16, while the
cast model runs the GEMMs at the bf16 rate where the CPU has it (AVX512-BF16
or AMX) and had cosine 1.0000 to fp32 (``tools/analysis_tools/benchmark.py
--dtypes fp32 bf16``).

``auto`` picks bf16 on a GPU that supports it (fp16 on one that does not)
and on a CPU with native bf16, fp32 on other CPUs (where bf16 is emulated,
~100x slower than fp32). ``STAN_MMACTION_AUTO_DTYPE=fp32|bf16|fp16`` forces
that decision (e.g. to run on an AVX2 machine what ``auto`` does on an AMX
one, as the tests do); explicit ``--dtype`` values are not affected.
"""
import os
import time
import weakref
from typing import Optional

import torch
from mmengine.logging import MMLogger

from .system import cpu_has_native_bf16

DTYPE_CHOICES = ('auto', 'fp32', 'bf16', 'fp16')
TORCH_DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16,
                'fp16': torch.float16}
_CPU_NATIVE_BF16 = None
#: Environment variable that forces what ``auto`` resolves to.
AUTO_DTYPE_ENV = 'STAN_MMACTION_AUTO_DTYPE'


def native_bf16_cpu() -> bool:
    """Whether this CPU has native bf16 (read from /proc/cpuinfo once)."""
    global _CPU_NATIVE_BF16
    if _CPU_NATIVE_BF16 is None:
        _CPU_NATIVE_BF16 = cpu_has_native_bf16()
    return _CPU_NATIVE_BF16


def _is_cuda(device) -> bool:
    return str(device).startswith('cuda')


def resolve_dtype(name: str, device='cpu',
                  cpuinfo: Optional[str] = None) -> str:
    """``auto|fp32|bf16|fp16`` -> the dtype a model on ``device`` runs in.

    Args:
        name (str): the requested dtype.
        device: where the model runs.
        cpuinfo (str, optional): ``/proc/cpuinfo`` text to decide ``auto``
            from (default: this machine's, read once).

    Raises:
        ValueError: an unknown name, fp16 on a CPU, or a bad
            ``STAN_MMACTION_AUTO_DTYPE``.
    """
    if name not in DTYPE_CHOICES:
        raise ValueError(f'dtype {name!r}: use one of '
                         f'{", ".join(DTYPE_CHOICES)}')
    cuda = _is_cuda(device)
    forced = os.environ.get(AUTO_DTYPE_ENV, '')
    if name == 'auto' and forced:
        if forced not in TORCH_DTYPES:
            raise ValueError(f'{AUTO_DTYPE_ENV}={forced!r}: use one of '
                             f'{", ".join(TORCH_DTYPES)} (or unset it)')
        if forced == 'fp16' and not cuda:
            raise ValueError(f'{AUTO_DTYPE_ENV}=fp16: fp16 is for GPUs; on '
                             'CPU use bf16 or fp32')
        return forced
    if name == 'auto':
        if cuda:
            return 'bf16' if torch.cuda.is_bf16_supported() else 'fp16'
        native = native_bf16_cpu() if cpuinfo is None else \
            cpu_has_native_bf16(cpuinfo)
        return 'bf16' if native else 'fp32'
    if name == 'fp16' and not cuda:
        raise ValueError('fp16 is for GPUs; on CPU use bf16 (fast where the '
                         'CPU has AVX512-BF16 or AMX) or fp32')
    if name == 'bf16' and not cuda and cpuinfo is None and \
            not native_bf16_cpu():
        MMLogger.get_current_instance().warning(
            'bf16 is not native on this CPU (no AVX512-BF16 or AMX): it is '
            'emulated and runs much slower than fp32')
    return name


def _map_floats(obj, fn):
    """``fn`` applied to every floating tensor in nested tuples, lists,
    dicts and MMEngine data elements (in place for data elements)."""
    from mmengine.structures import BaseDataElement
    if isinstance(obj, torch.Tensor):
        return fn(obj) if obj.is_floating_point() else obj
    if isinstance(obj, BaseDataElement):
        for key, value in list(obj.items()):
            new = _map_floats(value, fn)
            if new is not value and key not in obj.metainfo_keys():
                setattr(obj, key, new)
        return obj
    if isinstance(obj, list):
        return [_map_floats(o, fn) for o in obj]
    if isinstance(obj, tuple):
        out = [_map_floats(o, fn) for o in obj]
        return type(obj)(*out) if hasattr(obj, '_fields') else tuple(out)
    if isinstance(obj, dict):
        return {k: _map_floats(v, fn) for k, v in obj.items()}
    return obj


def model_dtype(model) -> torch.dtype:
    """The dtype of the model's weights (its data preprocessor, which stays
    in fp32, aside)."""
    for name, param in model.named_parameters():
        if not name.startswith('data_preprocessor.') and \
                param.is_floating_point():
            return param.dtype
    return torch.float32


def cast_model(model, dtype: str):
    """Cast ``model`` (in place) to ``dtype`` (``fp32``, ``bf16``, ``fp16``;
    resolve ``auto`` first with :func:`resolve_dtype`).

    The data preprocessor stays in fp32 (normalisation of uint8 pixels);
    calls of the model itself (``model(inputs, data_samples, mode=...)``,
    i.e. MMEngine's ``test_step``) get their floating inputs cast to
    ``dtype`` and their floating outputs (scores, embeddings in data
    samples) back to fp32, so metrics and files see fp32. Direct calls of
    the towers (``encode_video``, ``backbone``) take inputs in ``dtype``
    (:func:`model_dtype`). Nothing is stored on the model: the dtype is
    its weights' (:func:`model_dtype`), the hooks' handles are kept here.
    """
    if dtype not in TORCH_DTYPES:
        raise ValueError(f'cast_model: dtype {dtype!r}, use fp32, bf16 or '
                         'fp16 (resolve "auto" with resolve_dtype)')
    handles = _CAST_HOOKS.pop(model, None)
    if dtype == 'fp32':
        for handle in handles or ():
            handle.remove()
        return model.float()
    model.to(TORCH_DTYPES[dtype])
    pre = getattr(model, 'data_preprocessor', None)
    if pre is not None:
        pre.float()
    _CAST_HOOKS[model] = handles or (
        model.register_forward_pre_hook(_cast_inputs, with_kwargs=True),
        model.register_forward_hook(_outputs_to_fp32))
    return model


#: The input/output hooks :func:`cast_model` registered, by model.
_CAST_HOOKS: 'weakref.WeakKeyDictionary' = weakref.WeakKeyDictionary()


def _cast_inputs(module, args, kwargs):
    target = model_dtype(module)
    cast = (lambda t: t.to(target))  # noqa: E731
    return _map_floats(args, cast), _map_floats(kwargs, cast)


def _outputs_to_fp32(module, args, output):
    return _map_floats(output, lambda t: t.float() if t.dtype in (
        torch.bfloat16, torch.float16) else t)


def compile_model(model):
    """``torch.compile`` the video tower (``model.backbone``) in place; the
    state dict keeps its keys. Compilation happens at the first call of each
    input shape: run :func:`warm_up` before timing."""
    backbone = getattr(model, 'backbone', None)
    if backbone is None:
        raise ValueError(f'{type(model).__name__} has no backbone to '
                         'compile')
    backbone.compile()
    return model


@torch.no_grad()
def warm_up(forward, shape, dtype: torch.dtype, device='cpu') -> float:
    """Seconds of one call of ``forward`` on zeros of ``shape`` (the
    compilation of a compiled model happens here)."""
    x = torch.zeros(*shape, dtype=dtype, device=device)
    start = time.perf_counter()
    forward(x)
    if _is_cuda(device):
        torch.cuda.synchronize()
    return time.perf_counter() - start
