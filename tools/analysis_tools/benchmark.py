"""Speed and memory of video models, measured side by side in one process.

For each config (ours or MMAction2's ``mmaction::...``, ``pretrained``
forced off): parameters, FLOPs (the corrected counter of get_flops.py),
inference latency and throughput at the given batch sizes and dtypes, the
training step (forward + backward + AdamW step), with and without gradient
checkpointing, and peak memory (CPU: the process's peak RSS above what it
held before the call, via ``/proc/self/clear_refs``; GPU:
``torch.cuda.max_memory_allocated``). Every number is the median of
``--repeats`` runs after ``--warmup`` runs, and the runs of all configs
alternate, so machine noise hits them alike. The machine's matmul rate is
measured in the same alternation. Optional: retrieval evaluation time and
memory for N videos x N captions, and data-loading throughput of the K400
training pipeline.

Writes ``results.json``, ``results.md`` and ``time_vs_frames.png`` (and
``retrieval_eval.png``) to ``--out-dir``.

Example (docs/performance.md):
    R=configs/recognition/stan
    python tools/analysis_tools/benchmark.py \\
        $R/clip-meanp_vit-base-p16-res224-clip-pre_1x1x8_k400-rgb.py \\
        $R/stan-attn_vit-base-p16-res224-clip-pre_1x1x8_k400-rgb.py \\
        $R/stan-conv_vit-base-p16-res224-clip-pre_1x1x8_k400-rgb.py \\
        --dtypes fp32 bf16 --train-batch 2 --grad-checkpointing \\
        --retrieval-sizes 1000 2000 5000 10000 20000 --data-loading
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import List

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import _bootstrap  # noqa: E402,F401
import torch  # noqa: E402

from stan_mmaction.analysis.cases import (DTYPES, ModelCase,  # noqa: E402
                                          embedding_cosine, probe_memories)
from stan_mmaction.analysis.profiling import matmul_rate  # noqa: E402
from stan_mmaction.analysis.profiling import measure_alternating  # noqa
from stan_mmaction.analysis.report import (markdown, plot,  # noqa: E402
                                           plot_retrieval)
from stan_mmaction.utils import load_config  # noqa: E402
from stan_mmaction.utils.atomic import atomic_write_text  # noqa: E402
from stan_mmaction.utils.system import machine  # noqa: E402


# -- probes -------------------------------------------------------------------
def data_loading(workers: List[int], samples: int, real_video: str,
                 work_dir: str) -> List[dict]:
    """Clips/s of the K400 8-frame training pipeline over synthetic MP4s
    (and a real MP4 when given) with 0, 1, 2 DataLoader workers
    (:func:`stan_mmaction.analysis.data_bench.clips_per_second`;
    ``tools/analysis_tools/benchmark_data.py`` measures more)."""
    from stan_mmaction.analysis.data_bench import clips_per_second
    from stan_mmaction.apis import list_videos
    from stan_mmaction.datasets import make_synthetic_dataset
    root = osp.join(work_dir, 'bench_videos')
    make_synthetic_dataset(root, dict(train=4), num_frames=64, size=320,
                           seed=0)
    cfg = load_config(osp.join(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))), 'configs', 'recognition', 'stan',
        'stan-attn_vit-base-p16-res224-clip-pre_1x1x8_k400-rgb.py'))
    steps = list(cfg.train_dataloader.dataset.pipeline)
    sources = [('synthetic 320x320, 64 frames', list_videos(root))]
    if real_video:
        sources.append((f'real: {osp.basename(real_video)}',
                        [osp.abspath(real_video)]))
    return [dict(source=label, workers=w,
                 clips_per_s=clips_per_second(paths, steps, w,
                                              samples)['clips_per_s'])
            for label, paths in sources for w in workers]


# -- main ---------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('configs', nargs='*', help='config files (mmaction:: ok)')
    p.add_argument('--batch-sizes', type=int, nargs='+', default=[1])
    p.add_argument('--frames', type=int, nargs='+', default=None,
                   help='frame counts of the time-vs-frames sweep (fp32, '
                   'batch 1); default: each config\'s own only')
    p.add_argument('--dtypes', nargs='+', default=['fp32'],
                   choices=sorted(DTYPES))
    p.add_argument('--compile', action='store_true',
                   help='also time torch.compile\'d forwards')
    p.add_argument('--train-batch', type=int, default=0,
                   help='time a training step at this batch (0: skip)')
    p.add_argument('--train-amp', choices=['bf16', 'fp16'], default=None,
                   help='time the training step with its forward under '
                   'torch.autocast in this dtype (as AmpOptimWrapper)')
    p.add_argument('--grad-checkpointing', action='store_true',
                   help='also time the training step with checkpointing')
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--repeats', type=int, default=7)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available()
                   else 'cpu')
    p.add_argument('--retrieval-sizes', type=int, nargs='*', default=[])
    p.add_argument('--hf-reference', action='store_true',
                   help='time each STAN-attn backbone against the same '
                   'architecture on transformers\' CLIPVisionModel (eager '
                   'attention, the authors\' path), in --dtypes; needs '
                   'transformers')
    p.add_argument('--data-loading', action='store_true')
    p.add_argument('--data-samples', type=int, default=24)
    p.add_argument('--real-video', default=None,
                   help='a real MP4 for the data-loading measurement')
    p.add_argument('--profile', action='store_true',
                   help='save torch.profiler tables of one fp32 forward (and '
                   'training step, with --train-batch) per config')
    p.add_argument('--out-dir', default='work_dirs/benchmark')
    return p.parse_args(argv)


def run_inference(cases: List[ModelCase], args, device: str,
                  results: dict) -> None:
    """Phase 1: inference of every config, batch and dtype, the frames
    sweep and the matmul rate, all in one alternation; then the time/FLOPs
    ratios to the first config and the low-precision speed-ups."""
    tasks, flops = {}, {}
    for name in args.dtypes:
        if name == 'fp32' or device == 'cuda' or name == 'bf16':
            fn, flops[('matmul', name)] = matmul_rate(DTYPES[name], device)
            tasks[('matmul', name)] = fn
    for case in cases:
        for batch in args.batch_sizes:
            for dtype in args.dtypes:
                tasks[(case.name, batch, dtype, False)] = case.infer(
                    batch, case.frames, dtype)
                if args.compile:
                    tasks[(case.name, batch, dtype, True)] = case.infer(
                        batch, case.frames, dtype, compiled=True)
        for frames in args.frames or []:
            if frames != case.frames:
                tasks[(case.name, 'frames', frames)] = case.infer(
                    1, frames, 'fp32')
    timing = measure_alternating(tasks, args.repeats, args.warmup, device)
    results['matmul'] = {
        k[1]: dict(seconds=v['seconds'],
                   gflops_per_s=flops[k] / v['seconds'] / 1e9)
        for k, v in timing.items() if k[0] == 'matmul'}
    for case in cases:
        for batch in args.batch_sizes:
            for dtype in args.dtypes:
                for compiled in ([False, True] if args.compile else [False]):
                    t = timing[(case.name, batch, dtype, compiled)]
                    results['inference'].append(dict(
                        model=case.name, config=case.config,
                        params=case.params, gflops=case.flops / 1e9,
                        batch=batch, dtype=dtype, compiled=compiled,
                        seconds=t['seconds'], runs=t['runs'],
                        clips_per_s=batch / t['seconds'],
                        gflops_per_s=batch * case.flops / t['seconds'] / 1e9,
                        peak_bytes=t['peak_bytes']))
        sweep = []
        for frames in sorted(set((args.frames or []) + [case.frames])):
            key = (case.name, 'frames', frames) if frames != case.frames \
                else (case.name, 1 if 1 in args.batch_sizes else
                      args.batch_sizes[0], 'fp32', False)
            if key in timing:
                sweep.append(dict(frames=frames,
                                  seconds=timing[key]['seconds']))
        results['frames_sweep'][case.name] = sweep

    def row(name, batch, dtype):
        for r in results['inference']:
            if (r['model'], r['batch'], r['dtype'], r['compiled']) == (
                    name, batch, dtype, False):
                return r

    b0 = args.batch_sizes[0]
    if cases:
        first = row(cases[0].name, b0, 'fp32')
        for case in cases[1:]:
            r = row(case.name, b0, 'fp32')
            results['ratios'].append(dict(
                model=case.name, time_ratio=r['seconds'] / first['seconds'],
                flops_ratio=case.flops / cases[0].flops))
    for case in cases:
        for dtype in args.dtypes:
            if dtype != 'fp32':
                results['low_precision'].append(dict(
                    model=case.name, dtype=dtype,
                    speedup=row(case.name, b0, 'fp32')['seconds'] /
                    row(case.name, b0, dtype)['seconds'],
                    cosine=embedding_cosine(case, dtype)))


def run_training(cases: List[ModelCase], args, device: str,
                 results: dict) -> None:
    """Phase 2: the training step (with and without gradient
    checkpointing) against inference of the same batch, in alternation,
    after three warm-up runs of each."""
    tasks = {}
    for case in cases:
        tasks[(case.name, 'train')] = case.train_step(
            args.train_batch, False, args.train_amp)
        tasks[(case.name, 'infer')] = case.infer(args.train_batch,
                                                 case.frames, 'fp32')
        if args.grad_checkpointing and case.has_grad_checkpointing:
            tasks[(case.name, 'ckpt')] = case.train_step(
                args.train_batch, True, args.train_amp)
    # Three warm-up steps: the first steps of a CPU process still grow its
    # heap to the training peak (9.6-13 s for STAN-attn B/16, then 9 s).
    timing = measure_alternating(tasks, max(1, args.repeats // 2), 3, device)
    for case in cases:
        t = timing[(case.name, 'train')]
        entry = dict(model=case.name, batch=args.train_batch,
                     amp=args.train_amp,
                     seconds=t['seconds'], peak_bytes=t['peak_bytes'],
                     x_inference=t['seconds'] /
                     timing[(case.name, 'infer')]['seconds'])
        if (case.name, 'ckpt') in timing:
            c = timing[(case.name, 'ckpt')]
            entry.update(ckpt_seconds=c['seconds'],
                         ckpt_peak_bytes=c['peak_bytes'])
        results['training'].append(entry)


def run_memory_probes(cases: List[ModelCase], args, results: dict) -> None:
    """Phase 3: peak memory (CPU) of inference and training re-measured in
    fresh processes (``stan_mmaction.analysis.cases.probe_memories``), and
    the retrieval evaluation of phase 5 (always on the CPU), all in one
    probe process."""
    wanted = []  # (row, key, probe): the models' peaks, on the CPU only
    if args.device == 'cpu':
        for row in results['inference']:
            if row['dtype'] == 'fp32' and not row['compiled']:
                wanted.append((row, 'peak_bytes',
                               [row['config'], 'infer', row['batch']]))
        for case, entry in zip(cases, results['training']):
            wanted.append((entry, 'peak_bytes',
                           [case.config, 'train', args.train_batch]))
            if 'ckpt_seconds' in entry:
                wanted.append((entry, 'ckpt_peak_bytes',
                               [case.config, 'ckpt', args.train_batch]))
    retrieval = [['-', 'retrieval', n] for n in args.retrieval_sizes]
    measured = probe_memories([probe for _, _, probe in wanted] + retrieval,
                              args.threads)
    for (row, key, _), result in zip(wanted, measured):
        row[key] = result['peak_bytes']
    return measured[len(wanted):]  # the retrieval evaluations


def run_profiles(cases: List[ModelCase], args) -> None:
    """Phase 4: ``torch.profiler`` tables of one forward (and one training
    step) per config."""
    from torch.profiler import ProfilerActivity, profile

    def save(prof, name):
        atomic_write_text(osp.join(args.out_dir, name),
                          prof.key_averages().table(
                              sort_by='self_cpu_time_total', row_limit=40))

    for case in cases:
        run = case.infer(1, case.frames, 'fp32')
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run()
        save(prof, f'profile_{case.name}.txt')
        if args.train_batch:
            step = case.train_step(args.train_batch, False)
            step()  # optimizer state allocated outside the profile
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                step()
            save(prof, f'profile_train_{case.name}.txt')


def run_retrieval_eval(args, results: dict, measured: List[dict]) -> None:
    """Phase 5: retrieval evaluation of N x N, each size measured in a
    fresh process (memory from a clean allocator, the time a user's test
    run pays; by :func:`run_memory_probes`)."""
    results['retrieval_eval'] = []
    for n, r in zip(args.retrieval_sizes, measured):
        results['retrieval_eval'].append(dict(
            n=n, seconds=r['seconds'], peak_extra_bytes=r['peak_bytes'],
            t2v_R1=r['t2v_R1']))
    plot_retrieval(results['retrieval_eval'],
                   osp.join(args.out_dir, 'retrieval_eval.png'))


def run_hf_reference(cases: List[ModelCase], args, results: dict) -> None:
    """Phase 6: each STAN-attn backbone against the same architecture on
    HuggingFace's CLIPVisionModel (``analysis.hf_reference``), per dtype,
    in alternation, at the first batch size (transformers checked in
    ``main`` before any measurement)."""
    from stan_mmaction.analysis.hf_reference import is_stan_attn, side_by_side
    rows = []
    for case in cases:
        backbone = getattr(case.model, 'backbone', None)
        if not is_stan_attn(backbone):
            continue
        x = case.input(args.batch_sizes[0], case.frames)
        for row in side_by_side(backbone, x, args.dtypes, args.repeats,
                                args.warmup, args.device):
            rows.append(dict(model=case.name, batch=args.batch_sizes[0],
                             **row))
    results['hf_reference'] = rows


def write_outputs(results: dict, args, with_models: bool) -> str:
    atomic_write_text(osp.join(args.out_dir, 'results.json'),
                      json.dumps(results, indent=1))
    table = markdown(results)
    atomic_write_text(osp.join(args.out_dir, 'results.md'), table)
    if with_models:
        plot(results, osp.join(args.out_dir, 'time_vs_frames.png'))
    return table


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    if device == 'cpu' and 'fp16' in args.dtypes:
        raise SystemExit('fp16 is for GPUs; on CPU use --dtypes fp32 bf16')
    if args.hf_reference:
        try:  # before minutes of measurements, not after them
            import transformers  # noqa: F401
        except ImportError:
            raise SystemExit('--hf-reference needs transformers installed')
    os.makedirs(args.out_dir, exist_ok=True)
    results = dict(machine=machine(), args=vars(args), inference=[],
                   frames_sweep={}, training=[], ratios=[],
                   low_precision=[])
    cases = [ModelCase(c, device, args.dtypes, args.compile)
             for c in args.configs]
    run_inference(cases, args, device, results)
    if args.train_batch:
        run_training(cases, args, device, results)
    retrieval = run_memory_probes(cases, args, results) \
        if device == 'cpu' or args.retrieval_sizes else []
    if args.profile:
        run_profiles(cases, args)
    if args.retrieval_sizes:
        run_retrieval_eval(args, results, retrieval)
    if args.hf_reference:
        run_hf_reference(cases, args, results)
    if args.data_loading:
        results['data_loading'] = data_loading(
            [0, 1, 2], args.data_samples, args.real_video, args.out_dir)
    sys.stdout.write(write_outputs(results, args, bool(cases)))
    return results


if __name__ == '__main__':
    main()
