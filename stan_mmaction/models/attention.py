"""Multi-head self-attention on fused QKV weights through SDPA."""
import torch
import torch.nn.functional as F


def fused_self_attention(x: torch.Tensor, in_proj_weight: torch.Tensor,
                         in_proj_bias: torch.Tensor,
                         out_proj: torch.nn.Linear,
                         num_heads: int) -> torch.Tensor:
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

    Returns:
        Tensor: ``(..., L, D)``.
    """
    *batch, length, dim = x.shape
    head_dim = dim // num_heads
    qkv = F.linear(x, in_proj_weight, in_proj_bias)
    # (..., L, 3, H, hd) -> 3 x (..., H, L, hd): views, no copy.
    qkv = qkv.unflatten(-1, (3, num_heads, head_dim)).movedim(-3, 0)
    q, k, v = qkv.unbind(0)
    out = F.scaled_dot_product_attention(
        q.transpose(-3, -2), k.transpose(-3, -2), v.transpose(-3, -2))
    out = out.transpose(-3, -2).flatten(-2)
    return out_proj(out)


def clip_block_forward(block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Forward of an open_clip ``ResidualAttentionBlock`` through SDPA.

    The same arithmetic as ``block(x)`` (pre-LN attention and MLP residuals,
    LayerScale where present) on ``(..., L, D)`` tokens, without
    ``nn.MultiheadAttention``'s call path, so every run (training or
    inference) reaches ``F.scaled_dot_product_attention``.
    """
    attn = block.attn
    x = x + block.ls_1(fused_self_attention(block.ln_1(x), attn.in_proj_weight,
                                            attn.in_proj_bias, attn.out_proj,
                                            attn.num_heads))
    return x + block.ls_2(block.mlp(block.ln_2(x)))
