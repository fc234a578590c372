"""Foreign checkpoint formats -> our (OpenAI / open_clip) parameter names.

One table per format, in one place:

* HuggingFace ``transformers`` CLIP (``CLIPModel``: a folder with
  ``config.json`` and ``model.safetensors`` or ``pytorch_model.bin``), the
  format of ``openai/clip-vit-base-patch16`` and friends;
* checkpoints of the authors' STAN code (retrieval model
  ``CLIPSimilarity_split``): the video tower under ``backbone.`` with HF
  vision names plus ``STAN_time_embed``, ``STAN_T_layers.k``,
  ``STAN_S_layers.k``; the text tower under ``text_backbone.``.

HF keeps q, k and v as three Linear layers where OpenAI fuses them into
``in_proj_weight`` (q, k, v order), and stores the projections as ``(E, D)``
Linear weights where OpenAI keeps their ``(D, E)`` transposes. Nothing here
imports ``transformers``: the weights and ``config.json`` are enough.
"""
import json
import os.path as osp
import re
from typing import Dict, List, Optional, Tuple

import torch

Tensors = Dict[str, torch.Tensor]

#: HF block names -> OpenAI block names (one transformer block).
BLOCK_RENAMES = (
    ('layer_norm1.', 'ln_1.'),
    ('layer_norm2.', 'ln_2.'),
    ('mlp.fc1.', 'mlp.c_fc.'),
    ('mlp.fc2.', 'mlp.c_proj.'),
    ('self_attn.out_proj.', 'attn.out_proj.'),
)
#: HF vision embeddings / norms -> OpenAI ``visual.`` names (below
#: ``vision_model.``; an ``embeddings.`` level is looked through).
VISION_RENAMES = {
    'class_embedding': 'class_embedding',
    'patch_embedding.weight': 'conv1.weight',
    'position_embedding.weight': 'positional_embedding',
    'pre_layrnorm.weight': 'ln_pre.weight',
    'pre_layrnorm.bias': 'ln_pre.bias',
    'post_layernorm.weight': 'ln_post.weight',
    'post_layernorm.bias': 'ln_post.bias',
}
#: HF text names -> OpenAI text names (below ``text_model.``; an
#: ``embeddings.`` level is looked through).
TEXT_RENAMES = {
    'token_embedding.weight': 'token_embedding.weight',
    'position_embedding.weight': 'positional_embedding',
    'final_layer_norm.weight': 'ln_final.weight',
    'final_layer_norm.bias': 'ln_final.bias',
}
#: buffers HF saves that carry no weights.
HF_BUFFERS = ('position_ids', )


class CheckpointFormatError(ValueError):
    """A checkpoint in a known foreign format holds keys that cannot be
    placed (named in the message)."""


def _convert_blocks(items: Tensors, prefix: str, out_prefix: str,
                    out: Tensors, used: set, label: str = None) -> None:
    """Blocks ``{prefix}N.*`` (HF names) -> ``{out_prefix}N.*`` (OpenAI),
    with q, k, v fused. ``label`` replaces ``prefix`` in error messages."""
    label = prefix if label is None else label
    pattern = re.compile(re.escape(prefix) + r'(\d+)\.(.+)$')
    blocks: Dict[int, Tensors] = {}
    for key, value in items.items():
        m = pattern.match(key)
        if m:
            blocks.setdefault(int(m.group(1)), {})[m.group(2)] = value
            used.add(key)
    for n, block in sorted(blocks.items()):
        for kind in ('weight', 'bias'):
            parts = [block.pop(f'self_attn.{p}_proj.{kind}', None)
                     for p in 'qkv']
            if any(p is not None for p in parts):
                if any(p is None for p in parts):
                    raise CheckpointFormatError(
                        f'{label}{n}: q, k and v {kind}s must all be '
                        'present')
                out[f'{out_prefix}{n}.attn.in_proj_{kind}'] = torch.cat(parts)
        for name, value in block.items():
            new = name
            for old, rep in BLOCK_RENAMES:
                if name.startswith(old):
                    new = rep + name[len(old):]
                    break
            else:
                raise CheckpointFormatError(
                    f'{label}{n}.{name}: no place for it in a CLIP block')
            out[f'{out_prefix}{n}.{new}'] = value


