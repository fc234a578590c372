"""The STAN branch: K layers of (temporal module, spatial module) fed from
CLIP's last K layers. See docs/architecture.md, "From a video file to an
embedding", step 4.

Internally the branch keeps its tokens as a CLS tensor ``(B, D)`` and patch
tokens ``(B, T, P, D)`` (the paper's "one CLS, then P*T patch tokens"), so
regrouping for time (per location) and space (per frame) needs no
concatenation of the whole sequence.
"""
import copy
from typing import List, Sequence, Union

import torch
import torch.nn as nn
from mmaction.registry import MODELS
from mmcv.cnn.bricks import DropPath
from torch.utils.checkpoint import checkpoint

from .activations import use_fused_mlp
from .attention import fused_self_attention

TEMPORAL_TYPES = {'attn': 'STANTemporalAttention', 'conv': 'STANTemporalConv'}


class STANSpatialBlock(nn.Module):
    """A CLIP residual block run per frame on [branch CLS, frame patches].

    Holds deep copies of the CLIP block's ``ln_1``, ``attn``, ``ls_1``,
    ``ln_2``, ``mlp``, ``ls_2`` (open_clip names), so it starts as an exact
    copy of that layer. Attention runs over each frame's ``1 + P`` tokens with
    the branch CLS copied to every frame; the T CLS outputs of attention are
    averaged into one before the residual. The MLP runs on all tokens.

    With ``cls_only=True`` (the branch's last layer, whose patch tokens
    nothing reads) only the CLS is computed: the patches give keys and
    values, but no queries, no attention outputs, no MLP; the CLS is the
    same as with all tokens. It returns ``(cls, None)``.

    Args:
        clip_block (nn.Module): an open_clip ``ResidualAttentionBlock``.
        drop_path (float): DropPath rate of both residuals.
    """

    def __init__(self, clip_block: nn.Module, drop_path: float = 0.0):
        super().__init__()
        for name in ('ln_1', 'attn', 'ls_1', 'ln_2', 'mlp', 'ls_2'):
            setattr(self, name, copy.deepcopy(getattr(clip_block, name)))
        self.num_heads = self.attn.num_heads
        use_fused_mlp(self.mlp)
        self.attention_path = 'auto'  # see models/attention.py
        self.drop_path = DropPath(drop_path) if drop_path > 0 else \
            nn.Identity()

    def forward(self, cls: torch.Tensor, patches: torch.Tensor,
                cls_only: bool = False):
        b, t, p, d = patches.shape
        tokens = torch.cat([cls[:, None, None].expand(b, t, 1, d), patches],
                           dim=2)  # (B, T, 1+P, D)
        attn = fused_self_attention(
            self.ln_1(tokens), self.attn.in_proj_weight,
            self.attn.in_proj_bias, self.attn.out_proj, self.num_heads,
            self.attention_path, num_queries=1 if cls_only else None)
        attn = self.ls_1(attn)
        cls = cls + self.drop_path(attn[:, :, 0].mean(dim=1))
        cls = cls + self.drop_path(self.ls_2(self.mlp(self.ln_2(cls))))
        if cls_only:
            return cls, None
        patches = patches + self.drop_path(attn[:, :, 1:])
        patches = patches + self.drop_path(
            self.ls_2(self.mlp(self.ln_2(patches))))
        return cls, patches


class STANLayer(nn.Module):
    """Temporal module, then spatial module."""

    def __init__(self, temporal: nn.Module, spatial: STANSpatialBlock):
        super().__init__()
        self.temporal = temporal
        self.spatial = spatial

    def forward(self, cls, patches, grid: tuple, cls_only: bool = False):
        patches = self.temporal(patches, grid)
        return self.spatial(cls, patches, cls_only)


