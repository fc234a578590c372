"""StanCLIPBackbone: an open_clip CLIP ViT with the STAN side branch."""
from typing import List, Optional, Union

import torch
import torch.nn as nn
from mmaction.registry import MODELS
from mmengine.model import BaseModule
from torch.utils.checkpoint import checkpoint

from ..utils.checks import check_float, check_int
from .attention import set_attention_path, use_sdpa_forward
from .clip import build_visual, get_arch, resize_positional_embedding
from .clip_weights import load_visual_weights, resolve_pretrained
from .stan_branch import STANBranch

OUT_CHOICES = ('proj', 'feature')

#: ``paramwise_cfg=dict(custom_keys={BRANCH_KEY: dict(lr_mult=10)})`` gives
#: the branch its own learning rate.
BRANCH_KEY = 'stan_branch'


@MODELS.register_module()
class StanCLIPBackbone(BaseModule):
    """CLIP ViT plus the STAN branch (Liu et al., CVPR 2023).

    The CLIP path is open_clip's ``VisionTransformer`` (held as ``visual``,
    with open_clip/OpenAI parameter names); the branch lives under
    ``stan_branch`` (see :data:`BRANCH_KEY`).

    Args:
        arch (str | dict): ``'ViT-B/32'``, ``'ViT-B/16'``, ``'ViT-L/14'``,
            ``'tiny'`` or a dict of sizes (see ``stan_mmaction.models.clip``).
            Defaults to ``'ViT-B/16'``.
        num_stan_layers (int): K, the number of STAN layers; 0 gives plain
            CLIP with mean pooling over frames (CLIP4Clip meanP).
            Defaults to 4.
        temporal (str | dict): ``'attn'``, ``'conv'`` or a ``MODELS`` config
            of a temporal module. Defaults to ``'attn'``.
        pretrained (str, optional): ``None``, a CLIP checkpoint file, or an
            open_clip pretrained tag (``'openai'``, ...). Defaults to None.
        quick_gelu (bool, optional): QuickGELU activations; defaults to the
            tag's setting, else True (OpenAI weights).
        drop_path_rate (float): branch DropPath, ``linspace(0, rate, K)``.
            Defaults to 0.1.
        num_temporal_embeddings (int): temporal embedding table size.
            Defaults to 64.
        max_frames (int): largest T accepted. Any frame count up to it works;
            the clip length of a config is its pipeline's ``clip_len`` (read
            by ``stan_mmaction.utils.clip_shape``), not a backbone argument.
            The temporal embedding is interpolated past its table.
            Defaults to 1024.
        frozen_stages (int): -1 trains everything; 0 freezes CLIP's patch
            embedding, class/positional embeddings and ``ln_pre``; n > 0
            also freezes CLIP blocks 0..n-1; ``L + 1`` also freezes
            ``ln_post`` and ``proj`` (all of CLIP). Holds across
            ``train()``. Defaults to -1.
        grad_checkpointing (bool): recompute CLIP blocks and STAN layers in
            the backward pass. Defaults to False.
        out (str): ``'proj'`` (the projected embedding, width ``embed_dim``)
            or ``'feature'`` (after ``ln_post``, before ``proj``, width D).
            Defaults to ``'proj'``.
        attention (str): attention path of every block: ``'auto'`` (the
            path measured fastest for the device, dtype and site),
            ``'sdpa'`` or ``'matmul'`` (see ``models/attention.py``).
            Defaults to ``'auto'``.
        init_cfg (dict, optional): MMEngine init config.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'ViT-B/16',
                 num_stan_layers: int = 4,
                 temporal: Union[str, dict] = 'attn',
                 pretrained: Optional[str] = None,
                 quick_gelu: Optional[bool] = None,
                 drop_path_rate: float = 0.1,
                 num_temporal_embeddings: int = 64,
                 max_frames: int = 1024,
                 frozen_stages: int = -1,
                 grad_checkpointing: bool = False,
                 out: str = 'proj',
                 attention: str = 'auto',
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        cfg = get_arch(arch)
        if out not in OUT_CHOICES:
            raise ValueError(f'out={out!r}; choose one of {OUT_CHOICES}')
        num_layers = cfg['vision']['layers']
        num_stan_layers = check_int('num_stan_layers', num_stan_layers, 0,
                                    num_layers)
        frozen_stages = check_int('frozen_stages', frozen_stages, -1,
                                  num_layers + 1)
        max_frames = check_int('max_frames', max_frames, 1)
        num_temporal_embeddings = check_int('num_temporal_embeddings',
                                            num_temporal_embeddings, 1)
        drop_path_rate = check_float('drop_path_rate', drop_path_rate, 0.0,
                                     1.0)
        if not isinstance(grad_checkpointing, bool):
            raise TypeError('grad_checkpointing must be a bool, got '
                            f'{grad_checkpointing!r}')
        self.arch = arch
        self.num_stan_layers = num_stan_layers
        self.max_frames = max_frames
        self.frozen_stages = frozen_stages
        self.out = out
        self.patch_size = cfg['vision']['patch_size']
        self.embed_dims = cfg['vision']['width']
        self.out_dim = cfg['embed_dim'] if out == 'proj' else self.embed_dims
        self.grad_checkpointing = False

        state, quick_gelu, source = resolve_pretrained(arch, pretrained,
                                                       quick_gelu)
        self.visual = build_visual(arch, quick_gelu=quick_gelu)
        if state is not None:
            load_visual_weights(self.visual, state, source=source)
        if getattr(self.visual, 'attn_pool', None) is not None or \
                getattr(self.visual, 'pool_type', 'tok') != 'tok':
            raise ValueError('StanCLIPBackbone needs a CLS-token CLIP ViT '
                             '(no attentional pooling)')
        for blk in self.visual.transformer.resblocks:
            if not isinstance(blk.attn, nn.MultiheadAttention) or hasattr(
                    blk, 'ln_1_kv'):
                raise ValueError('StanCLIPBackbone supports open_clip '
                                 'ResidualAttentionBlock layers only, got '
                                 f'{type(blk).__name__}')
            use_sdpa_forward(blk)
        self.stan_branch = None
        if num_stan_layers > 0:
            blocks = self.visual.transformer.resblocks[num_layers -
                                                       num_stan_layers:]
            self.stan_branch = STANBranch(
                blocks, self.embed_dims, blocks[0].attn.num_heads,
                temporal=temporal, drop_path_rate=drop_path_rate,
                num_temporal_embeddings=num_temporal_embeddings)
        set_attention_path(self, attention)
        self.set_grad_checkpointing(grad_checkpointing)
        self._freeze_stages()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute CLIP's blocks and the STAN layers in the backward pass
        (open_clip's switch of the same name; training mode only)."""
        self.grad_checkpointing = enable
        if self.stan_branch is not None:
            self.stan_branch.grad_checkpointing = enable

    # ------------------------------------------------------------------
    def _frozen_modules(self) -> List[nn.Module]:
        v = self.visual
        if self.frozen_stages < 0:
            return []
        mods = [v.conv1, v.ln_pre, v.patch_dropout]
        mods += list(v.transformer.resblocks[:self.frozen_stages])
        if self.frozen_stages > len(v.transformer.resblocks):
            mods.append(v.ln_post)
        return mods

    def _freeze_stages(self) -> None:
        v = self.visual
        if self.frozen_stages >= 0:
            v.class_embedding.requires_grad_(False)
            v.positional_embedding.requires_grad_(False)
        if self.frozen_stages > len(v.transformer.resblocks):
            v.proj.requires_grad_(False)
        for m in self._frozen_modules():
            m.eval()
            m.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        return self

    # ------------------------------------------------------------------
    def _check_input(self, imgs: torch.Tensor) -> None:
        if imgs.dim() != 5 or imgs.shape[1] != 3:
            raise ValueError('StanCLIPBackbone expects (B, 3, T, H, W) '
                             f'input, got shape {tuple(imgs.shape)}')
        t, h, w = imgs.shape[2:]
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f'H and W must be divisible by the patch size '
                             f'{self.patch_size}, got H={h}, W={w}')
        if t > self.max_frames:
            raise ValueError(f'T={t} frames exceeds max_frames='
                             f'{self.max_frames}')

    def _pos_embed(self, grid: tuple) -> torch.Tensor:
        pos = self.visual.positional_embedding
        if tuple(grid) != tuple(self.visual.grid_size):
            pos = resize_positional_embedding(pos, grid)
        return pos

    def forward_frames(self, imgs: torch.Tensor):
        """Run CLIP on every frame.

        Returns:
            tuple: final tokens ``(B*T, 1+P, D)``, the outputs of the last K
            blocks, the grid and the positional embedding used.
        """
        self._check_input(imgs)
        b, _, t, h, w = imgs.shape
        v = self.visual
        x = imgs.transpose(1, 2).flatten(0, 1)  # (B*T, 3, H, W)
        x = v.conv1(x)
        grid = tuple(x.shape[-2:])
        x = x.flatten(2).transpose(1, 2)  # (B*T, P, D)
        cls = v.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        pos = self._pos_embed(grid)
        x = torch.cat([cls, x], dim=1) + pos.to(x.dtype)
        x = v.ln_pre(v.patch_dropout(x))
        blocks = v.transformer.resblocks
        first_kept = len(blocks) - self.num_stan_layers
        hidden = []
        for i, blk in enumerate(blocks):
            if self.grad_checkpointing and self.training and \
                    torch.is_grad_enabled():
                x = checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
            if i >= first_kept:
                hidden.append(x)
        return x, hidden, grid, pos

    def _head(self, cls: torch.Tensor) -> torch.Tensor:
        x = self.visual.ln_post(cls)
        if self.out == 'proj':
            x = x @ self.visual.proj
        return x

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W)`` video -> ``(B, out_dim)`` embedding."""
        t = imgs.shape[2] if imgs.dim() == 5 else 0
        x, hidden, grid, pos = self.forward_frames(imgs)
        cls = x[:, 0].unflatten(0, (-1, t))  # (B, T, D)
        if self.stan_branch is not None:
            branch_cls = self.stan_branch(hidden, t, grid, pos,
                                          self.visual.class_embedding)
            cls = cls + branch_cls[:, None]
        return self._head(cls).mean(dim=1)