def _projection(state: Tensors, src: str, dst: str, out: Tensors,
                used: set) -> None:
    """HF's ``(E, D)`` Linear projection ``src`` -> OpenAI's ``(D, E)``
    matrix ``dst``, when present."""
    if src in state:
        out[dst] = state[src].t()
        used.add(src)


def _tower_to_openai(items: Tensors, prefix: str,
                     renames: Dict[str, str]) -> Tuple[Tensors, set]:
    """One HF tower under ``prefix`` -> OpenAI names: the top-level tensors
    through ``renames`` (looking through an ``embeddings.`` level, which the
    authors' checkpoints lack), HF's weightless buffers dropped, and the
    blocks under ``encoder.layers.`` (or ``layers.``) converted. Returns the
    converted dict and the source keys used."""
    out, used = {}, set()
    for key, value in items.items():
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        if rest.startswith('embeddings.'):
            rest = rest[len('embeddings.'):]
        if rest in renames:
            out[renames[rest]] = value
            used.add(key)
        elif rest.split('.')[-1] in HF_BUFFERS:
            used.add(key)
    layers = prefix + ('encoder.layers.' if any(
        k.startswith(prefix + 'encoder.layers.') for k in items) else
        'layers.')
    _convert_blocks(items, layers, 'transformer.resblocks.', out, used)
    return out, used


def hf_vision_to_openai(items: Tensors,
                        prefix: str = '') -> Tuple[Tensors, set]:
    """HF vision tower keys under ``prefix`` (``vision_model.`` in a
    ``CLIPModel``, ``''`` in the authors' ``backbone.``) -> OpenAI
    ``visual.*`` keys without the ``visual.`` prefix."""
    return _tower_to_openai(items, prefix, VISION_RENAMES)


def hf_text_to_openai(items: Tensors, prefix: str = 'text_model.'
                      ) -> Tuple[Tensors, set]:
    """HF text tower keys under ``prefix`` -> OpenAI text keys."""
    return _tower_to_openai(items, prefix, TEXT_RENAMES)


def is_hf_clip_state_dict(state: Tensors) -> bool:
    """True for a HF ``CLIPModel`` state dict (vision and/or text model)."""
    return any(k.startswith(('vision_model.', 'text_model.'))
               for k in state)


def hf_clip_to_openai(state: Tensors) -> Tensors:
    """A HF ``CLIPModel`` state dict -> an OpenAI CLIP state dict
    (``visual.*``, text keys at the top level, ``logit_scale``).

    Raises:
        CheckpointFormatError: keys that have no place, named.
    """
    visual, used = hf_vision_to_openai(state, 'vision_model.')
    out = {f'visual.{k}': v for k, v in visual.items()}
    text, used_text = hf_text_to_openai(state, 'text_model.')
    out.update(text)
    used |= used_text
    _projection(state, 'visual_projection.weight', 'visual.proj', out, used)
    _projection(state, 'text_projection.weight', 'text_projection', out,
                used)
    if 'logit_scale' in state:
        out['logit_scale'] = state['logit_scale']
        used.add('logit_scale')
    left = sorted(set(state) - used)
    if left:
        raise CheckpointFormatError(
            f'HuggingFace CLIP keys with no place in an OpenAI CLIP: {left}')
    return {k: v.contiguous() for k, v in out.items()}


# -- HuggingFace folders ------------------------------------------------------
HF_WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin')


class HFConfigError(ValueError):
    """A HuggingFace ``config.json`` that is not a CLIP config we read."""


def is_hf_clip_folder(path: str) -> bool:
    """A folder with a CLIP ``config.json`` (``model_type`` ``clip``)."""
    cfg = osp.join(str(path), 'config.json')
    if not osp.isdir(str(path)) or not osp.isfile(cfg):
        return False
    with open(cfg, 'rb') as f:
        try:
            config = json.loads(f.read().decode('utf-8'))
        except (ValueError, RecursionError):
            return False
    return isinstance(config, dict) and config.get('model_type') == 'clip'


