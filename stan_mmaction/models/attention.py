"""Multi-head self-attention on fused QKV weights, by the fastest path.

Two paths compute ``softmax(q k^T / sqrt(d)) v`` per head:

- ``'sdpa'``: ``F.scaled_dot_product_attention`` (PyTorch picks its
  kernel: flash, memory-efficient or cuDNN on CUDA, its flash kernel on
  CPU);
- ``'matmul'``: two batched matmuls around a softmax (HuggingFace's
  "eager" attention), which on CPU reach the GEMM rate where the CPU flash
  kernel does not (bf16).

``'auto'`` (the default of every attention module) picks, per device type,
dtype and site (CLIP's blocks and the branch's spatial blocks: sequences of
``1 + P`` tokens; the temporal module: ``T`` tokens over ``B * P``
sequences), the path measured fastest at STAN's shapes:
``AUTO_PATHS``, from ``tools/analysis_tools/benchmark_attention.py``
(docs/performance.md, "Attention paths"). Both paths give the same outputs
within the dtype's rounding (``tests/test_fused_ops.py``).
"""
from typing import Optional

import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock

from ..utils.system import cpu_has_native_bf16
from .activations import use_fused_mlp

ATTENTION_PATHS = ('sdpa', 'matmul')
#: Sites of attention in the model: ``'frame'`` (CLIP's blocks and the
#: branch's spatial blocks, ``1 + P`` tokens) and ``'time'`` (the temporal
#: module, ``T`` tokens).
ATTENTION_SITES = ('frame', 'time')
#: The device kind of a CPU with native bf16 (AVX512-BF16 or AMX); other
#: CPUs are ``'cpu'``, GPUs their device type.
NATIVE_BF16_CPU = 'cpu-native-bf16'
_CPU_KIND = NATIVE_BF16_CPU if cpu_has_native_bf16() else 'cpu'
#: What ``'auto'`` picks: ``(device kind, dtype, site, backward) -> path``
#: (``backward``: the inputs need gradients); anything not listed runs
#: ``'sdpa'``. Measured at STAN-attn B/16's shapes (8 frames, batch 2) with
#: ``tools/analysis_tools/benchmark_attention.py`` (docs/performance.md,
#: "Attention paths"): on a CPU with native bf16, the CPU flash kernel's
#: bf16 backward runs at a fraction of the GEMM rate, and its forward over
#: 8-token sequences loses to two batched GEMMs; in fp32, and on CPUs
#: without native bf16 (bf16 GEMMs emulated), SDPA wins everywhere.
AUTO_PATHS = {
    (NATIVE_BF16_CPU, torch.bfloat16, 'time', False): 'matmul',
    (NATIVE_BF16_CPU, torch.bfloat16, 'frame', True): 'matmul',
    (NATIVE_BF16_CPU, torch.bfloat16, 'time', True): 'matmul',
}


def device_kind(device_type: str) -> str:
    """The key of :data:`AUTO_PATHS` for a device type."""
    return _CPU_KIND if device_type == 'cpu' else device_type


def check_attention_path(path: str) -> str:
    """``path`` if it names a path (``'auto'``, ``'sdpa'``, ``'matmul'``),
    else ValueError."""
    if path != 'auto' and path not in ATTENTION_PATHS:
        raise ValueError(f'attention path {path!r}; choose one of '
                         f"{('auto',) + ATTENTION_PATHS}")
    return path


