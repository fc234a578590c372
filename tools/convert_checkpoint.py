"""Convert checkpoints between the formats users have and ours.

The source format is detected from the file's content:

* a checkpoint of the authors' STAN code (their retrieval model, keys
  ``backbone.STAN_*``) -> a checkpoint of our ``StanVideoTextRetriever``
  built by ``--config`` (``--backbone-only``: just ``backbone.*``, for
  recognition fine-tuning with ``load_from``);
* a HuggingFace CLIP folder or weights file -> an OpenAI-format CLIP state
  dict (what ``pretrained=`` and open_clip read);
* one of our checkpoints -> ``.safetensors`` (its ``state_dict`` only, a
  format that cannot run code) for sharing.

The output format follows DST's extension (``.safetensors``, else a torch
file). The tool prints what it mapped, what it ignored and why, and refuses,
naming the keys, what it cannot place.

    python tools/convert_checkpoint.py stan_msrvtt_ref.pth stan_msrvtt.pth \\
        --config configs/retrieval/stan/\
stan-attn_vit-base-p32-res224-clip-pre_1x1x12_msrvtt-9k-rgb.py
    python tools/convert_checkpoint.py clip-vit-base-patch16/ vit_b16.pt
    python tools/convert_checkpoint.py work_dirs/x/epoch_5.pth \\
        epoch_5.safetensors
"""
import argparse
import os.path as osp

import _bootstrap  # noqa: F401
import torch  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Convert checkpoints')
    p.add_argument('src', help='checkpoint file or HuggingFace CLIP folder')
    p.add_argument('dst', help='output file (.safetensors or a torch file)')
    p.add_argument('--config', default=None,
                   help='our config of the model an authors\' STAN '
                   'checkpoint becomes (required for that format)')
    p.add_argument('--backbone-only', action='store_true',
                   help='keep only backbone.* (recognition fine-tuning)')
    return p.parse_args(argv)


def save(state: dict, dst: str, meta: dict) -> None:
    """Write atomically (``stan_mmaction.utils.atomic.atomic_path``)."""
    from stan_mmaction.utils.atomic import atomic_path
    with atomic_path(dst) as tmp:
        if dst.endswith('.safetensors'):
            from safetensors.torch import save_file
            save_file({k: v.contiguous() for k, v in state.items()}, tmp,
                      metadata={k: str(v) for k, v in meta.items()})
        else:
            torch.save(dict(state_dict=state, meta=meta), tmp)


def load_source(src: str) -> dict:
    """The flat tensor dict of SRC (any container
    ``clip_weights.read_state_dict`` knows), names as stored."""
    from stan_mmaction.models.clip_weights import read_state_dict
    try:
        return read_state_dict(src, what='source')
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(str(err))


def convert_reference(state: dict, args) -> dict:
    from stan_mmaction.apis import init_model
    from stan_mmaction.models.checkpoint_formats import reference_stan_to_ours
    if not args.config:
        raise SystemExit('an authors\' STAN checkpoint needs --config: the '
                         'config of the model it becomes (arch, K)')
    converted, ignored = reference_stan_to_ours(state)
    model = init_model(args.config, random_weights=True)
    own = model.state_dict()
    missing = sorted(set(own) - set(converted))
    from_config = [k for k in missing if k.startswith('head.')]
    missing = [k for k in missing if k not in from_config]
    unexpected = sorted(set(converted) - set(own))
    shapes = sorted(f'{k}: checkpoint {tuple(converted[k].shape)} vs model '
                    f'{tuple(own[k].shape)}' for k in set(converted) & set(own)
                    if converted[k].shape != own[k].shape)
    if missing or unexpected or shapes:
        raise SystemExit(
            f'{args.src} does not fit the model of {args.config}. Missing: '
            f'{missing or "none"}. Unexpected: {unexpected or "none"}. '
            f'Shape mismatches: {shapes or "none"}.')
    for key in from_config:
        converted[key] = own[key]
    model.load_state_dict(converted, strict=True)
    print(f'Mapped {len(state) - len(ignored)} keys of the authors\' '
          f'checkpoint to {len(converted) - len(from_config)} of our '
          f'{type(model).__name__}')
    for key in from_config:
        print(f'  {key}: from the config (the authors\' checkpoint has no '
              'such weight)')
    for line in ignored:
        print(f'  ignored: {line}')
    if args.backbone_only:
        converted = {k: v for k, v in converted.items()
                     if k.startswith('backbone.')}
        print(f'Kept the {len(converted)} backbone.* keys')
    return converted


def main(argv=None):
    args = parse_args(argv)
    from stan_mmaction.models.checkpoint_formats import (
        CheckpointFormatError, hf_clip_to_openai, is_hf_clip_state_dict,
        is_reference_stan_state_dict)
    from stan_mmaction.utils.checkpoint import UnsafeCheckpointError
    try:
        state = load_source(args.src)
    except UnsafeCheckpointError as err:
        raise SystemExit(f'Error: {err}')
    meta = dict(converted_from=osp.abspath(args.src))
    try:
        if is_reference_stan_state_dict(state):
            out = convert_reference(state, args)
            meta['format'] = 'stan_mmaction'
        elif is_hf_clip_state_dict(state):
            out = hf_clip_to_openai(state)
            meta['format'] = 'openai_clip'
            print(f'Mapped {len(state)} HuggingFace CLIP keys to '
                  f'{len(out)} OpenAI CLIP keys')
        else:
            out = state
            meta['format'] = 'stan_mmaction'
            print(f'Copied {len(out)} tensors')
    except CheckpointFormatError as err:
        raise SystemExit(f'{args.src}: {err}')
    save(out, args.dst, meta)
    print(f'Wrote {args.dst}')
    return out


if __name__ == '__main__':
    main()
