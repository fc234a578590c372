"""CLIP sizes, building open_clip CLIP models, and loading CLIP weights.

One table of sizes (:data:`ARCHS`), one builder (:func:`build_clip`,
:func:`build_visual`) on open_clip's own classes, and one loading entry point
(:func:`load_clip_state_dict` + :func:`load_visual_weights`). Parameter names
are open_clip's (= OpenAI's), so real checkpoints load strictly with no
remapping.
"""
import copy
import os.path as osp
import zipfile
from typing import Dict, Optional

import open_clip
import torch
import torch.nn.functional as F
from mmengine.logging import MMLogger
from open_clip.model import CLIP, _build_vision_tower

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


def _is_jit_archive(path: str) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith('constants.pkl') for n in zf.namelist())


def load_clip_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """Read a CLIP checkpoint file into a flat open_clip/OpenAI state dict.

    Accepts a plain state dict, a training checkpoint holding it under
    ``state_dict`` / ``model`` / ``module`` (DDP ``module.`` prefixes are
    stripped), and OpenAI's JIT archives (``ViT-B-32.pt``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file holds no tensor dict.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'CLIP checkpoint not found: {path}')
    if _is_jit_archive(path):
        state = torch.jit.load(path, map_location='cpu').state_dict()
    else:
        state = torch.load(path, map_location='cpu', weights_only=True)
    for key in ('state_dict', 'model', 'module'):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f'{path} does not hold a CLIP state dict '
                         '(a dict of tensors)')
    if all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    return dict(state)


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


def _list(items, limit: int = 20) -> str:
    if not items:
        return 'none'
    more = f' ... (+{len(items) - limit} more)' if len(items) > limit else ''
    return '; '.join(items[:limit]) + more


class CheckpointMismatchError(RuntimeError):
    """A CLIP checkpoint does not fit the model it is loaded into."""


def strict_load(module: torch.nn.Module, sub: Dict[str, torch.Tensor],
                what: str, prefix: str = '') -> None:
    """``module.load_state_dict(sub, strict=True)``, but first one
    :class:`CheckpointMismatchError` naming every missing, unexpected and
    shape-mismatched key (with ``prefix``); nothing is loaded then."""
    own = module.state_dict()
    missing = sorted(prefix + k for k in set(own) - set(sub))
    unexpected = sorted(prefix + k for k in set(sub) - set(own))
    mismatched = sorted(
        f'{prefix}{k}: checkpoint {tuple(sub[k].shape)} vs model '
        f'{tuple(own[k].shape)}'
        for k in set(own) & set(sub) if sub[k].shape != own[k].shape)
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(
            f'{what}. Missing keys: {_list(missing)}. '
            f'Unexpected keys: {_list(unexpected)}. '
            f'Shape mismatches: {_list(mismatched)}.')
    module.load_state_dict(sub, strict=True)


def load_visual_weights(visual: torch.nn.Module,
                        state: Dict[str, torch.Tensor],
                        source: str = 'checkpoint') -> None:
    """Strictly load the ``visual.*`` part of a full CLIP state dict.

    The positional embedding is resized when the checkpoint was trained at
    another resolution. Everything else must fit exactly.

    Raises:
        CheckpointMismatchError: naming every missing, unexpected and
            shape-mismatched key. Nothing is loaded in that case.
    """
    prefix = 'visual.'
    sub = {k[len(prefix):]: v for k, v in state.items()
           if k.startswith(prefix)}
    own = visual.state_dict()
    if 'positional_embedding' in sub and 'positional_embedding' in own:
        want = own['positional_embedding'].shape
        if sub['positional_embedding'].shape[1:] == want[1:] and \
                sub['positional_embedding'].shape[0] != want[0]:
            grid = tuple(visual.grid_size)
            sub['positional_embedding'] = resize_positional_embedding(
                sub['positional_embedding'], grid)
            MMLogger.get_current_instance().info(
                f'Resized positional_embedding of {source} to grid {grid}')
    strict_load(visual, sub, f'{source} does not fit this CLIP visual '
                'model', prefix)


def build_pretrained_visual(arch, pretrained: Optional[str],
                            quick_gelu: Optional[bool] = None):
    """Build the CLIP visual tower of ``arch`` with weights from ``pretrained``.

    Args:
        arch (str | dict): a name of :data:`ARCHS` or a dict of sizes.
        pretrained (str, optional): ``None`` (random init), a path to a CLIP
            checkpoint file (see :func:`load_clip_state_dict`), or an
            open_clip pretrained tag for the arch (``'openai'``,
            ``'laion2b_s34b_b79k'``, ...), downloaded by open_clip.
        quick_gelu (bool, optional): QuickGELU activations (OpenAI weights).
            Defaults to the tag's setting for tags and ``True`` otherwise.
    """
    cfg = get_arch(arch)
    if pretrained is None or osp.isfile(str(pretrained)):
        visual = build_visual(arch, quick_gelu=True if quick_gelu is None
                              else quick_gelu)
        if pretrained is not None:
            load_visual_weights(visual, load_clip_state_dict(pretrained),
                                source=str(pretrained))
        return visual
    name = cfg['open_clip_name']
    tags = open_clip.list_pretrained_tags_by_model(name) if name else []
    if pretrained not in tags:
        raise ValueError(
            f'pretrained={pretrained!r} is neither a file nor an open_clip '
            f'pretrained tag of arch {arch!r}; known tags: {tags or "none"}')
    if quick_gelu is None:
        quick_gelu = open_clip.get_pretrained_cfg(name, pretrained).get(
            'quick_gelu', False)
    model = open_clip.create_model(name, pretrained=pretrained,
                                   force_quick_gelu=quick_gelu)
    visual = model.visual
    if tuple(visual.image_size) != (cfg['vision']['image_size'], ) * 2:
        raise ValueError(f'open_clip model {name} does not match arch {arch}')
    return visual
