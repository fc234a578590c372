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

Example (the README's Performance table):
    python tools/analysis_tools/benchmark.py configs/clip_meanp_vitb16_k400.py \\
        configs/stan_vitb16_k400.py configs/stan_conv_vitb16_k400.py \\
        --dtypes fp32 bf16 --train-batch 2 --grad-checkpointing \\
        --retrieval-sizes 1000 2000 5000 10000 20000 --data-loading
"""
import argparse
import copy
import json
import os
import os.path as osp
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import _bootstrap  # noqa: E402,F401

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from stan_mmaction.utils import (build_model_without_weights,  # noqa: E402
                                 load_config)
from stan_mmaction.utils.flops import count_flops  # noqa: E402

DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16,
          'fp16': torch.float16}


# -- memory ---------------------------------------------------------------------
def _rss_kb(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    return 0


class PeakMemory:
    """Peak memory of a block above what the process held when it began
    (bytes). CPU: resets the kernel's peak-RSS mark (VmHWM); GPU: CUDA's
    allocator statistics."""

    def __init__(self, device: str):
        self.device = device
        self.peak = 0

    def __enter__(self):
        if self.device == 'cuda':
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')  # reset VmHWM to the current RSS
            self.base = _rss_kb('VmRSS') * 1024
        return self

    def __exit__(self, *exc):
        if self.device == 'cuda':
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            self.peak = _rss_kb('VmHWM') * 1024 - self.base
        return False


def _sync(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def timed(fn: Callable, device: str) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


# -- models -----------------------------------------------------------------------
def input_size(cfg) -> int:
    return 32 if cfg.model.get('backbone', {}).get('arch') == 'tiny' else 224


def video_forward(model) -> Callable:
    """``(B, 3, T, H, W)`` -> the model's output for one view per clip."""
    if hasattr(model, 'encode_video'):
        return model.encode_video
    return lambda x: model(x[:, None], mode='tensor')


def set_grad_checkpointing(model, on: bool) -> bool:
    """Switch gradient checkpointing of a StanCLIPBackbone (CLIP blocks and
    branch); False when the model has no such switch."""
    backbone = getattr(model, 'backbone', None)
    if backbone is None or not hasattr(backbone, 'grad_checkpointing'):
        return False
    backbone.grad_checkpointing = on
    if getattr(backbone, 'stan_branch', None) is not None:
        backbone.stan_branch.grad_checkpointing = on
    return True


def _output_tensor(out):
    while isinstance(out, (tuple, list)):
        out = out[0]
    return out


class ModelCase:
    """One config: the model, its inputs and the callables to time."""

    def __init__(self, config: str, args, device: str):
        cfg = load_config(config)
        init_default_scope(cfg.get('default_scope', 'mmaction'))
        self.name = osp.splitext(osp.basename(config))[0]
        self.config = config
        self.size = input_size(cfg)
        self.frames = cfg.model.get('backbone', {}).get('num_frames', 8)
        self.device = device
        torch.manual_seed(0)
        self.model = build_model_without_weights(cfg.model).to(device).eval()
        self.params = sum(p.numel() for p in self.model.parameters())
        x = torch.randn(1, 3, self.frames, self.size, self.size)
        fwd = video_forward(self.model)
        with torch.no_grad():
            self.flops = count_flops(fwd, x.to(device))[0]
        self.variants = {'fp32': self.model}
        for name in args.dtypes:
            if name != 'fp32':
                # The whole model in the low precision (not autocast: on CPU
                # autocast re-casts weights at every op and ran 3.5x slower
                # than fp32 for open_clip ViT-B/16 here).
                self.variants[name] = copy.deepcopy(self.model).to(
                    DTYPES[name])
        if args.compile:
            self.compiled = {k: torch.compile(video_forward(m))
                             for k, m in self.variants.items()}

    def forward_fn(self, dtype: str, compiled: bool = False) -> Callable:
        if compiled:
            return self.compiled[dtype]
        return video_forward(self.variants[dtype])

    def infer(self, batch: int, frames: int, dtype: str,
              compiled: bool = False):
        x = torch.randn(batch, 3, frames, self.size, self.size,
                        device=self.device, dtype=DTYPES[dtype])
        fn = self.forward_fn(dtype, compiled)

        def run():
            with torch.inference_mode():
                return fn(x)
        return run

    def train_step(self, batch: int, checkpointing: bool):
        model = self.model
        x = torch.randn(batch, 3, self.frames, self.size, self.size,
                        device=self.device)
        optim = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=1e-6)
        fwd = video_forward(model)

        def run():
            ok = set_grad_checkpointing(model, checkpointing)
            if checkpointing and not ok:
                raise RuntimeError('no gradient checkpointing switch')
            model.train()
            out = _output_tensor(fwd(x))
            loss = out.float().square().mean()
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            model.eval()
            set_grad_checkpointing(model, False)
        return run


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 matmuls run at least at the fp32 rate."""
    try:
        with open('/proc/cpuinfo') as f:
            flags = f.read()
    except OSError:
        return False
    return 'avx512_bf16' in flags or 'amx_bf16' in flags


def matmul_rate(dtype: torch.dtype, device: str, n: int = 4096):
    if device == 'cpu' and dtype == torch.bfloat16 and \
            not cpu_has_native_bf16():
        n = 512  # emulated bf16 runs at <1 GFLOP/s; keep the run short
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return (lambda: a @ b), 2 * n**3


def embedding_cosine(case: ModelCase, dtype: str, batch: int = 1) -> float:
    """Mean cosine similarity of the ``dtype`` model's outputs to fp32."""
    torch.manual_seed(1)
    x = torch.randn(batch, 3, case.frames, case.size, case.size,
                    device=case.device)
    with torch.inference_mode():
        ref = _output_tensor(case.forward_fn('fp32')(x)).float()
        low = _output_tensor(case.forward_fn(dtype)(x.to(
            DTYPES[dtype]))).float()
    return F.cosine_similarity(ref.flatten(1), low.flatten(1)).mean().item()