class STANBranch(nn.Module):
    """The side branch over CLIP's last K layer outputs.

    Args:
        clip_blocks (Sequence[nn.Module]): the K CLIP blocks L-K+1..L whose
            outputs feed the branch; spatial module k is a copy of block k.
        embed_dims (int): width D.
        num_heads (int): attention heads (of CLIP and the temporal module).
        temporal (str | dict): ``'attn'``, ``'conv'`` or a ``MODELS`` config
            of a temporal module (``embed_dims``, ``num_heads`` and
            ``drop_path`` are filled in).
        drop_path_rate (float): rates ``linspace(0, drop_path_rate, K)``,
            shared by the two modules of a layer. Defaults to 0.1.
        num_temporal_embeddings (int): size of the learned temporal
            embedding table. Defaults to 64 (the reference).
    """

    def __init__(self, clip_blocks: Sequence[nn.Module], embed_dims: int,
                 num_heads: int, temporal: Union[str, dict] = 'attn',
                 drop_path_rate: float = 0.1,
                 num_temporal_embeddings: int = 64):
        super().__init__()
        num_layers = len(clip_blocks)
        if isinstance(temporal, str):
            if temporal not in TEMPORAL_TYPES:
                raise ValueError(f'temporal={temporal!r}; choose one of '
                                 f'{sorted(TEMPORAL_TYPES)} or pass a '
                                 'MODELS config dict')
            temporal = dict(type=TEMPORAL_TYPES[temporal])
        rates = torch.linspace(0, drop_path_rate, num_layers).tolist()
        layers = []
        for block, rate in zip(clip_blocks, rates):
            cfg = dict(temporal, embed_dims=embed_dims, num_heads=num_heads,
                       drop_path=rate)
            layers.append(STANLayer(MODELS.build(cfg),
                                    STANSpatialBlock(block, rate)))
        self.layers = nn.ModuleList(layers)
        self.temporal_embedding = nn.Embedding(num_temporal_embeddings,
                                               embed_dims)
        nn.init.normal_(self.temporal_embedding.weight)
        self.grad_checkpointing = False

    def temporal_embed(self, num_frames: int) -> torch.Tensor:
        """``(T, D)`` embedding; linearly interpolated past the table."""
        table = self.temporal_embedding.weight
        if num_frames <= table.shape[0]:
            return table[:num_frames]
        return nn.functional.interpolate(
            table.T[None], size=num_frames, mode='linear',
            align_corners=True)[0].T

    def forward(self, hidden: List[torch.Tensor], num_frames: int,
                grid: tuple, pos_embed: torch.Tensor,
                class_embedding: torch.Tensor) -> torch.Tensor:
        """Run the branch.

        Args:
            hidden (list[Tensor]): K CLIP layer outputs, each
                ``(B*T, 1+P, D)``.
            num_frames (int): T.
            grid (tuple): patch grid ``(H', W')``, ``H'*W' = P``.
            pos_embed (Tensor): CLIP's ``(1+P, D)`` positional embedding
                (already resized to the grid).
            class_embedding (Tensor): CLIP's ``(D,)`` class embedding.

        Returns:
            Tensor: the branch CLS ``(B, D)``.
        """
        def split(h):
            h = h.unflatten(0, (-1, num_frames))  # (B, T, 1+P, D)
            return h[:, :, 0].mean(dim=1), h[:, :, 1:]

        cls, patches = split(hidden[0])
        # CLIP's embeddings in the tokens' dtype: under FSDP mixed precision
        # the frozen ones stay fp32 outside the bf16 units.
        pos_embed = pos_embed.to(patches.dtype)
        patches = patches + pos_embed[1:] + \
            self.temporal_embed(num_frames)[:, None].to(patches.dtype)
        cls = (cls + class_embedding.to(cls.dtype) + pos_embed[0]) / 2
        last = len(self.layers) - 1
        for k, layer in enumerate(self.layers):
            if k > 0:
                clip_cls, clip_patches = split(hidden[k])
                cls, patches = cls + clip_cls, patches + clip_patches
            # the last layer's patch tokens are read by nothing: it computes
            # the CLS only (the same CLS; the authors' code computes all)
            if self.grad_checkpointing and self.training:
                cls, patches = checkpoint(layer, cls, patches, grid,
                                          k == last, use_reentrant=False)
            else:
                cls, patches = layer(cls, patches, grid, k == last)
        return cls
