"""Per-video embeddings for downstream use, from any of our configs.

    python tools/extract_features.py CONFIG [--checkpoint CKPT] \\
        --videos FOLDER_OR_LIST --out-dir feats/ [--format npy|pt] [--window N]

``--videos`` is a folder (searched recursively) or a text file with one
video path per line (MMAction2 list files work: a trailing integer label is
ignored; paths are relative to ``--data-prefix``). Each video gives
``<out-dir>/<relative path>.npy`` (or ``.pt``; with ``--keep-ext`` the
video's extension stays in the name, ``clip.mp4.npy``): the L2-normalised
video embedding ``(E,)`` (retrieval configs: the video tower; recognition
configs: the backbone's output). Unreadable videos are listed in
``<out-dir>/failed.txt``.

Outputs never leave ``--out-dir`` (a list line such as ``../x.mp4`` is an
error), two videos never share an output (``clip.mp4`` and ``clip.avi``:
an error that suggests ``--keep-ext``), and every file is written to a
temporary name and renamed. ``<out-dir>/manifest.json`` records the model
(content hashes of the resolved config and the checkpoint) and the
options: a run that stopped resumes where it was, skipping the videos
whose embedding is already there (and newer than the video); another model
or other options in the same folder are refused unless ``--overwrite``.
"""
import argparse
import json
import os
import os.path as osp

import _bootstrap  # noqa: F401
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402

from stan_mmaction.apis.cli import (add_speed_args, resolve_dtype_arg,  # noqa
                                    resolve_speed_args, write_stats)
from stan_mmaction.utils.atomic import atomic_path  # noqa: E402
from stan_mmaction.utils.atomic import atomic_write_text
from stan_mmaction.utils.checks import positive_int  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Extract video embeddings')
    p.add_argument('config')
    p.add_argument('--checkpoint', default=None)
    p.add_argument('--videos', required=True,
                   help='a folder of videos or a list file')
    p.add_argument('--data-prefix', default='',
                   help='prefix of relative paths in a list file')
    p.add_argument('--out-dir', required=True)
    p.add_argument('--format', choices=['npy', 'pt'], default='npy')
    p.add_argument('--keep-ext', action='store_true',
                   help='name outputs <video name with extension>.npy')
    p.add_argument('--window', type=positive_int, default=None,
                   help='frames per window for long videos')
    p.add_argument('--overwrite', action='store_true',
                   help='recompute every embedding, even with another '
                   'model or options in --out-dir')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    add_speed_args(p, dtype_help='precision the model is cast to; auto: '
                   'bf16 on GPUs and CPUs with native bf16, fp32 elsewhere '
                   '(default: the dtype of the embeddings already in '
                   '--out-dir, else auto)')
    return p.parse_args(argv)


def _list_path(line: str) -> str:
    """The video path of a list-file line (a trailing label dropped)."""
    fields = line.strip().rsplit(None, 1)
    if len(fields) == 2 and fields[1].lstrip('-').isdigit():
        return fields[0]
    return line.strip()


def video_list(source: str, prefix: str):
    """[(path, name relative to the source, where)]; ``where`` names the
    list line for messages."""
    from stan_mmaction.apis import list_videos
    if osp.isdir(source):
        return [(p, osp.relpath(p, source), p) for p in list_videos(source)]
    if not osp.isfile(source):
        raise SystemExit(f'{source}: neither a folder nor a list file')
    out = []
    with open(source, encoding='utf-8') as f:
        for line_no, line in enumerate(f, start=1):
            if line.strip():
                rel = _list_path(line)
                out.append((osp.join(prefix, rel), rel.lstrip('/'),
                            f'{source}:{line_no}'))
    return out


def output_paths(videos, out_dir: str, fmt: str, keep_ext: bool):
    """One output path per video, each inside ``out_dir`` and none shared;
    SystemExit naming the offending entries otherwise."""
    root = osp.realpath(out_dir)
    outputs, owners, errors = [], {}, []
    for path, rel, where in videos:
        name = rel if keep_ext else osp.splitext(rel)[0]
        out = osp.realpath(osp.join(root, f'{name}.{fmt}'))
        if osp.commonpath([root, out]) != root:
            errors.append(f'{where}: {rel} would be written outside '
                          f'--out-dir ({out})')
        elif out in owners:
            errors.append(f'{where}: {rel} and {owners[out]} would both '
                          f'write {out}; pass --keep-ext to keep the '
                          'extensions in the names')
        owners.setdefault(out, rel)
        outputs.append(out)
    if errors:
        raise SystemExit('Nothing written:\n  ' + '\n  '.join(errors))
    return outputs