# -- alternating measurements ---------------------------------------------------
def measure_alternating(tasks: Dict[str, Callable], repeats: int,
                        warmup: int, device: str) -> Dict[str, dict]:
    """``tasks``: key -> zero-argument callable. Warm each up, then run all
    of them ``repeats`` times in alternation; median seconds and peak
    memory (of the first timed run)."""
    for fn in tasks.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in tasks}
    memory = {}
    for r in range(repeats):
        for key, fn in tasks.items():
            if r == 0:
                with PeakMemory(device) as mem:
                    times[key].append(timed(fn, device))
                memory[key] = mem.peak
            else:
                times[key].append(timed(fn, device))
    return {k: dict(seconds=statistics.median(v), runs=v,
                    peak_bytes=memory[k]) for k, v in times.items()}


def retrieval_eval(sizes: List[int], dim: int = 512,
                   repeats: int = 1) -> List[dict]:
    from stan_mmaction.evaluation import retrieval_metrics
    out = []
    for n in sizes:
        gen = torch.Generator().manual_seed(n)
        video = F.normalize(torch.randn(n, dim, generator=gen), dim=-1)
        text = F.normalize(video + torch.randn(n, dim, generator=gen),
                           dim=-1)
        owner = torch.arange(n)
        runs, peak = [], 0
        for _ in range(repeats):
            with PeakMemory('cpu') as mem:
                start = time.perf_counter()
                metrics = retrieval_metrics(video, text, owner, dsl=True)
                runs.append(time.perf_counter() - start)
            peak = max(peak, mem.peak)
        out.append(dict(n=n, seconds=statistics.median(runs),
                        peak_extra_bytes=peak,
                        t2v_R1=metrics['t2v_R1']))
    return out


