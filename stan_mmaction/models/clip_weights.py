"""CLIP weights: from ``pretrained=`` to a state dict, and strict loading.

Both towers (``StanCLIPBackbone``'s visual tower and ``CLIPTextEncoder``)
go through :func:`resolve_pretrained`: ``None`` (random init), a checkpoint
file (OpenAI / open_clip state dicts, training checkpoints holding one,
OpenAI JIT archives, HuggingFace ``CLIPModel`` weights; detected by content),
a HuggingFace CLIP folder (``config.json`` + weights; its sizes are checked
against ``arch``), or an open_clip pretrained tag (the weights file open_clip
downloads for it, read here like any other file). It also settles the
``quick_gelu`` default: the tag's or ``config.json``'s setting, else True
(OpenAI weights).
:func:`load_visual_weights` and :func:`load_text_weights` then load a tower's
part of the full CLIP state dict strictly, naming every key that does not fit.
"""
import os.path as osp
import zipfile
from typing import Dict, Optional, Tuple

import open_clip
import torch
from mmengine.logging import MMLogger

from ..utils.checkpoint import (TRUST_ENV, UnsafeCheckpointError,
                                safe_torch_load, trusted, warn_trusted)
from .checkpoint_formats import (check_hf_config, hf_clip_to_openai,
                                 hf_quick_gelu, hf_weights_file,
                                 is_hf_clip_folder, is_hf_clip_state_dict,
                                 read_hf_config)
from .clip import get_arch, resize_positional_embedding
from .clip_downloads import tag_weights_file

#: keys of a full CLIP state dict that belong to neither tower.
SHARED_KEYS = ('logit_scale', 'logit_bias')


class CheckpointMismatchError(RuntimeError):
    """A CLIP checkpoint does not fit the model it is loaded into."""


def _is_jit_archive(path: str) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith('constants.pkl') for n in zf.namelist())


def _load_jit_archive(path: str) -> Dict[str, torch.Tensor]:
    """OpenAI's TorchScript archives hold code; read only when trusted."""
    if not trusted():
        raise UnsafeCheckpointError(
            f'{path} is a TorchScript archive (OpenAI\'s original CLIP '
            'release); loading it runs the code inside. If you trust it, '
            f'convert it once: {TRUST_ENV}=1 python '
            f'tools/convert_checkpoint.py {path} clip_state_dict.pt, and use '
            'that file')
    warn_trusted(path)
    return torch.jit.load(path, map_location='cpu').state_dict()


def read_state_dict(path: str, what: str = 'CLIP') -> Dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat dict of tensors, names as stored.

    Accepts a plain state dict (``torch.save`` or ``.safetensors``), a
    training checkpoint holding it under ``state_dict`` / ``model`` /
    ``module`` (DDP ``module.`` prefixes are stripped), OpenAI's JIT
    archives (``ViT-B-32.pt``; only with ``STAN_MMACTION_TRUST_CHECKPOINTS=1``:
    they hold code), and a HuggingFace CLIP folder (its
    ``model.safetensors`` / ``pytorch_model.bin``). ``what`` names the
    expected content in errors.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file holds no tensor dict.
        UnsafeCheckpointError: the file would run code when loaded.
    """
    if is_hf_clip_folder(path):
        path = hf_weights_file(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} checkpoint not found: {path}')
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        state = load_file(path, device='cpu')
    elif _is_jit_archive(path):
        state = _load_jit_archive(path)
    else:
        state = safe_torch_load(path)
    for key in ('state_dict', 'model', 'module'):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f'{path} does not hold a {what} state dict '
                         '(a dict of tensors)')
    if all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    return dict(state)


def load_clip_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """Read a CLIP checkpoint (any container of :func:`read_state_dict`)
    into a flat open_clip/OpenAI state dict; HuggingFace ``CLIPModel``
    weights are converted to OpenAI names."""
    state = read_state_dict(path)
    return hf_clip_to_openai(state) if is_hf_clip_state_dict(state) \
        else state


def resolve_pretrained(arch, pretrained: Optional[str],
                       quick_gelu: Optional[bool] = None
                       ) -> Tuple[Optional[Dict[str, torch.Tensor]], bool,
                                  str]:
    """``pretrained`` -> ``(state dict or None, quick_gelu, source name)``.

    Args:
        arch (str | dict): a name of ``ARCHS`` or a dict of sizes.
        pretrained (str, optional): ``None`` (random init), a CLIP
            checkpoint file or HuggingFace CLIP folder (see
            :func:`load_clip_state_dict`), or an open_clip pretrained tag of
            the arch (``'openai'``,
            ``'laion2b_s34b_b79k'``, ...), whose file open_clip downloads
            (once, into its cache; offline, a cached file is used, else
            :func:`~.clip_downloads.tag_weights_file` fails within
            seconds saying where to put it).
        quick_gelu (bool, optional): QuickGELU activations. Defaults to the
            tag's setting for tags, ``hidden_act`` of a HuggingFace folder's
            ``config.json``, and True (OpenAI weights) otherwise.

    Raises:
        ValueError: ``pretrained`` is neither a file nor a tag of the arch,
            listing the known tags; a HuggingFace folder whose
            ``config.json`` sizes differ from ``arch`` (both values named).
    """
    if pretrained is None:
        return None, True if quick_gelu is None else quick_gelu, 'random'
    if is_hf_clip_folder(str(pretrained)):
        config = read_hf_config(pretrained)
        check_hf_config(config, get_arch(arch), arch,
                        f'HuggingFace CLIP folder {pretrained}')
        if quick_gelu is None:
            quick_gelu = hf_quick_gelu(config)
        return (load_clip_state_dict(pretrained),
                True if quick_gelu is None else quick_gelu, str(pretrained))
    if osp.isfile(str(pretrained)):
        return (load_clip_state_dict(pretrained),
                True if quick_gelu is None else quick_gelu, str(pretrained))
    name = get_arch(arch)['open_clip_name']
    tags = open_clip.list_pretrained_tags_by_model(name) if name else []
    if pretrained not in tags:
        raise ValueError(
            f'pretrained={pretrained!r} is neither a file nor an open_clip '
            f'pretrained tag of arch {arch!r}; known tags: {tags or "none"}')
    tag_cfg = open_clip.get_pretrained_cfg(name, pretrained)
    if quick_gelu is None:
        quick_gelu = tag_cfg.get('quick_gelu', False)
    path = tag_weights_file(name, pretrained, tag_cfg)
    return load_clip_state_dict(path), quick_gelu, f'{name} {pretrained}'


def _list(items, limit: int = 20) -> str:
    if not items:
        return 'none'
    more = f' ... (+{len(items) - limit} more)' if len(items) > limit else ''
    return '; '.join(items[:limit]) + more


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


def load_text_weights(text: torch.nn.Module, state: Dict[str, torch.Tensor],
                      source: str = 'checkpoint') -> None:
    """Strictly load the text-tower part of a full CLIP state dict (all but
    ``visual.*`` and :data:`SHARED_KEYS`).

    Raises:
        CheckpointMismatchError: naming every missing, unexpected and
            shape-mismatched key; nothing is loaded in that case.
    """
    sub = {k: v for k, v in state.items()
           if not k.startswith('visual.') and k not in SHARED_KEYS}
    strict_load(text, sub, f'{source} does not fit this CLIP text model')