#: The sizes read from a HF CLIP config, per tower.
HF_SIZE_KEYS = ('hidden_size', 'num_hidden_layers', 'patch_size',
                'image_size', 'num_attention_heads',
                'max_position_embeddings', 'vocab_size')


def parse_hf_config(text: str, source: str) -> dict:
    """A HF CLIP ``config.json``'s text -> its dict, checked: the towers'
    configs are mappings, their sizes (and ``projection_dim``) positive
    integers, ``hidden_act`` a string.

    Raises:
        HFConfigError: naming ``source`` and the key.
    """
    try:
        config = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise HFConfigError(f'{source}: not JSON ({err})') from None
    if not isinstance(config, dict):
        raise HFConfigError(f'{source}: a {type(config).__name__}, not a '
                            'JSON object')

    def size(where, value):
        if value is not None and (type(value) is not int or value <= 0):
            raise HFConfigError(f'{source}: {where} is {value!r}, not a '
                                'positive integer')

    size('projection_dim', config.get('projection_dim'))
    for tower in ('vision_config', 'text_config'):
        sub = config.get(tower, {})
        if not isinstance(sub, dict):
            raise HFConfigError(f'{source}: {tower} is a '
                                f'{type(sub).__name__}, not a mapping')
        for key in HF_SIZE_KEYS:
            size(f'{tower}.{key}', sub.get(key))
        act = sub.get('hidden_act')
        if act is not None and not isinstance(act, str):
            raise HFConfigError(f'{source}: {tower}.hidden_act is {act!r}')
    return config


def read_hf_config(folder: str) -> dict:
    path = osp.join(folder, 'config.json')
    with open(path, 'rb') as f:
        data = f.read()
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as err:
        raise HFConfigError(f'{path}: not UTF-8 ({err})') from None
    return parse_hf_config(text, path)


def hf_weights_file(folder: str) -> str:
    for name in HF_WEIGHT_FILES:
        if osp.isfile(osp.join(folder, name)):
            return osp.join(folder, name)
    raise FileNotFoundError(f'{folder} has config.json but none of '
                            f'{HF_WEIGHT_FILES}')


def hf_config_sizes(config: dict) -> Dict[str, object]:
    """The sizes of a HF CLIP ``config.json`` in ``ARCHS``' terms, keyed
    like ``vision.width``."""
    v = config.get('vision_config', {})
    t = config.get('text_config', {})
    return {
        'embed_dim': config.get('projection_dim'),
        'vision.width': v.get('hidden_size'),
        'vision.layers': v.get('num_hidden_layers'),
        'vision.patch_size': v.get('patch_size'),
        'vision.image_size': v.get('image_size'),
        'vision.heads': v.get('num_attention_heads'),
        'text.width': t.get('hidden_size'),
        'text.layers': t.get('num_hidden_layers'),
        'text.heads': t.get('num_attention_heads'),
        'text.context_length': t.get('max_position_embeddings'),
        'text.vocab_size': t.get('vocab_size'),
    }


def check_hf_config(config: dict, arch_cfg: dict, arch_name,
                    source: str) -> None:
    """Compare a HF ``config.json`` with an ``ARCHS`` entry.

    Raises:
        ValueError: naming every size that differs, with both values.
    """
    v, t = arch_cfg['vision'], arch_cfg.get('text', {})
    ours = {
        'embed_dim': arch_cfg['embed_dim'],
        'vision.width': v['width'],
        'vision.layers': v['layers'],
        'vision.patch_size': v['patch_size'],
        'vision.image_size': v['image_size'],
        'vision.heads': v['width'] // v.get('head_width', 64),
        'text.width': t.get('width'),
        'text.layers': t.get('layers'),
        'text.heads': t.get('heads'),
        'text.context_length': t.get('context_length'),
        'text.vocab_size': t.get('vocab_size'),
    }
    diffs = [f'{k}: config.json {theirs} vs arch {ours[k]}'
             for k, theirs in hf_config_sizes(config).items()
             if theirs is not None and ours.get(k) is not None and
             theirs != ours[k]]
    if diffs:
        raise ValueError(f'{source} does not match arch {arch_name!r}: ' +
                         '; '.join(diffs))