def data_loading(workers: List[int], samples: int, real_video: str,
                 work_dir: str) -> List[dict]:
    """Clips/s of the K400 8-frame training pipeline over synthetic MP4s
    (and a real MP4 when given) with 0, 1, 2 DataLoader workers."""
    from mmengine.dataset import pseudo_collate
    from torch.utils.data import DataLoader

    from stan_mmaction.datasets import StanVideoDataset, make_synthetic_dataset
    root = osp.join(work_dir, 'bench_videos')
    make_synthetic_dataset(root, dict(train=4), num_frames=64, size=320,
                           seed=0)
    cfg = load_config(osp.join(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))), 'configs', 'stan_vitb16_k400.py'))
    pipeline = cfg.train_dataloader.dataset.pipeline
    sources = [('synthetic 320x320, 64 frames', osp.join(
        root, 'train_list_videos.txt'), root)]
    if real_video:
        ann = osp.join(work_dir, 'real_list.txt')
        with open(ann, 'w') as f:
            f.write('\n'.join(f'{osp.abspath(real_video)} 0'
                              for _ in range(8)) + '\n')
        sources.append((f'real: {osp.basename(real_video)}', ann, ''))
    init_default_scope('mmaction')
    results = []
    for label, ann, prefix in sources:
        dataset = StanVideoDataset(ann, pipeline,
                                   data_prefix=dict(video=prefix))
        for w in workers:
            loader = DataLoader(dataset, batch_size=1, num_workers=w,
                                collate_fn=pseudo_collate, shuffle=True,
                                generator=torch.Generator().manual_seed(0))
            it, count = iter(loader), 0
            next(it)  # start-up (worker spawn, first decode)
            start = time.perf_counter()
            while count < samples:
                try:
                    next(it)
                except StopIteration:
                    it = iter(loader)
                    continue
                count += 1
            seconds = time.perf_counter() - start
            results.append(dict(source=label, workers=w,
                                clips_per_s=count / seconds))
    return results


# -- output -------------------------------------------------------------------------
def machine() -> dict:
    cpu = platform.processor()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    info = dict(cpu=cpu, threads=torch.get_num_threads(),
                cpu_capability=torch.backends.cpu.get_cpu_capability(),
                native_bf16=cpu_has_native_bf16(),
                torch=torch.__version__, python=platform.python_version())
    if torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name()
    return info