def read_manifest(out_dir: str):
    """``out_dir``'s manifest (None: there is none), or SystemExit naming
    the file when it is not one this tool wrote."""
    path = osp.join(out_dir, 'manifest.json')
    if not osp.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as f:
            old = json.load(f)
    except (ValueError, OSError) as err:
        raise SystemExit(f'{path}: not a manifest this tool wrote ({err}); '
                         'remove it, or pass --overwrite')
    if not isinstance(old, dict):
        raise SystemExit(f'{path}: not a manifest this tool wrote (a '
                         f'{type(old).__name__}); remove it, or pass '
                         '--overwrite')
    old.setdefault('dtype', 'fp32')  # manifests before dtypes were recorded
    if old['dtype'] not in ('fp32', 'bf16', 'fp16'):
        raise SystemExit(f'{path}: dtype {old["dtype"]!r} is not fp32, '
                         'bf16 or fp16; remove it, or pass --overwrite')
    return old


def check_manifest(out_dir: str, manifest: dict, overwrite: bool) -> bool:
    """Whether outputs already in ``out_dir`` may be kept (same model and
    options; the config is compared by its resolved content, not where it
    lies); SystemExit if they differ and ``overwrite`` is not set."""
    path = osp.join(out_dir, 'manifest.json')
    old = None if overwrite else read_manifest(out_dir)
    if old is None:
        return not overwrite
    differ = sorted(k for k in manifest
                    if k != 'config' and old.get(k) != manifest[k])
    if differ and not overwrite:
        raise SystemExit(
            f'{out_dir} holds embeddings of another model or options '
            f'({", ".join(differ)} differ; see {path}). Choose another '
            '--out-dir, or pass --overwrite to recompute them all')
    return not overwrite and not differ


def save_embedding(emb: torch.Tensor, out: str, fmt: str) -> None:
    with atomic_path(out) as tmp:
        with open(tmp, 'wb') as f:
            if fmt == 'npy':
                np.save(f, emb.numpy())
            else:
                torch.save(emb, f)


def folder_dtype(out_dir: str):
    """The dtype recorded in ``out_dir``'s manifest (None: no manifest;
    fp32 for manifests written before dtypes were recorded)."""
    old = read_manifest(out_dir)
    return None if old is None else old['dtype']


def main(argv=None):
    from stan_mmaction.apis.cli import one_line_errors
    args = parse_args(argv)
    with one_line_errors():
        return run(args)


def run(args):
    from stan_mmaction.apis import StanInferencer, VideoProgress
    from stan_mmaction.apis.search_index import config_sha256, file_sha256
    from stan_mmaction.utils.system import process_seconds
    resolve_speed_args(args)
    device = args.device
    requested = args.dtype or (None if args.overwrite else
                               folder_dtype(args.out_dir)) or 'auto'
    dtype = resolve_dtype_arg(requested, device)
    videos = video_list(args.videos, args.data_prefix)
    outputs = output_paths(videos, args.out_dir, args.format, args.keep_ext)
    manifest = dict(
        config=osp.abspath(args.config),
        config_sha256=config_sha256(args.config, args.cfg_options),
        checkpoint_sha256=file_sha256(args.checkpoint),
        format=args.format, window=args.window, keep_ext=args.keep_ext,
        dtype=dtype)
    keep = check_manifest(args.out_dir, manifest, args.overwrite)
    todo = [(v, out) for v, out in zip(videos, outputs)
            if not (keep and osp.isfile(out) and osp.isfile(v[0])
                    and osp.getmtime(out) >= osp.getmtime(v[0]))]
    if len(todo) < len(videos):
        print(f'{len(videos) - len(todo)} of {len(videos)} embedding(s) '
              f'already in {args.out_dir}; computing the other '
              f'{len(todo)}', flush=True)
    if todo:  # before anything is written: a refused checkpoint leaves
        # the folder as it was
        inferencer = StanInferencer(args.config, args.checkpoint, device,
                                    dtype, args.compile, args.cfg_options)
    os.makedirs(args.out_dir, exist_ok=True)
    atomic_write_text(osp.join(args.out_dir, 'manifest.json'),
                      json.dumps(manifest, indent=1))
    failed, written = [], []
    progress = None
    if todo:
        warm = inferencer.warm_up('embed', args.batch_size) \
            if args.compile else 0.0
        progress = VideoProgress(len(todo), process_seconds() - warm, warm)
        out_of = {v[0]: out for v, out in todo}
        for result in inferencer.iter_videos([v[0] for v, _ in todo],
                                             'embed', args.window,
                                             args.batch_size, args.workers):
            if result.error:
                failed.append(result.error)
            else:
                save_embedding(result.embedding, out_of[result.path],
                               args.format)
                written.append(out_of[result.path])
            progress.update()
        progress.finish()
    atomic_write_text(osp.join(args.out_dir, 'failed.txt'),
                      ''.join(line + '\n' for line in failed))
    print(f'{len(written)} embedding(s) written to {args.out_dir}; '
          f'{len(failed)} unreadable (failed.txt)')
    for line in failed:
        print(f'  {line}')
    if progress is not None:
        print(progress.line(dtype, args.compile))
        write_stats(args, progress, dtype)
    return written, failed


if __name__ == '__main__':
    main()