def hf_quick_gelu(config: dict) -> Optional[bool]:
    """QuickGELU from ``hidden_act`` (None when the config does not say)."""
    acts = {config.get(k, {}).get('hidden_act')
            for k in ('vision_config', 'text_config')} - {None}
    if not acts:
        return None
    return acts == {'quick_gelu'}


# -- the authors' STAN checkpoints --------------------------------------------
#: the authors' branch names -> ours (below ``backbone.`` on both sides).
REFERENCE_BRANCH = (
    (r'STAN_time_embed\.weight', 'stan_branch.temporal_embedding.weight'),
    (r'STAN_T_layers\.(\d+)\.layer_norm1\.(weight|bias)',
     r'stan_branch.layers.\1.temporal.norm.\2'),
    (r'STAN_T_layers\.(\d+)\.temporal_fc\.(weight|bias)',
     r'stan_branch.layers.\1.temporal.temporal_fc.\2'),
)


def is_reference_stan_state_dict(state: Tensors) -> bool:
    return any(k.startswith('backbone.STAN_') for k in state)


def reference_stan_to_ours(state: Tensors) -> Tuple[Tensors, List[str]]:
    """A state dict of the authors' retrieval model -> the state dict of our
    ``StanVideoTextRetriever`` (``backbone.visual``,
    ``backbone.stan_branch``, ``text_encoder.text``).

    Returns:
        (converted dict, source keys ignored with the reason).

    Raises:
        CheckpointFormatError: keys that have no place, named.
    """
    out: Tensors = {}
    used: set = set()
    visual, u = hf_vision_to_openai(state, 'backbone.')
    # hf_vision_to_openai also matched 'backbone.layers.'; the branch's
    # STAN_* keys are left for below.
    out.update({f'backbone.visual.{k}': v for k, v in visual.items()})
    used |= u
    _projection(state, 'backbone.visual_projection.weight',
                'backbone.visual.proj', out, used)
    for kind, ours in (('T', 'temporal'), ('S', 'spatial')):
        prefix = f'backbone.STAN_{kind}_layers.'
        branch = {}
        for key, value in state.items():
            if not key.startswith(prefix):
                continue
            rest = key[len(prefix):]
            n, name = rest.split('.', 1)
            if kind == 'T' and name.startswith(('layer_norm1.',
                                                'temporal_fc.')):
                continue  # by REFERENCE_BRANCH below
            branch[f'{n}.{name}'] = value
            used.add(key)
        converted = {}
        _convert_blocks(branch, '', '', converted, set(), label=prefix)
        for key, value in converted.items():
            n, name = key.split('.', 1)
            out[f'backbone.stan_branch.layers.{n}.{ours}.{name}'] = value
    for key, value in state.items():
        rest = key[len('backbone.'):] if key.startswith('backbone.') else None
        if rest is None:
            continue
        for pattern, rep in REFERENCE_BRANCH:
            if re.fullmatch(pattern, rest):
                out['backbone.' + re.sub(pattern, rep, rest)] = value
                used.add(key)
    text, u = hf_text_to_openai(state, 'text_backbone.text_model.')
    out.update({f'text_encoder.text.{k}': v for k, v in text.items()})
    used |= u
    _projection(state, 'text_backbone.text_projection.weight',
                'text_encoder.text.text_projection', out, used)
    ignored = []
    for key in sorted(set(state) - used):
        if key.endswith(HF_BUFFERS) or key in ('logit_scale', ):
            ignored.append(f'{key} (no weights: a buffer or the '
                           'temperature, which the config sets)')
    left = sorted(set(state) - used - {i.split(' ')[0] for i in ignored})
    if left:
        raise CheckpointFormatError(
            f'keys of the authors\' checkpoint with no place in our model: '
            f'{left}')
    return {k: v.contiguous() for k, v in out.items()}, ignored
