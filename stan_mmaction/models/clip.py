"""CLIP sizes and building open_clip CLIP towers.

One table of sizes (:data:`ARCHS`), builders on open_clip's own classes
(:func:`build_clip`, :func:`build_visual`, :func:`build_text`) and CLIP's
pixel normalisation (:data:`CLIP_MEAN`, :data:`CLIP_STD`). Parameter names
are open_clip's (= OpenAI's), so real checkpoints load strictly with no
remapping; loading them is :mod:`stan_mmaction.models.clip_weights`.
"""
import copy
from typing import Dict

import torch
import torch.nn.functional as F
from open_clip.model import CLIP, _build_text_tower, _build_vision_tower

#: CLIP's pixel mean and std on 0-255 RGB (OpenAI's preprocessing). Configs
#: repeat these numbers (MMEngine configs are data); tests/test_configs.py
#: checks every config against them.
CLIP_MEAN = (122.771, 116.746, 104.093)
CLIP_STD = (68.500, 66.632, 70.323)

#: arch name -> sizes. ``open_clip_name`` is the name of the same model in
#: open_clip's registry (used for pretrained tags).
ARCHS: Dict[str, dict] = {
    'ViT-B/32': dict(
        open_clip_name='ViT-B-32', embed_dim=512,
        vision=dict(image_size=224, patch_size=32, width=768, layers=12,
                    head_width=64),
        text=dict(context_length=77, vocab_size=49408, width=512, heads=8,
                  layers=12)),
    'ViT-B/16': dict(
        open_clip_name='ViT-B-16', embed_dim=512,
        vision=dict(image_size=224, patch_size=16, width=768, layers=12,
                    head_width=64),
        text=dict(context_length=77, vocab_size=49408, width=512, heads=8,
                  layers=12)),
    'ViT-L/14': dict(
        open_clip_name='ViT-L-14', embed_dim=768,
        vision=dict(image_size=224, patch_size=14, width=1024, layers=24,
                    head_width=64),
        text=dict(context_length=77, vocab_size=49408, width=768, heads=12,
                  layers=12)),
    # For tests and the synthetic demo: 32x32 input, 4x4 patches of 8 pixels.
    'tiny': dict(
        open_clip_name=None, embed_dim=32,
        vision=dict(image_size=32, patch_size=8, width=64, layers=4,
                    head_width=16),
        text=dict(context_length=77, vocab_size=49408, width=32, heads=4,
                  layers=2)),
}


def get_arch(arch) -> dict:
    """Return the size dict of ``arch`` (a name of :data:`ARCHS` or a dict
    with the same keys).

    Raises:
        ValueError: unknown name, listing the known ones.
    """
    if isinstance(arch, dict):
        missing = {'embed_dim', 'vision'} - set(arch)
        if missing:
            raise ValueError(f'arch dict lacks keys {sorted(missing)}; '
                             'expected keys like those of ARCHS["tiny"]')
        cfg = copy.deepcopy(arch)
        cfg.setdefault('open_clip_name', None)
        cfg.setdefault('text', copy.deepcopy(ARCHS['tiny']['text']))
        return cfg
    if arch not in ARCHS:
        raise ValueError(f'Unknown arch {arch!r}; choose one of '
                         f'{sorted(ARCHS)} or pass a dict of sizes')
    return copy.deepcopy(ARCHS[arch])


def build_clip(arch, quick_gelu: bool = True) -> CLIP:
    """A randomly initialised open_clip ``CLIP`` (both towers) of ``arch``."""
    cfg = get_arch(arch)
    return CLIP(cfg['embed_dim'], vision_cfg=cfg['vision'],
                text_cfg=cfg['text'], quick_gelu=quick_gelu)


def build_visual(arch, quick_gelu: bool = True) -> torch.nn.Module:
    """A randomly initialised open_clip ``VisionTransformer`` of ``arch``."""
    cfg = get_arch(arch)
    return _build_vision_tower(cfg['embed_dim'], cfg['vision'],
                               quick_gelu=quick_gelu)


def build_text(arch, quick_gelu: bool = True) -> torch.nn.Module:
    """A randomly initialised open_clip ``TextTransformer`` of ``arch``."""
    cfg = get_arch(arch)
    return _build_text_tower(cfg['embed_dim'], cfg['text'],
                             quick_gelu=quick_gelu)


def resize_positional_embedding(pos_embed: torch.Tensor,
                                grid: tuple) -> torch.Tensor:
    """Bicubically resize a ``(1 + h*w, D)`` CLIP positional embedding to
    ``(1 + grid[0]*grid[1], D)``; the CLS row is kept."""
    num_patches = pos_embed.shape[0] - 1
    old = int(round(num_patches**0.5))
    if old * old != num_patches:
        raise ValueError(f'positional embedding with {num_patches} patch rows '
                         'is not a square grid')
    if (old, old) == tuple(grid):
        return pos_embed
    cls_row, patches = pos_embed[:1], pos_embed[1:]
    patches = patches.reshape(1, old, old, -1).permute(0, 3, 1, 2)
    patches = F.interpolate(patches.float(), size=tuple(grid), mode='bicubic',
                            align_corners=False).to(pos_embed.dtype)
    patches = patches.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1)
    return torch.cat([cls_row, patches], dim=0)
