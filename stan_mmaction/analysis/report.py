"""The benchmark's outputs: the markdown tables and the plots of
``benchmark.py``'s results dict."""
from typing import List

from ..utils.atomic import atomic_savefig


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
    atomic_savefig(fig, path, dpi=120)
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
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)


def machine_line(m: dict) -> str:
    """``Machine: CPU, threads, torch, kernels, bf16 (, GPU)`` from
    ``stan_mmaction.utils.system.machine()``."""
    return (f"Machine: {m['cpu']}, {m['threads']} threads, torch "
            f"{m['torch']}, CPU kernels {m['cpu_capability']}, native bf16: "
            f"{'yes' if m['native_bf16'] else 'no'}" +
            (f", GPU {m['gpu']}" if 'gpu' in m else ''))


def markdown(results: dict) -> str:
    lines = [machine_line(results['machine']), '']
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
            cut = 100 * (1 - row.get('ckpt_peak_bytes', 0) / row['peak_bytes'])
            lines.append(
                f"| {row['model']}"
                f"{' (amp ' + row['amp'] + ')' if row.get('amp') else ''} | "
                f"{row['batch']} | {row['seconds']:.2f} | "
                f"{row['x_inference']:.2f} | "
                f"{row['peak_bytes'] / 2**20:.0f} | " +
                (f"{ck:.2f} | {row['ckpt_peak_bytes'] / 2**20:.0f} | "
                 f"{cut:.0f}% | {ck / row['seconds']:.2f} |" if ck
                 else '- | - | - | - |'))
    if results.get('retrieval_eval'):
        lines += ['', '| N x N | time (s) | peak extra memory (MiB) |',
                  '|---:|---:|---:|']
        for row in results['retrieval_eval']:
            lines.append(f"| {row['n']} | {row['seconds']:.2f} | "
                         f"{row['peak_extra_bytes'] / 2**20:.0f} |")
    if results.get('hf_reference'):
        lines += ['', '| model | batch | dtype | ours (s) | HF '
                  'CLIPVisionModel path (s) | ours faster by | max abs '
                  'diff |',
                  '|---|---:|---|---:|---:|---:|---:|']
        for row in results['hf_reference']:
            lines.append(f"| {row['model']} | {row['batch']} | "
                         f"{row['dtype']} | {row['ours_s']:.3f} | "
                         f"{row['hf_s']:.3f} | {row['speedup']:.2f}x | "
                         f"{row['max_abs_diff']:.1e} |")
    if results.get('data_loading'):
        lines += ['', '| video source | workers | clips/s |',
                  '|---|---:|---:|']
        for row in results['data_loading']:
            lines.append(f"| {row['source']} | {row['workers']} | "
                         f"{row['clips_per_s']:.2f} |")
    return '\n'.join(lines) + '\n'
