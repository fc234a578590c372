"""Recognise the action in one video file (MMAction2's demo conventions).

Prints the top-5 labels with scores. Long videos are read in sliding
windows (``--window`` frames each; one clip per window, scores averaged), so
memory does not grow with the video. Optionally writes the video annotated
with each window's top label (``--out-file x.mp4`` or ``x.gif``).

Works with our configs and with MMAction2's own recognition configs
(``mmaction::recognition/...``).

Speed: ``--dtype auto|fp32|bf16|fp16`` casts the model (auto: bf16 on GPUs
and on CPUs with native bf16, fp32 elsewhere), ``--compile`` compiles the
backbone after a reported warm-up, windows are decoded in a worker process
while the model runs and go through it ``--batch-size`` at a time.

Example:
    R=configs/recognition/stan
    python demo/demo.py video.mp4 \\
        $R/stan-attn_vit-base-p16-res224-clip-pre_1x1x8_k400-rgb.py \\
        work_dirs/\
stan-attn_vit-base-p16-res224-clip-pre_1x1x8_k400-rgb/epoch_30.pth \\
        --label-map data/kinetics400/label_map_k400.txt
    # zero-shot, no checkpoint:
    python demo/demo.py video.mp4 \\
        $R/clip-zeroshot_vit-base-p16-res224-clip-pre_1x1x8_k400-rgb.py none \\
        --label-map data/kinetics400/label_map_k400.txt
"""
import argparse
import os
import os.path as osp

from mmengine.config import DictAction

# Repairs the pinned stack before any config is parsed, registers our modules.
import stan_mmaction  # noqa: F401
from stan_mmaction.apis import (StanInferencer, VideoProgress, VideoReadError,
                                open_video)
from stan_mmaction.apis.cli import (add_speed_args, resolve_dtype_arg,
                                    resolve_speed_args)
from stan_mmaction.models import read_class_names
from stan_mmaction.utils.atomic import atomic_path
from stan_mmaction.utils.checks import positive_int
from stan_mmaction.utils.system import process_seconds


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='STAN / MMAction2 video demo')
    p.add_argument('video', help='video file')
    p.add_argument('config', help='config file (mmaction:: paths work)')
    p.add_argument('checkpoint', help='checkpoint file, or "none"')
    p.add_argument('--label-map', required=True,
                   help='class names, one per line (label index order)')
    p.add_argument('--window', type=positive_int, default=None,
                   help='frames per sliding window (default: the whole '
                   'video as one clip if it has at most 300 frames, else '
                   '300)')
    p.add_argument('--top-k', type=positive_int, default=5)
    p.add_argument('--out-file', default=None,
                   help='annotated output video (.mp4) or animation (.gif); '
                   'its folder is created')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    add_speed_args(p)
    return p.parse_args(argv)


OUT_EXTS = ('.mp4', '.gif')


def write_annotated(path, video, windows, labels, max_side=320):
    """Re-read the video (frame by frame, decoded at most ``max_side`` px)
    and write it with the top label of the window each frame belongs to,
    to a temporary file renamed to ``path`` once complete."""
    with atomic_path(path, suffix=osp.splitext(path)[1]) as tmp:
        _write_annotated(tmp, video, windows, labels, max_side)
        if not osp.isfile(tmp) or os.path.getsize(tmp) == 0:
            raise SystemExit(f'could not write {path} (OpenCV wrote '
                             'nothing; is an MP4 encoder available?)')


def _write_annotated(path, video, windows, labels, max_side):
    import cv2
    reader, _ = open_video(video, max_side)
    h, w = reader[0].shape[:2]
    scale = min(1.0, max_side / max(h, w))
    size = (int(w * scale) // 2 * 2, int(h * scale) // 2 * 2)
    gif = path.lower().endswith('.gif')
    frames, writer = [], None
    if not gif:
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'),
                                 float(reader.get_avg_fps() or 25), size)
        if not writer.isOpened():
            raise SystemExit(f'OpenCV cannot write {path}')
    step = max(1, len(reader) // 100) if gif else 1
    for (start, end), text in zip(windows, labels):
        for i in range(start, end, step):
            frame = cv2.resize(reader[i].asnumpy(), size)
            cv2.putText(frame, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (255, 255, 255), 1, cv2.LINE_AA)
            if gif:
                frames.append(frame)
            else:
                writer.write(frame[..., ::-1])
    if gif:
        from PIL import Image
        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:],
                       duration=80, loop=0)
    else:
        writer.release()


def main(argv=None):
    from stan_mmaction.apis.cli import one_line_errors
    args = parse_args(argv)
    with one_line_errors():
        return run(args)


def run(args):
    if args.out_file and not args.out_file.lower().endswith(OUT_EXTS):
        raise SystemExit(f'--out-file {args.out_file}: use a .mp4 or .gif '
                         'name')
    checkpoint = None if args.checkpoint.lower() == 'none' else \
        args.checkpoint
    labels = read_class_names(args.label_map)
    resolve_speed_args(args)
    device = args.device
    dtype = resolve_dtype_arg(args.dtype or 'auto', device)
    inferencer = StanInferencer(args.config, checkpoint, device, dtype,
                                args.compile, args.cfg_options)

    try:
        _, total = open_video(args.video)
    except VideoReadError as err:
        raise SystemExit(f'Cannot read {args.video}: {err}')
    window = args.window or (total if total <= 300 else 300)
    warm = inferencer.warm_up('predict', args.batch_size) \
        if args.compile else 0.0
    progress = VideoProgress(1, process_seconds() - warm, warm)
    result = next(inferencer.iter_videos([args.video], 'predict', window,
                                         args.batch_size, args.workers))
    if result.error:
        raise SystemExit(result.error)
    progress.update()
    progress.finish()
    scores = result.outputs
    if scores.shape[1] != len(labels):
        raise SystemExit(f'the model has {scores.shape[1]} classes, '
                         f'{args.label_map} names {len(labels)}')
    tops = [f'{labels[int(s.argmax())]} {float(s.max()):.2f}'
            for s in scores]
    mean = scores.mean(0)
    k = min(args.top_k, mean.numel())
    values, indices = mean.topk(k)
    print(f'Top-{k} labels for {args.video} ({total} frames, '
          f'{len(result.spans)} window(s)):')
    for rank, (v, i) in enumerate(zip(values.tolist(), indices.tolist()),
                                  start=1):
        print(f'{rank}. {labels[i]}: {v:.4f}')
    if args.out_file:
        write_annotated(args.out_file, args.video, result.spans, tops)
        print(f'Annotated output: {args.out_file}')
    print(progress.line(dtype, args.compile))
    return [(labels[i], v) for v, i in zip(values.tolist(),
                                           indices.tolist())]


if __name__ == '__main__':
    main()
