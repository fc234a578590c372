"""CLIP's MLP with QuickGELU in one elementwise pass.

open_clip's ``QuickGELU`` is ``x * sigmoid(1.702 * x)``: three elementwise
kernels in eager mode (a multiply, a sigmoid, a multiply; ~14% of a bf16
CPU forward of STAN-attn B/16) and three more in its backward. Since
``x * sigmoid(a * x) = silu(a * x) / a``, the MLP
``c_proj(QuickGELU(c_fc(x)))`` is computed as

    h = a * (x W_fc^T + b_fc)          # addmm, alpha = beta = a
    y = silu(h) W_proj^T / a + b_proj  # SiLU (one fused kernel), then
                                       # addmm, alpha = 1 / a

The scalings ride on the GEMMs (their alpha/beta), so the activation is a
single SiLU pass (and a single ``silu_backward``, in an autograd function
that keeps only the pre-activation for the backward); the parameters and
their names are open_clip's, and the result equals ``mlp(x)`` up to
rounding, gradients included (``tests/test_fused_ops.py``).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from open_clip.transformer import QuickGELU

#: QuickGELU's constant: ``x * sigmoid(QUICK_GELU_ALPHA * x)``.
QUICK_GELU_ALPHA = 1.702


def _pre_activation(x, w1, b1):
    """``a * (x W1^T + b1)``: the scaling in the GEMM."""
    a = QUICK_GELU_ALPHA
    return torch.addmm(b1, x, w1.t(), beta=a, alpha=a)


def _output(s, w2, b2):
    """``s W2^T / a + b2``: the scaling in the GEMM."""
    return torch.addmm(b2, s, w2.t(), alpha=1 / QUICK_GELU_ALPHA)


class _QuickGELUMlpFunction(torch.autograd.Function):
    """``c_proj(QuickGELU(c_fc(x)))`` on ``(M, D)`` rows with its own
    backward: the scalings stay in the GEMMs (forward: addmm's alpha and
    beta; backward: in-place on each GEMM's fresh output), and only the
    pre-activation ``h`` is kept for the backward (the SiLU output is
    recomputed from it: one elementwise pass instead of a second (M, 4D)
    tensor held from forward to backward; autograd through the plain
    ops kept both, plus their scaled copies)."""

    @staticmethod
    def forward(ctx, x, w1, b1, w2, b2):
        h = _pre_activation(x, w1, b1)
        ctx.save_for_backward(x, w1, w2, h)
        return _output(F.silu(h), w2, b2)

    @staticmethod
    def backward(ctx, gy):
        x, w1, w2, h = ctx.saved_tensors
        a = QUICK_GELU_ALPHA
        need = ctx.needs_input_grad
        gx = gw1 = gb1 = gw2 = gb2 = None
        if need[3]:
            gw2 = torch.mm(gy.t(), F.silu(h)).mul_(1 / a)
        if need[4]:
            gb2 = gy.sum(0)
        if any(need[:3]):
            gh = torch.ops.aten.silu_backward(torch.mm(gy, w2).mul_(1 / a),
                                              h)
            if need[0]:
                gx = torch.mm(gh, w1).mul_(a)
            if need[1]:
                gw1 = torch.mm(gh.t(), x).mul_(a)
            if need[2]:
                gb1 = gh.sum(0).mul_(a)
        return gx, gw1, gb1, gw2, gb2


def _autocast_dtype(device_type: str):
    """The autocast dtype on ``device_type``, or None (autocast off, or a
    device type autocast does not know: ``meta``)."""
    try:
        if torch.is_autocast_enabled(device_type):
            return torch.get_autocast_dtype(device_type)
    except RuntimeError:
        pass
    return None


def quick_gelu_mlp(mlp: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``mlp(x)`` for open_clip's ``Sequential(c_fc, QuickGELU, c_proj)``
    with one SiLU pass (see the module docstring)."""
    fc, proj = mlp.c_fc, mlp.c_proj
    if fc.bias is None or proj.bias is None:
        return nn.Sequential.forward(mlp, x)
    flat = x.reshape(-1, x.shape[-1])
    tensors = (flat, fc.weight, fc.bias, proj.weight, proj.bias)
    dtype = _autocast_dtype(x.device.type)
    if dtype is not None:
        # as autocast runs F.linear: every operand in its dtype
        tensors = tuple(t.to(dtype) for t in tensors)
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        out = _QuickGELUMlpFunction.apply(*tensors)
    else:  # inference: SiLU in place on the fresh pre-activation
        x2, w1, b1, w2, b2 = tensors
        out = _output(F.silu(_pre_activation(x2, w1, b1), inplace=True),
                      w2, b2)
    return out.reshape(*x.shape[:-1], out.shape[-1])


class FusedQuickGELUMlp(nn.Sequential):
    """open_clip's MLP ``Sequential(c_fc, gelu, c_proj)`` whose forward is
    :func:`quick_gelu_mlp` (its class is swapped in place by
    :func:`use_fused_mlp`; same parameters, names and module hooks on the
    MLP itself; hooks on ``c_fc``/``gelu``/``c_proj`` are not called)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return quick_gelu_mlp(self, x)


def use_fused_mlp(mlp: nn.Module) -> nn.Module:
    """Make an open_clip MLP with QuickGELU a :class:`FusedQuickGELUMlp` in
    place; other MLPs (``nn.GELU``: models trained without QuickGELU) are
    left as they are. Returns ``mlp``."""
    if type(mlp) is nn.Sequential and isinstance(
            getattr(mlp, 'gelu', None), QuickGELU) and isinstance(
            getattr(mlp, 'c_fc', None), nn.Linear) and isinstance(
            getattr(mlp, 'c_proj', None), nn.Linear) and len(mlp) == 3:
        mlp.__class__ = FusedQuickGELUMlp
    return mlp
