"""Text-to-video search over a folder of videos.

Index once (embeddings saved with the config and checkpoint they came from,
identified by the content hashes of the resolved config and the checkpoint,
in a safetensors file that cannot run code; re-running adds new or changed
files and drops deleted ones, and refuses to mix in embeddings of another
model; unreadable files are reported at the end and skipped; the index is
saved every ``--save-every`` videos, so a run that stops resumes where it
was, and concurrent runs on one index merge their work under a file lock),
then query with text:

    python tools/search.py index VIDEO_FOLDER \\
        --config configs/retrieval/stan/\
stan-attn_vit-base-p32-res224-clip-pre_1x1x12_msrvtt-9k-rgb.py \\
        --checkpoint work_dirs/\
stan-attn_vit-base-p32-res224-clip-pre_1x1x12_msrvtt-9k-rgb/epoch_10.pth \\
        --index videos.idx
    python tools/search.py query "a man is cooking" --index videos.idx \\
        --top-k 5 \\
        --contact-sheet hits.jpg

Speed: ``--dtype auto|fp32|bf16|fp16`` casts the model (auto: bf16 on GPUs
and on CPUs with native bf16, fp32 elsewhere; the index records the dtype
and refuses to mix another into it), ``--compile`` compiles the video tower
(after a reported warm-up), videos are decoded in ``--workers`` processes
while the model runs, and ``--batch-size`` clips go through it at once. The
last line gives videos/s (``--stats-json FILE``: the same numbers as
JSON).

Plain CLIP weights (no training) work too: index with a retrieval config
and no ``--checkpoint`` (weights from the config's ``pretrained``, e.g.
``configs/retrieval/stan/``
``clip-meanp_vit-base-p32-res224-clip-pre_1x1x12_msrvtt-9k-rgb.py`` with
OpenAI CLIP).
"""
import argparse
import os.path as osp

import _bootstrap  # noqa: F401
import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402

from stan_mmaction.apis.cli import (add_speed_args, default_device,  # noqa
                                    resolve_dtype_arg, resolve_speed_args,
                                    write_stats)
from stan_mmaction.utils.checks import non_empty_text  # noqa: E402
from stan_mmaction.utils.checks import positive_int


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Text-to-video search')
    sub = p.add_subparsers(dest='command', required=True)
    ix = sub.add_parser('index', help='embed the videos of a folder')
    ix.add_argument('folder')
    ix.add_argument('--config', required=True)
    ix.add_argument('--checkpoint', default=None)
    ix.add_argument('--index', required=True, help='index file to write')
    ix.add_argument('--window', type=positive_int, default=None,
                    help='frames per window for long videos (default: '
                    'one clip over the whole video)')
    ix.add_argument('--rebuild', action='store_true',
                    help='start a new index even if one with another '
                    'config exists')
    ix.add_argument('--save-every', type=positive_int, default=20,
                    help='save the index after every N videos, so a run '
                    'that stops resumes where it was (default: 20)')
    ix.add_argument('--cfg-options', nargs='+', action=DictAction)
    add_speed_args(ix, dtype_help='precision the model is cast to; auto: '
                   'bf16 on GPUs and CPUs with native bf16, fp32 elsewhere '
                   '(default: the index\'s dtype when adding to one, else '
                   'auto)')
    q = sub.add_parser('query', help='rank indexed videos for a text')
    q.add_argument('text', type=non_empty_text)
    q.add_argument('--index', required=True)
    q.add_argument('--config', default=None,
                   help='must match the index (default: the index\'s '
                   'config file, if its bytes and its bases\' are unchanged)')
    q.add_argument('--checkpoint', default=None,
                   help='must match the index (default: the index\'s, if '
                   'its content is unchanged)')
    q.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='the options the index was built with (they are '
                   'never read from the index)')
    q.add_argument('--top-k', type=positive_int, default=5)
    q.add_argument('--contact-sheet', default=None,
                   help='image with a few frames of each hit')
    q.add_argument('--frames-per-hit', type=positive_int, default=4)
    add_speed_args(q, dtype_help='precision of the text tower; must be the '
                   'index\'s (default: the index\'s)', batching=False,
                   compile=False)
    return p.parse_args(argv)


