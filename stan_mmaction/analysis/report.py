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


def md_table(columns: str, align: str, rows) -> List[str]:
    """A markdown table after a blank line: ``columns`` and ``align``
    (``'|'``-separated header cells and their ``---``/``---:`` marks),
    then one line per row of cells."""
    return ['', f'| {columns} |', f'|{align}|'] + [
        '| ' + ' | '.join(map(str, cells)) + ' |' for cells in rows]


def _training_cells(row: dict) -> list:
    ck = row.get('ckpt_seconds')
    amp = f" (amp {row['amp']})" if row.get('amp') else ''
    cells = [f"{row['model']}{amp}", row['batch'], f"{row['seconds']:.2f}",
             f"{row['x_inference']:.2f}", f"{row['peak_bytes'] / 2**20:.0f}"]
    if not ck:
        return cells + ['-'] * 4
    cut = 100 * (1 - row['ckpt_peak_bytes'] / row['peak_bytes'])
    return cells + [f'{ck:.2f}', f"{row['ckpt_peak_bytes'] / 2**20:.0f}",
                    f'{cut:.0f}%', f"{ck / row['seconds']:.2f}"]


def markdown(results: dict) -> str:
    lines = [machine_line(results['machine']), '']
    rates = results['matmul']
    lines.append('Matmul rate: ' + ', '.join(
        f'{k} {v["gflops_per_s"]:.0f} GFLOP/s' for k, v in rates.items()))
    fp32_rate = rates['fp32']['gflops_per_s']
    lines += md_table(
        'model | params (M) | GFLOPs | batch | dtype | time (s) | clips/s | '
        'GFLOP/s | % of fp32 matmul | peak mem (MiB)',
        '---|---:|---:|---:|---|---:|---:|---:|---:|---:',
        ([r['model'], f"{r['params'] / 1e6:.2f}", f"{r['gflops']:.1f}",
          r['batch'], r['dtype'] + (' compiled' if r.get('compiled') else ''),
          f"{r['seconds']:.3f}", f"{r['clips_per_s']:.2f}",
          f"{r['gflops_per_s']:.0f}",
          f"{100 * r['gflops_per_s'] / fp32_rate:.0f}%",
          f"{r['peak_bytes'] / 2**20:.0f}"] for r in results['inference']))
    if results.get('ratios'):
        lines += md_table(
            'model vs first | time ratio | FLOPs ratio | time / FLOPs ratio',
            '---|---:|---:|---:',
            ([r['model'], f"{r['time_ratio']:.3f}", f"{r['flops_ratio']:.3f}",
              f"{r['time_ratio'] / r['flops_ratio']:.3f}"]
             for r in results['ratios']))
    if results.get('low_precision'):
        lines += md_table(
            'model | dtype | speed-up vs fp32 | cosine to fp32',
            '---|---|---:|---:',
            ([r['model'], r['dtype'], f"{r['speedup']:.2f}x",
              f"{r['cosine']:.4f}"] for r in results['low_precision']))
    if results.get('training'):
        lines += md_table(
            'model | batch | train step (s) | x inference | peak mem (MiB) | '
            'with grad ckpt (s) | ckpt peak (MiB) | memory cut | time x',
            '---|---:|---:|---:|---:|---:|---:|---:|---:',
            map(_training_cells, results['training']))
    if results.get('retrieval_eval'):
        lines += md_table(
            'N x N | time (s) | peak extra memory (MiB)', '---:|---:|---:',
            ([r['n'], f"{r['seconds']:.2f}",
              f"{r['peak_extra_bytes'] / 2**20:.0f}"]
             for r in results['retrieval_eval']))
    if results.get('hf_reference'):
        lines += md_table(
            'model | batch | dtype | ours (s) | HF CLIPVisionModel path (s) | '
            'ours faster by | max abs diff',
            '---|---:|---|---:|---:|---:|---:',
            ([r['model'], r['batch'], r['dtype'], f"{r['ours_s']:.3f}",
              f"{r['hf_s']:.3f}", f"{r['speedup']:.2f}x",
              f"{r['max_abs_diff']:.1e}"] for r in results['hf_reference']))
    if results.get('data_loading'):
        lines += md_table(
            'video source | workers | clips/s', '---|---:|---:',
            ([r['source'], r['workers'], f"{r['clips_per_s']:.2f}"]
             for r in results['data_loading']))
    return '\n'.join(lines) + '\n'
