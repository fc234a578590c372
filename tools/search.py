"""Text-to-video search over a folder of videos.

Index once (embeddings saved with the config and checkpoint they came from;
re-running adds new or changed files and drops deleted ones; unreadable
files are reported at the end and skipped), then query with text:

    python tools/search.py index VIDEO_FOLDER \\
        --config configs/stan_vitb32_msrvtt.py \\
        --checkpoint work_dirs/stan_vitb32_msrvtt/epoch_5.pth \\
        --index videos.idx
    python tools/search.py query "a man is cooking" --index videos.idx \\
        --top-k 5 \\
        --contact-sheet hits.jpg

Plain CLIP weights (no training) work too: index with a retrieval config
and no ``--checkpoint`` (weights from the config's ``pretrained``, e.g.
``configs/clip_meanp_vitb32_msrvtt.py`` with OpenAI CLIP).
"""
import argparse
import hashlib
import os
import os.path as osp
import sys

import _bootstrap  # noqa: F401
import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402
from mmengine.utils import ProgressBar  # noqa: E402

INDEX_VERSION = 1


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Text-to-video search')
    sub = p.add_subparsers(dest='command', required=True)
    ix = sub.add_parser('index', help='embed the videos of a folder')
    ix.add_argument('folder')
    ix.add_argument('--config', required=True)
    ix.add_argument('--checkpoint', default=None)
    ix.add_argument('--index', required=True, help='index file to write')
    ix.add_argument('--window', type=int, default=None,
                    help='frames per window for long videos (default: '
                    'one clip over the whole video)')
    ix.add_argument('--rebuild', action='store_true',
                    help='start a new index even if one with another '
                    'config exists')
    ix.add_argument('--cfg-options', nargs='+', action=DictAction)
    q = sub.add_parser('query', help='rank indexed videos for a text')
    q.add_argument('text')
    q.add_argument('--index', required=True)
    q.add_argument('--config', default=None,
                   help='must match the index (default: the index\'s)')
    q.add_argument('--top-k', type=int, default=5)
    q.add_argument('--contact-sheet', default=None,
                   help='image with a few frames of each hit')
    q.add_argument('--frames-per-hit', type=int, default=4)
    return p.parse_args(argv)


def fingerprint(config: str, cfg_options) -> str:
    """Hash of the config file and overrides (the checkpoint path is kept
    and compared beside it)."""
    with open(config, 'rb') as f:
        data = f.read()
    extra = repr(sorted((cfg_options or {}).items())).encode()
    return hashlib.sha1(data + extra).hexdigest()[:16]


def file_key(path: str):
    st = os.stat(path)
    return (st.st_size, int(st.st_mtime_ns))


def cmd_index(args):
    from stan_mmaction.apis import (VideoReadError, embed_video, init_model,
                                    list_videos)
    if not osp.isdir(args.folder):
        raise SystemExit(f'{args.folder} is not a folder')
    config = osp.abspath(args.config)
    checkpoint = osp.abspath(args.checkpoint) if args.checkpoint else None
    stamp = fingerprint(config, args.cfg_options)
    entries = {}
    if osp.isfile(args.index) and not args.rebuild:
        old = torch.load(args.index, weights_only=False)
        if (old['fingerprint'], old['checkpoint']) != (stamp, checkpoint):
            raise SystemExit(
                f'{args.index} was built with config {old["config"]} and '
                f'checkpoint {old["checkpoint"]}; index with those again, '
                'pass --rebuild to replace it, or choose another --index')
        entries = {p: e for p, e in old['entries'].items() if osp.isfile(p)}
    videos = [osp.abspath(p) for p in list_videos(args.folder)]
    todo = [p for p in videos
            if p not in entries or entries[p]['key'] != file_key(p)]
    model = init_model(config, checkpoint, cfg_options=args.cfg_options) \
        if todo else None
    failed = []
    if todo:
        print(f'Indexing {len(todo)} new or changed video(s) '
              f'({len(entries)} already indexed)', flush=True)
        bar = ProgressBar(len(todo), file=sys.stderr)
        for path in todo:
            try:
                emb = embed_video(model, path, args.window)
                entries[path] = dict(key=file_key(path), embedding=emb)
            except VideoReadError as err:
                entries.pop(path, None)
                failed.append(str(err))
            bar.update()
        sys.stderr.write('\n')
    tmp = args.index + '.tmp'
    torch.save(dict(version=INDEX_VERSION, config=config,
                    checkpoint=checkpoint, cfg_options=args.cfg_options,
                    fingerprint=stamp, entries=entries, failed=failed), tmp)
    os.replace(tmp, args.index)
    print(f'Index {args.index}: {len(entries)} video(s)')
    if failed:
        print(f'{len(failed)} unreadable file(s) skipped:')
        for line in failed:
            print(f'  {line}')
    return entries, failed


def contact_sheet(path, hits, frames_per_hit, tile=(128, 96)):
    """One row per hit: ``frames_per_hit`` frames, score written on the
    first. Size: ``(len(hits) * tile_h, frames_per_hit * tile_w)``."""
    import cv2
    import numpy as np

    from stan_mmaction.apis import VideoReadError, iter_clips
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
    cv2.imwrite(path, sheet[..., ::-1])
    return sheet.shape


def cmd_query(args):
    from stan_mmaction.apis import embed_texts, init_model
    if not osp.isfile(args.index):
        raise SystemExit(
            f'No index at {args.index}. Build one first: python '
            f'tools/search.py index VIDEO_FOLDER --config CONFIG '
            f'[--checkpoint CKPT] --index {args.index}')
    index = torch.load(args.index, weights_only=False)
    if args.config and fingerprint(osp.abspath(args.config),
                                   index['cfg_options']) != \
            index['fingerprint']:
        raise SystemExit(
            f'{args.index} was built with config {index["config"]}, not '
            f'{args.config}; query without --config, or re-index: python '
            f'tools/search.py index VIDEO_FOLDER --config {args.config} '
            f'--index NEW_INDEX')
    if not index['entries']:
        raise SystemExit(f'{args.index} holds no videos')
    model = init_model(index['config'], index['checkpoint'],
                       cfg_options=index['cfg_options'])
    paths = sorted(index['entries'])
    videos = torch.stack([index['entries'][p]['embedding'] for p in paths])
    text = embed_texts(model, [args.text])[0]
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
    args = parse_args(argv)
    return cmd_index(args) if args.command == 'index' else cmd_query(args)


if __name__ == '__main__':
    main()