def cmd_index(args):
    from stan_mmaction.apis import StanInferencer, VideoProgress, list_videos
    from stan_mmaction.apis.search_index import (SearchIndexError, VideoIndex,
                                                 file_key)
    from stan_mmaction.utils.system import process_seconds
    if not osp.isdir(args.folder):
        raise SystemExit(f'{args.folder} is not a folder')
    resolve_speed_args(args)
    device = args.device
    config = osp.abspath(args.config)
    checkpoint = osp.abspath(args.checkpoint) if args.checkpoint else None
    index = VideoIndex.for_model(config, checkpoint, args.cfg_options)
    old = replaces = None
    if osp.isfile(args.index) and args.rebuild:
        try:  # what this run sets out to replace
            replaces = VideoIndex.load(args.index).fingerprint()
        except SearchIndexError:
            pass
    if osp.isfile(args.index) and not args.rebuild:
        try:
            old = VideoIndex.load(args.index)
        except SearchIndexError as err:
            raise SystemExit(str(err))
        why = old.same_model(index)
        if why:
            raise SystemExit(
                f'{args.index} was built with config {old.config} and '
                f'checkpoint {old.checkpoint}, another model: '
                f'{"; ".join(why)}. Its embeddings cannot be mixed with new '
                'ones: pass --rebuild to re-embed everything, or choose '
                'another --index')
    if old is not None and args.dtype is None:
        index.dtype = old.dtype
    else:
        index.dtype = resolve_dtype_arg(args.dtype or 'auto', device)
    if old is not None:
        why = old.dtype_mismatch(index.dtype, 'this index run',
                                 rebuild=True)
        if why:
            raise SystemExit(f'{args.index}: {why}')
        index.entries = {p: e for p, e in old.entries.items()
                         if osp.isfile(p)}
        index.removed = set(old.entries) - set(index.entries)
    videos = [osp.abspath(p) for p in list_videos(args.folder)]
    todo = [p for p in videos if p not in index.entries or
            index.entries[p]['key'] != file_key(p)]
    failed = []
    if todo:
        inferencer = StanInferencer(config, checkpoint, device, index.dtype,
                                    args.compile, args.cfg_options)
        warm = inferencer.warm_up('embed', args.batch_size) \
            if args.compile else 0.0
        print(f'Indexing {len(todo)} new or changed video(s) '
              f'({len(index.entries)} already indexed) in {index.dtype}'
              f'{", compiled," if args.compile else ""} on {device}',
              flush=True)
        progress = VideoProgress(len(todo), process_seconds() - warm, warm)
        for out in inferencer.iter_videos(todo, 'embed', args.window,
                                          args.batch_size, args.workers):
            if out.error:
                index.entries.pop(out.path, None)
                index.removed.add(out.path)
                failed.append(out.error)
            else:
                index.entries[out.path] = dict(key=file_key(out.path),
                                               embedding=out.embedding)
                index.removed.discard(out.path)
            progress.update()
            if progress.videos % args.save_every == 0 and \
                    progress.videos < len(todo):
                index.failed = failed
                save(index, args.index, replaces)  # survives a kill
                replaces = index.fingerprint()
        progress.finish()
    index.failed = failed
    save(index, args.index, replaces)
    print(f'Index {args.index}: {len(index.entries)} video(s)')
    if failed:
        print(f'{len(failed)} unreadable file(s) skipped:')
        for line in failed:
            print(f'  {line}')
    if todo:
        print(progress.line(index.dtype, args.compile))
        write_stats(args, progress, index.dtype)
    return index.entries, failed


def save(index, path, replaces):
    """``VideoIndex.save_merged``; another model's index written there
    meanwhile is kept and this run stops with the reason."""
    from stan_mmaction.apis.search_index import SearchIndexError
    try:
        index.save_merged(path, replaces=replaces)
    except SearchIndexError as err:
        raise SystemExit(str(err))


