"""Prepare videos for training: re-encode each one once, smaller and with
frequent keyframes, so training pipelines decode fewer and smaller frames
per clip (docs/tools.md, "Preparing videos").

Every video under SRC (a folder, or with ``--list`` an MMAction2 video
list whose paths are relative to ``--root``) goes to DST under the same
relative path with the extension ``.mp4``: H.264, short side
``--short-side`` (never upscaled), a keyframe every
``--keyframe-interval`` frames, no audio, every frame kept. PyAV does the
work (its wheels carry FFmpeg): no ``ffmpeg`` command is needed.

Resumable: each file is written beside its place and renamed into it, and
``DST/manifest.json`` records what it became (size, frames, duration)
after each file; a re-run (after a crash or a kill) skips the files done.
Unreadable files are listed with the reason; the rest are done. With
``--list`` and ``--ann-out``, the list is written again with the new
names.

Example:
    python tools/data/prepare_videos.py data/kinetics400/videos_train \\
        data/kinetics400/videos_train_256 --workers 8
    python tools/data/prepare_videos.py \\
        data/sthv2/sthv2_train_list_videos.txt data/sthv2/videos_256 \\
        --list --root data/sthv2/videos \\
        --ann-out data/sthv2/sthv2_train_list_videos_256.txt
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import _bootstrap  # noqa: E402,F401

from stan_mmaction.utils.checks import positive_int  # noqa: E402

X264_PRESETS = ('ultrafast', 'superfast', 'veryfast', 'faster', 'fast',
                'medium', 'slow', 'slower', 'veryslow', 'placebo')
X264_TUNES = ('none', 'fastdecode', 'film', 'animation', 'grain',
              'stillimage', 'psnr', 'ssim', 'zerolatency')


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Re-encode videos for fast training (PyAV, H.264)')
    p.add_argument('src', help='folder of videos, or a video list (--list)')
    p.add_argument('dst', help='output folder')
    p.add_argument('--list', action='store_true',
                   help='SRC is an MMAction2 video list ("path label" per '
                   'line)')
    p.add_argument('--root', default=None,
                   help='with --list: the folder the listed paths are '
                   'relative to (default: the list file\'s folder)')
    p.add_argument('--ann-out', default=None,
                   help='with --list: write the list again with the '
                   'prepared names (.mp4) here')
    p.add_argument('--short-side', type=positive_int, default=256)
    p.add_argument('--keyframe-interval', type=positive_int, default=8)
    p.add_argument('--crf', type=int, default=23,
                   help='x264 quality (lower is better, larger)')
    p.add_argument('--preset', default='superfast', choices=X264_PRESETS,
                   help='x264 preset (superfast: >= 10x real time per core '
                   'for 640x272; slower presets give smaller files)')
    p.add_argument('--tune', default='fastdecode', choices=X264_TUNES,
                   help='x264 tune (fastdecode: ~10%% larger files that '
                   'decode ~1.6x faster; none: x264\'s default)')
    p.add_argument('--workers', type=positive_int, default=1,
                   help='encoding processes (one thread each)')
    return p.parse_args(argv)


def main(argv=None):
    """Run; ``argv`` as on the command line. Returns the manifest (plus
    ``done_before``/``done_now``)."""
    from stan_mmaction.apis.cli import one_line_errors
    args = parse_args(argv)
    with one_line_errors():
        return run(args)


def run(args):
    from mmengine.utils import ProgressBar

    from stan_mmaction.apis.video_prepare import (Settings,
                                                  check_outputs_apart,
                                                  folder_jobs, list_jobs,
                                                  prepare_videos,
                                                  rewrite_video_list)
    if args.ann_out and not args.list:
        raise SystemExit('--ann-out needs --list (a folder has no list to '
                         'rewrite)')
    if args.list:
        if not osp.isfile(args.src):
            raise SystemExit(f'{args.src}: no such list file')
        root = args.root or osp.dirname(osp.abspath(args.src))
        jobs, refused = list_jobs(args.src, root)
    else:
        if not osp.isdir(args.src):
            raise SystemExit(f'{args.src} is not a folder (a list file? '
                             'add --list)')
        jobs, refused = folder_jobs(args.src), {}
    if osp.abspath(args.dst) == osp.abspath(args.root or args.src):
        raise SystemExit('DST must differ from the source folder')
    check_outputs_apart(jobs)  # before anything is written
    settings = Settings(args.short_side, args.keyframe_interval, args.crf,
                        args.preset, args.tune)
    print(f'{len(jobs)} video(s) -> {args.dst} (short side '
          f'{settings.short_side}, a keyframe every '
          f'{settings.keyframe_interval} frames, {args.workers} '
          'worker(s))', flush=True)
    bar = ProgressBar(len(jobs)) if jobs else None
    result = prepare_videos(jobs, args.dst, settings, args.workers, refused,
                            progress=bar.update if bar else None)
    if bar is not None:
        # the skipped ones count as done
        for _ in result['done_before']:
            bar.update()
        sys.stdout.write('\n')
    print(f"{len(result['done_now'])} prepared, "
          f"{len(result['done_before'])} already done, "
          f"{len(result['failed'])} failed "
          f"({osp.join(args.dst, 'manifest.json')})")
    for src, why in sorted(result['failed'].items()):
        print(f'  {src}: {why}')
    if args.ann_out:
        written, left = rewrite_video_list(args.src, args.ann_out,
                                           result['files'])
        print(f'{args.ann_out}: {written} line(s)'
              + (f', {left} left out (not prepared)' if left else ''))
    return result


if __name__ == '__main__':
    main()
