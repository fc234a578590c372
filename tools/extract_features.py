"""Per-video embeddings for downstream use, from any of our configs.

    python tools/extract_features.py CONFIG [--checkpoint CKPT] \\
        --videos FOLDER_OR_LIST --out-dir feats/ [--format npy|pt] [--window N]

``--videos`` is a folder (searched recursively) or a text file with one
video path per line (MMAction2 list files work: the first field is used,
relative to ``--data-prefix``). Each video gives ``<out-dir>/<relative
path>.npy`` (or ``.pt``): the L2-normalised video embedding ``(E,)``
(retrieval configs: the video tower; recognition configs: the backbone's
output). Unreadable videos are listed in ``<out-dir>/failed.txt``.
"""
import argparse
import os
import os.path as osp
import sys

import _bootstrap  # noqa: F401
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402
from mmengine.utils import ProgressBar  # noqa: E402


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
    p.add_argument('--window', type=int, default=None,
                   help='frames per window for long videos')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def video_list(source: str, prefix: str):
    """[(absolute path, name relative to the source)]"""
    from stan_mmaction.apis import list_videos
    if osp.isdir(source):
        return [(p, osp.relpath(p, source)) for p in list_videos(source)]
    if not osp.isfile(source):
        raise SystemExit(f'{source}: neither a folder nor a list file')
    out = []
    with open(source) as f:
        for line in f:
            if line.strip():
                rel = line.split()[0]
                out.append((osp.join(prefix, rel), rel.lstrip('/')))
    return out


def main(argv=None):
    args = parse_args(argv)
    from stan_mmaction.apis import VideoReadError, embed_video, init_model
    from stan_mmaction.utils.checkpoint import UnsafeCheckpointError
    try:
        model = init_model(args.config, args.checkpoint,
                           cfg_options=args.cfg_options)
    except UnsafeCheckpointError as err:
        raise SystemExit(f'Error: {err}')
    videos = video_list(args.videos, args.data_prefix)
    os.makedirs(args.out_dir, exist_ok=True)
    failed, written = [], []
    bar = ProgressBar(len(videos), file=sys.stderr)
    for path, rel in videos:
        try:
            emb = embed_video(model, path, args.window)
        except VideoReadError as err:
            failed.append(str(err))
            bar.update()
            continue
        out = osp.join(args.out_dir, osp.splitext(rel)[0] + '.' + args.format)
        os.makedirs(osp.dirname(out), exist_ok=True)
        if args.format == 'npy':
            np.save(out, emb.numpy())
        else:
            torch.save(emb, out)
        written.append(out)
        bar.update()
    sys.stderr.write('\n')
    with open(osp.join(args.out_dir, 'failed.txt'), 'w') as f:
        f.write(''.join(line + '\n' for line in failed))
    print(f'{len(written)} embedding(s) in {args.out_dir}; '
          f'{len(failed)} unreadable (failed.txt)')
    for line in failed:
        print(f'  {line}')
    return written, failed


if __name__ == '__main__':
    main()