def plot(results: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, rows in results['frames_sweep'].items():
        frames = [r['frames'] for r in rows]
        ax.plot(frames, [r['seconds'] for r in rows], marker='o', label=name)
    ax.set_xlabel('frames (batch 1, fp32)')
    ax.set_ylabel('inference time (s)')
    ax.set_title(results['machine']['cpu'][:60], fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_retrieval(rows: List[dict], path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax1 = plt.subplots(figsize=(6, 4))
    n = [r['n'] for r in rows]
    ax1.plot(n, [r['seconds'] for r in rows], marker='o', color='C0')
    ax1.set_xlabel('N videos = N captions (all metrics, both directions, '
                   'DSL)')
    ax1.set_ylabel('time (s)', color='C0')
    ax2 = ax1.twinx()
    ax2.plot(n, [r['peak_extra_bytes'] / 2**20 for r in rows], marker='s',
             color='C1')
    ax2.set_ylabel('peak extra memory (MiB)', color='C1')
    ax1.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(results: dict) -> str:
    m = results['machine']
    lines = [f"Machine: {m['cpu']}, {m['threads']} threads, torch "
             f"{m['torch']}, CPU kernels {m['cpu_capability']}, native bf16: "
             f"{'yes' if m['native_bf16'] else 'no'}" +
             (f", GPU {m['gpu']}" if 'gpu' in m else ''), '']
    rates = results['matmul']
    lines.append('Matmul rate: ' + ', '.join(
        f'{k} {v["gflops_per_s"]:.0f} GFLOP/s' for k, v in rates.items()))
    lines += ['', '| model | params (M) | GFLOPs | batch | dtype | time (s) '
              '| clips/s | GFLOP/s | % of fp32 matmul | peak mem (MiB) |',
              '|---|---:|---:|---:|---|---:|---:|---:|---:|---:|']
    fp32_rate = rates['fp32']['gflops_per_s']
    for row in results['inference']:
        lines.append(
            f"| {row['model']} | {row['params'] / 1e6:.2f} | "
            f"{row['gflops']:.1f} | {row['batch']} | {row['dtype']}"
            f"{' compiled' if row.get('compiled') else ''} | "
            f"{row['seconds']:.3f} | {row['clips_per_s']:.2f} | "
            f"{row['gflops_per_s']:.0f} | "
            f"{100 * row['gflops_per_s'] / fp32_rate:.0f}% | "
            f"{row['peak_bytes'] / 2**20:.0f} |")
    if results.get('ratios'):
        lines += ['', '| model vs first | time ratio | FLOPs ratio | '
                  'time / FLOPs ratio |', '|---|---:|---:|---:|']
        for row in results['ratios']:
            lines.append(f"| {row['model']} | {row['time_ratio']:.3f} | "
                         f"{row['flops_ratio']:.3f} | "
                         f"{row['time_ratio'] / row['flops_ratio']:.3f} |")
    if results.get('low_precision'):
        lines += ['', '| model | dtype | speed-up vs fp32 | cosine to fp32 |',
                  '|---|---|---:|---:|']
        for row in results['low_precision']:
            lines.append(f"| {row['model']} | {row['dtype']} | "
                         f"{row['speedup']:.2f}x | {row['cosine']:.4f} |")
    if results.get('training'):
        lines += ['', '| model | batch | train step (s) | x inference | '
                  'peak mem (MiB) | with grad ckpt (s) | ckpt peak (MiB) | '
                  'memory cut | time x |',
                  '|---|---:|---:|---:|---:|---:|---:|---:|---:|']
        for row in results['training']:
            ck = row.get('ckpt_seconds')
            lines.append(
                f"| {row['model']} | {row['batch']} | {row['seconds']:.2f} | "
                f"{row['x_inference']:.2f} | "
                f"{row['peak_bytes'] / 2**20:.0f} | " +
                (f"{ck:.2f} | {row['ckpt_peak_bytes'] / 2**20:.0f} | "
                 f"{100 * (1 - row['ckpt_peak_bytes'] / row['peak_bytes']):.0f}"
                 f"% | {ck / row['seconds']:.2f} |" if ck else '- | - | - | - |'))
    if results.get('retrieval_eval'):
        lines += ['', '| N x N | time (s) | peak extra memory (MiB) |',
                  '|---:|---:|---:|']
        for row in results['retrieval_eval']:
            lines.append(f"| {row['n']} | {row['seconds']:.2f} | "
                         f"{row['peak_extra_bytes'] / 2**20:.0f} |")
    if results.get('data_loading'):
        lines += ['', '| video source | workers | clips/s |', '|---|---:|---:|']
        for row in results['data_loading']:
            lines.append(f"| {row['source']} | {row['workers']} | "
                         f"{row['clips_per_s']:.2f} |")
    return '\n'.join(lines) + '\n'


# -- main -------------------------------------------------------------------------
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
    p.add_argument('--grad-checkpointing', action='store_true',
                   help='also time the training step with checkpointing')
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--repeats', type=int, default=7)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available()
                   else 'cpu')
    p.add_argument('--retrieval-sizes', type=int, nargs='*', default=[])
    p.add_argument('--data-loading', action='store_true')
    p.add_argument('--data-samples', type=int, default=24)
    p.add_argument('--real-video', default=None,
                   help='a real MP4 for the data-loading measurement')
    p.add_argument('--profile', action='store_true',
                   help='save torch.profiler tables of one fp32 forward (and '
                   'training step, with --train-batch) per config')
    p.add_argument('--out-dir', default='work_dirs/benchmark')
    p.add_argument('--memory-probe', nargs=3, default=None,
                   metavar=('CONFIG', 'MODE', 'BATCH'),
                   help=argparse.SUPPRESS)
    return p.parse_args(argv)


def run_memory_probe(args) -> None:
    """In a fresh process (no allocator cache from earlier runs): build
    the model, then report the peak RSS of one run above the RSS before
    it."""
    config, mode, batch = args.memory_probe
    if mode == 'retrieval':  # batch = N videos = N captions
        row = retrieval_eval([int(batch)], repeats=1)[0]
        sys.stdout.write(json.dumps(dict(
            peak_bytes=row['peak_extra_bytes'], seconds=row['seconds'],
            t2v_R1=row['t2v_R1'])) + '\n')
        return
    args.dtypes = ['fp32']
    case = ModelCase(config, args, 'cpu')
    batch = int(batch)
    fn = case.infer(batch, case.frames, 'fp32') if mode == 'infer' else \
        case.train_step(batch, mode == 'ckpt')
    with PeakMemory('cpu') as mem:
        fn()
    sys.stdout.write(json.dumps(dict(peak_bytes=mem.peak)) + '\n')


def probe_memory(config: str, mode: str, batch: int, threads) -> int:
    """Peak extra CPU memory of one run, measured in a fresh process:
    in a long-lived one the allocator keeps freed memory and later peaks
    look smaller than they are."""
    import subprocess
    cmd = [sys.executable, osp.abspath(__file__), '--memory-probe', config,
           mode, str(batch)]
    if threads:
        cmd += ['--threads', str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result if mode == 'retrieval' else result['peak_bytes']


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_probe:
        return run_memory_probe(args)
    os.makedirs(args.out_dir, exist_ok=True)
    device = args.device
    if device == 'cpu' and 'fp16' in args.dtypes:
        raise SystemExit('fp16 is for GPUs; on CPU use --dtypes fp32 bf16')
    results = dict(machine=machine(), args=vars(args), inference=[],
                   frames_sweep={}, training=[], ratios=[],
                   low_precision=[])
    cases = [ModelCase(c, args, device) for c in args.configs]

    # Inference (and the matmul rate) in alternation.
    tasks, keys = {}, {}
    for name in args.dtypes:
        if name == 'fp32' or device == 'cuda' or name == 'bf16':
            fn, flops = matmul_rate(DTYPES[name], device)
            tasks[('matmul', name)] = fn
            keys[('matmul', name)] = flops
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
                   gflops_per_s=keys[k] / v['seconds'] / 1e9)
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

    if args.train_batch:
        tasks = {}
        for case in cases:
            tasks[(case.name, 'train')] = case.train_step(args.train_batch,
                                                          False)
            tasks[(case.name, 'infer')] = case.infer(args.train_batch,
                                                     case.frames, 'fp32')
            if args.grad_checkpointing and set_grad_checkpointing(
                    case.model, False):
                tasks[(case.name, 'ckpt')] = case.train_step(
                    args.train_batch, True)
        timing = measure_alternating(tasks, max(1, args.repeats // 2),
                                     1, device)
        for case in cases:
            t = timing[(case.name, 'train')]
            entry = dict(model=case.name, batch=args.train_batch,
                         seconds=t['seconds'], peak_bytes=t['peak_bytes'],
                         x_inference=t['seconds'] /
                         timing[(case.name, 'infer')]['seconds'])
            if (case.name, 'ckpt') in timing:
                c = timing[(case.name, 'ckpt')]
                entry.update(ckpt_seconds=c['seconds'],
                             ckpt_peak_bytes=c['peak_bytes'])
            results['training'].append(entry)

    if device == 'cpu':
        # Memory in fresh processes (see probe_memory).
        for row in results['inference']:
            if row['dtype'] == 'fp32' and not row['compiled']:
                row['peak_bytes'] = probe_memory(row['config'], 'infer',
                                                 row['batch'], args.threads)
        for case, entry in zip(cases, results['training']):
            entry['peak_bytes'] = probe_memory(case.config, 'train',
                                               args.train_batch, args.threads)
            if 'ckpt_seconds' in entry:
                entry['ckpt_peak_bytes'] = probe_memory(
                    case.config, 'ckpt', args.train_batch, args.threads)

    if args.profile:
        from torch.profiler import ProfilerActivity, profile
        for case in cases:
            run = case.infer(1, case.frames, 'fp32')
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                run()
            with open(osp.join(args.out_dir, f'profile_{case.name}.txt'),
                      'w') as f:
                f.write(prof.key_averages().table(
                    sort_by='self_cpu_time_total', row_limit=30))
            if args.train_batch:
                step = case.train_step(args.train_batch, False)
                step()  # optimizer state allocated outside the profile
                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    step()
                with open(osp.join(args.out_dir,
                                   f'profile_train_{case.name}.txt'),
                          'w') as f:
                    f.write(prof.key_averages().table(
                        sort_by='self_cpu_time_total', row_limit=40))

    if args.retrieval_sizes:
        # Each size in a fresh process: memory from a clean allocator, and
        # the time of one evaluation as a user's test run would pay it.
        results['retrieval_eval'] = []
        for n in args.retrieval_sizes:
            r = probe_memory('-', 'retrieval', n, args.threads)
            results['retrieval_eval'].append(dict(
                n=n, seconds=r['seconds'], peak_extra_bytes=r['peak_bytes'],
                t2v_R1=r['t2v_R1']))
        plot_retrieval(results['retrieval_eval'],
                       osp.join(args.out_dir, 'retrieval_eval.png'))
    if args.data_loading:
        results['data_loading'] = data_loading(
            [0, 1, 2], args.data_samples, args.real_video, args.out_dir)

    with open(osp.join(args.out_dir, 'results.json'), 'w') as f:
        json.dump(results, f, indent=1)
    table = markdown(results)
    with open(osp.join(args.out_dir, 'results.md'), 'w') as f:
        f.write(table)
    if cases:
        plot(results, osp.join(args.out_dir, 'time_vs_frames.png'))
    sys.stdout.write(table)
    return results


if __name__ == '__main__':
    main()