def resolve_attention(path: str, device_type: str, dtype: torch.dtype,
                      site: str, backward: bool = False) -> str:
    """The path ``path`` names (``'auto'``: from :data:`AUTO_PATHS`)."""
    if check_attention_path(path) == 'auto':
        return AUTO_PATHS.get((device_kind(device_type), dtype, site,
                               backward), 'sdpa')
    return path


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
           path: str) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d)) v`` on ``(N, H, L, d)`` by ``path``
    (``'sdpa'`` or ``'matmul'``)."""
    if path == 'sdpa':
        return F.scaled_dot_product_attention(q, k, v)
    scores = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-2, -1))
    return torch.matmul(scores.softmax(dim=-1), v)


def set_attention_path(module: torch.nn.Module, path: str) -> None:
    """Set the attention path (``'auto'``, ``'sdpa'``, ``'matmul'``) of
    every attention module in ``module``."""
    check_attention_path(path)
    for m in module.modules():
        if hasattr(m, 'attention_path'):
            m.attention_path = path


def fused_self_attention(x: torch.Tensor, in_proj_weight: torch.Tensor,
                         in_proj_bias: torch.Tensor,
                         out_proj: torch.nn.Linear,
                         num_heads: int, path: str = 'auto',
                         site: str = 'frame',
                         num_queries: Optional[int] = None) -> torch.Tensor:
    """Self-attention over the second-to-last axis of ``x``.

    Same arithmetic as ``nn.MultiheadAttention`` (fused ``in_proj`` of shape
    ``(3D, D)``, then ``out_proj``), but any number of leading batch axes and
    ``F.scaled_dot_product_attention`` for the attention itself.

    Args:
        x (Tensor): ``(..., L, D)``.
        in_proj_weight (Tensor): ``(3D, D)``.
        in_proj_bias (Tensor): ``(3D,)``.
        out_proj (nn.Linear): ``D -> D``.
        num_heads (int): number of heads; ``D % num_heads == 0``.
        path (str): ``'auto'``, ``'sdpa'`` or ``'matmul'``.
        site (str): ``'frame'`` or ``'time'`` (for ``'auto'``).
        num_queries (int, optional): only the first ``num_queries`` tokens'
            outputs are wanted: they alone are projected to queries and
            through ``out_proj`` (all ``L`` tokens still give keys and
            values). Default: all.

    Returns:
        Tensor: ``(..., L, D)``, or ``(..., num_queries, D)``.
    """
    *batch, length, dim = x.shape
    head_dim = dim // num_heads
    # F.linear writes a fresh contiguous (..., L, 3D) tensor even from a
    # strided view of x (the temporal module's time-major regrouping), so
    # folding the leading axes into one is free. The paths then get 4-D
    # (N, H, L, hd) views: on CPU only 4-D inputs reach SDPA's fused
    # (flash) kernel; 5-D ones fell back to the unfused math path (25-35%
    # slower for the branch's shapes, measured with ViT-B sizes).
    if num_queries is None:
        num_queries = length
        qkv = F.linear(x, in_proj_weight, in_proj_bias)
        qkv = qkv.reshape(-1, length, 3, num_heads, head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    else:  # queries of the first tokens only; keys and values of all
        q = F.linear(x[..., :num_queries, :], in_proj_weight[:dim],
                     in_proj_bias[:dim])
        q = q.reshape(-1, num_queries, num_heads, head_dim).transpose(1, 2)
        kv = F.linear(x, in_proj_weight[dim:], in_proj_bias[dim:])
        kv = kv.reshape(-1, length, 2, num_heads, head_dim)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)
    backward = q.requires_grad and torch.is_grad_enabled()
    out = attend(q, k, v, resolve_attention(path, q.device.type, q.dtype,
                                            site, backward))
    out = out.transpose(1, 2).reshape(*batch, num_queries, dim)
    return out_proj(out)


def clip_block_forward(block: torch.nn.Module,
                       x: torch.Tensor) -> torch.Tensor:
    """Forward of an open_clip ``ResidualAttentionBlock`` through SDPA.

    The same arithmetic as ``block(x)`` (pre-LN attention and MLP residuals,
    LayerScale where present) on ``(..., L, D)`` tokens, without
    ``nn.MultiheadAttention``'s call path, so every run (training or
    inference) reaches ``F.scaled_dot_product_attention``.
    """
    attn = block.attn
    x = x + block.ls_1(fused_self_attention(
        block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias, attn.out_proj,
        attn.num_heads, getattr(block, 'attention_path', 'auto')))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


class SDPAResidualAttentionBlock(ResidualAttentionBlock):
    """open_clip's ``ResidualAttentionBlock`` whose self-attention call
    (``block(x)``, no mask) runs :func:`clip_block_forward`.

    The same parameters and names (a block's class is swapped in place by
    :func:`use_sdpa_forward`, nothing is copied). Calling the block itself,
    rather than a function on its submodules, keeps module hooks in the
    path: FSDP gathers a wrapped block's parameters in its ``forward``.
    Calls with ``k_x``, ``v_x`` or a mask go to open_clip's forward.
    """

    def forward(self, q_x: torch.Tensor,
                k_x: Optional[torch.Tensor] = None,
                v_x: Optional[torch.Tensor] = None,
                attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        if k_x is None and v_x is None and attn_mask is None:
            return clip_block_forward(self, q_x)
        return super().forward(q_x, k_x, v_x, attn_mask)


def use_sdpa_forward(block: torch.nn.Module,
                     path: str = 'auto') -> torch.nn.Module:
    """Make an open_clip ``ResidualAttentionBlock`` an
    :class:`SDPAResidualAttentionBlock` in place, its attention by
    ``path`` and its QuickGELU MLP fused (``activations.use_fused_mlp``);
    returns the block."""
    if type(block) is ResidualAttentionBlock:
        block.__class__ = SDPAResidualAttentionBlock
    elif not isinstance(block, SDPAResidualAttentionBlock):
        raise TypeError('expected an open_clip ResidualAttentionBlock, got '
                        f'{type(block).__name__}')
    block.attention_path = check_attention_path(path)
    use_fused_mlp(block.mlp)
    return block
