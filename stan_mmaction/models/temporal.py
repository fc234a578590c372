"""Temporal modules of the STAN branch (registered in ``MODELS``).

Each takes the branch's patch tokens ``(B, T, P, D)`` plus the grid size and
returns tokens of the same shape; the branch CLS token bypasses them. Both
end in a zero-initialised ``temporal_fc``, so each starts as the identity.
A new variant is a class with the same ``forward`` signature registered in
``mmaction.registry.MODELS`` and named in the backbone's ``temporal``.
"""
import torch
import torch.nn as nn
from mmaction.registry import MODELS
from mmcv.cnn.bricks import DropPath

from .attention import fused_self_attention


def _add_zero_init_output(module: nn.Module, embed_dims: int,
                          drop_path: float) -> None:
    """Give a temporal module its DropPath and the zero-initialised
    ``temporal_fc`` (D x D) on its residual branch, so it starts as the
    identity."""
    module.drop_path = DropPath(drop_path) if drop_path > 0 else \
        nn.Identity()
    module.temporal_fc = nn.Linear(embed_dims, embed_dims)
    nn.init.zeros_(module.temporal_fc.weight)
    nn.init.zeros_(module.temporal_fc.bias)


@MODELS.register_module()
class STANTemporalAttention(nn.Module):
    """Self-attention over time at each spatial location (STAN's default).

    pre-LN -> MHSA over the T tokens of one location -> DropPath ->
    zero-init ``temporal_fc`` -> residual. No MLP.

    Args:
        embed_dims (int): token width D.
        num_heads (int): attention heads.
        drop_path (float): DropPath rate. Defaults to 0.
    """

    def __init__(self, embed_dims: int, num_heads: int,
                 drop_path: float = 0.0):
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims={embed_dims} is not divisible by '
                             f'num_heads={num_heads}')
        self.num_heads = num_heads
        self.norm = nn.LayerNorm(embed_dims)
        self.attn = nn.MultiheadAttention(embed_dims, num_heads,
                                          batch_first=True)
        self.attention_path = 'auto'  # see models/attention.py
        _add_zero_init_output(self, embed_dims, drop_path)

    def forward(self, patches: torch.Tensor, grid: tuple) -> torch.Tensor:
        # (B, T, P, D) -> (B, P, T, D): a strided view; the QKV matmul reads
        # it directly, so time-major sequences cost no extra copy.
        x = self.norm(patches).transpose(1, 2)
        x = fused_self_attention(x, self.attn.in_proj_weight,
                                 self.attn.in_proj_bias, self.attn.out_proj,
                                 self.num_heads, self.attention_path, 'time')
        x = self.temporal_fc(self.drop_path(x.transpose(1, 2)))
        return patches + x


@MODELS.register_module()
class STANTemporalConv(nn.Module):
    """3D convolution over (time, height, width) of the patch grid (the
    paper's conv variant).

    tokens -> ``(B, D, T, H', W')`` -> Conv3d(D, D, 3x3x3, padding 1) ->
    DropPath -> zero-init ``temporal_fc`` -> residual.

    Args:
        embed_dims (int): token width D.
        num_heads (int): unused; accepted so variants share a signature.
        drop_path (float): DropPath rate. Defaults to 0.
        kernel_size (int): cubic kernel size (odd). Defaults to 3.
    """

    def __init__(self, embed_dims: int, num_heads: int = 1,
                 drop_path: float = 0.0, kernel_size: int = 3):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f'kernel_size must be odd, got {kernel_size}')
        self.conv = nn.Conv3d(embed_dims, embed_dims, kernel_size,
                              padding=kernel_size // 2)
        _add_zero_init_output(self, embed_dims, drop_path)

    def forward(self, patches: torch.Tensor, grid: tuple) -> torch.Tensor:
        b, t, p, d = patches.shape
        x = patches.permute(0, 3, 1, 2).reshape(b, d, t, *grid)
        x = self.conv(x).flatten(3).permute(0, 2, 3, 1)  # (B, T, P, D)
        return patches + self.temporal_fc(self.drop_path(x))