def query_model(args, index):
    """(config, checkpoint, cfg_options) of the model that answers: what
    the user named, or the index's files once their content is what the
    index recorded. Nothing of the index is merged into a config or built
    before that. Each fingerprint is computed once (a checkpoint can be
    gigabytes)."""
    from stan_mmaction.apis.search_index import (config_files_sha256,
                                                 config_sha256, file_sha256)
    if args.config:
        config, options = osp.abspath(args.config), args.cfg_options
        if config_sha256(config, options) != index.config_sha256:
            raise SystemExit(
                f'{args.index} was built with config {index.config}, not '
                f'{args.config}; query without --config, or re-index: python '
                f'tools/search.py index VIDEO_FOLDER --config {args.config} '
                f'--index NEW_INDEX')
    else:
        if index.cfg_options or args.cfg_options:
            raise SystemExit(
                f'{args.index} was built with --cfg-options '
                f'{index.cfg_options}; options are never taken from an '
                'index: pass --config and the same --cfg-options')
        config, options = index.config, None
        if not index.signed:
            raise SystemExit(
                f'{args.index} was not written by you on this machine (or '
                'was changed since): the config it names is not run. Pass '
                '--config (and --cfg-options) of the model that built it')
        if index.config_files_sha256 is None:
            raise SystemExit(f'{args.index} does not record the content of '
                             'its config files: pass --config')
        try:
            unchanged = config_files_sha256(config) == \
                index.config_files_sha256
        except (OSError, ValueError, SyntaxError):
            unchanged = False
        if not unchanged:
            raise SystemExit(
                f'the config {config} of {args.index} is gone or its bytes '
                '(or a _base_ file\'s) changed since the index was built; '
                'pass --config, or re-index (index ... --rebuild)')
        # Its files are the recorded ones; what they resolve to (pkg::
        # bases of installed packages) must be too.
        if config_sha256(config) != index.config_sha256:
            raise SystemExit(
                f'the model of {args.index} changed since it was built: the '
                f'resolved config differs ({config}; a pkg:: base may have '
                'changed). Re-index (index ... --rebuild) before querying')
    checkpoint = osp.abspath(args.checkpoint) if args.checkpoint else \
        index.checkpoint
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise SystemExit(f'the checkpoint {checkpoint} of {args.index} is '
                         'gone; re-index with the model you want to query')
    if file_sha256(checkpoint) != index.checkpoint_sha256:
        raise SystemExit(f'the model of {args.index} changed since it was '
                         f'built: the checkpoint differs ({checkpoint}; same '
                         'path or not, its content changed). Re-index '
                         '(index ... --rebuild) before querying')
    return config, checkpoint, options


def contact_sheet(path, hits, frames_per_hit, tile=(128, 96)):
    """One row per hit: ``frames_per_hit`` frames, score written on the
    first. Size: ``(len(hits) * tile_h, frames_per_hit * tile_w)``."""
    import cv2
    import numpy as np

    from stan_mmaction.apis import VideoReadError, iter_clips
    from stan_mmaction.utils.atomic import atomic_path
    w, h = tile
    rows = []
    for video, score in hits:
        try:
            clip = next(iter_clips(video, frames_per_hit, h, h))[0]
            tiles = [cv2.resize(f, (w, h)) for f in clip]
        except VideoReadError:
            tiles = [np.zeros((h, w, 3), np.uint8)] * frames_per_hit
        row = np.concatenate(tiles, axis=1)
        cv2.putText(row, f'{score:.3f} {osp.basename(video)}', (4, 14),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1,
                    cv2.LINE_AA)
        rows.append(row)
    sheet = np.concatenate(rows, axis=0)
    with atomic_path(path, suffix=osp.splitext(path)[1]) as tmp:
        try:
            written = cv2.imwrite(tmp, sheet[..., ::-1])
        except cv2.error:
            written = False
        if not written:
            raise SystemExit(f'cannot write the contact sheet {path} (use '
                             'an image name: .jpg, .png)')
    return sheet.shape


def cmd_query(args):
    from stan_mmaction.apis import StanInferencer
    from stan_mmaction.apis.search_index import SearchIndexError, VideoIndex
    if not osp.isfile(args.index):
        raise SystemExit(
            f'No index at {args.index}. Build one first: python '
            f'tools/search.py index VIDEO_FOLDER --config CONFIG '
            f'[--checkpoint CKPT] --index {args.index}')
    try:
        index = VideoIndex.load(args.index)
    except SearchIndexError as err:
        raise SystemExit(str(err))
    if not index.entries:
        raise SystemExit(f'{args.index} holds no videos')
    config, checkpoint, options = query_model(args, index)
    device = default_device(args.device)
    if args.dtype is not None:
        why = index.dtype_mismatch(resolve_dtype_arg(args.dtype, device),
                                   'this query')
        if why:
            raise SystemExit(f'{args.index}: {why}')
    inferencer = StanInferencer(config, checkpoint, device,
                                resolve_dtype_arg(index.dtype, device),
                                cfg_options=options)
    paths = sorted(index.entries)
    videos = torch.stack([index.entries[p]['embedding'] for p in paths])
    text = inferencer.embed_texts([args.text])[0]
    scores = videos @ text
    k = min(args.top_k, len(paths))
    values, order = scores.topk(k)
    hits = [(paths[i], float(v)) for v, i in zip(values, order)]
    for rank, (path, score) in enumerate(hits, start=1):
        print(f'{rank}\t{score:.4f}\t{path}')
    if args.contact_sheet:
        shape = contact_sheet(args.contact_sheet, hits, args.frames_per_hit)
        print(f'Contact sheet: {args.contact_sheet} ({shape[1]}x{shape[0]})')
    return hits


def main(argv=None):
    from stan_mmaction.apis.cli import one_line_errors
    args = parse_args(argv)
    with one_line_errors():
        return cmd_index(args) if args.command == 'index' else \
            cmd_query(args)


if __name__ == '__main__':
    main()
