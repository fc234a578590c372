"""FLOP counting that sees attention on every device.

``torch.utils.flop_counter.FlopCounterMode`` knows the CUDA kernels of
``F.scaled_dot_product_attention`` but not the CPU one
(``aten._scaled_dot_product_flash_attention_for_cpu``) nor the inference
fast path of ``nn.MultiheadAttention`` (``aten._native_multi_head_attention``),
which it silently counts as zero; jit-trace counters (MMAction2's get_flops
via mmengine) skip SDPA entirely. :func:`flop_counter` adds those kernels.
"""
import math
from typing import Callable, Dict, Tuple

import torch
from torch.utils import flop_counter as _fc


def _sdpa_cpu_forward(query_shape, key_shape, value_shape, *args,
                      out_shape=None, **kwargs) -> int:
    return _fc.sdpa_flop_count(query_shape, key_shape, value_shape)


def _sdpa_cpu_backward(grad_out_shape, query_shape, key_shape, value_shape,
                       *args, out_shape=None, **kwargs) -> int:
    return _fc.sdpa_backward_flop_count(grad_out_shape, query_shape,
                                        key_shape, value_shape)


def _native_mha(query_shape, key_shape, value_shape, embed_dim, num_head,
                *args, out_shape=None, **kwargs) -> int:
    """``nn.MultiheadAttention``'s inference fast path: one fused op
    (projections + attention + output projection)."""
    *batch, len_q, dim = query_shape
    len_k = key_shape[-2]
    b = math.prod(batch)
    projections = 2 * b * dim * dim * (2 * len_q + 2 * len_k)  # q, out; k, v
    attention = 4 * b * len_q * len_k * dim  # QK^T and AV
    return projections + attention


def _cpu_sdpa_mapping() -> dict:
    ops = torch.ops.aten
    mapping = {ops._native_multi_head_attention: _native_mha}
    if hasattr(ops, '_scaled_dot_product_flash_attention_for_cpu'):
        mapping[ops._scaled_dot_product_flash_attention_for_cpu] = \
            _sdpa_cpu_forward
    if hasattr(ops, '_scaled_dot_product_flash_attention_for_cpu_backward'):
        mapping[ops._scaled_dot_product_flash_attention_for_cpu_backward] = \
            _sdpa_cpu_backward
    return mapping


def flop_counter(depth: int = 2) -> _fc.FlopCounterMode:
    """A ``FlopCounterMode`` (no display) that also counts CPU SDPA."""
    return _fc.FlopCounterMode(display=False, depth=depth,
                               custom_mapping=_cpu_sdpa_mapping())


def count_flops(fn: Callable, *inputs,
                depth: int = 3) -> Tuple[int, Dict[str, int]]:
    """Run ``fn(*inputs)`` once, without gradients, under the counter.

    FLOPs count one multiply-add as 2.

    Returns:
        tuple: total FLOPs and ``{module path: FLOPs}`` for modules fewer
        than ``depth`` levels deep (``'Global'`` is the total).
    """
    counter = flop_counter(depth)
    with torch.no_grad(), counter:
        fn(*inputs)
    per_module = {name: sum(ops.values())
                  for name, ops in counter.get_flop_counts().items()
                  if name == 'Global' or name.count('.') < depth}
    return counter.get_total_flops(), per_module
