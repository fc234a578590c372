"""One table for any mix of our and MMAction2's configs.

    python tools/analysis_tools/compare.py CONFIG [CONFIG ...] \\
        [--work-dirs DIR [DIR ...]] [--out-dir work_dirs/compare]

For each config: parameters, GFLOPs of one test view (our counter,
multiply-add = 2), inference latency and throughput at ``--batch`` (all
models timed in alternation in this process, median of ``--repeats``),
peak memory of one inference (each in a fresh process), and, from its work
dir (``tools/train.py`` then ``tools/test.py``), the training time per
epoch (MMEngine's logged iteration times) and the test result
(``test_metrics.json``: top-1 for recognition, text-to-video R@1 for
retrieval). Writes ``results.md`` (naming the machine), ``results.csv`` and
``results.png`` (result vs GFLOPs and vs latency) to ``--out-dir``.
"""
import argparse
import csv
import glob
import io
import json
import os.path as osp
import sys
from typing import List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import _bootstrap  # noqa: E402,F401
import torch  # noqa: E402

from stan_mmaction.analysis.cases import ModelCase, probe_memories  # noqa
from stan_mmaction.analysis.profiling import measure_alternating  # noqa
from stan_mmaction.analysis.report import machine_line  # noqa: E402
from stan_mmaction.utils.atomic import atomic_savefig  # noqa: E402
from stan_mmaction.utils.atomic import atomic_write_text  # noqa: E402
from stan_mmaction.utils.checks import positive_int  # noqa: E402
from stan_mmaction.utils.system import machine  # noqa: E402

COLUMNS = ('model', 'params (M)', 'GFLOPs', 'latency (ms)', 'clips/s',
           'peak memory (MiB)', 'train s/epoch', 'metric', 'result')
#: test_metrics.json keys, in order of preference, and their scale to %.
RESULT_KEYS = (('acc/top1', 'top-1 (%)', 100.0),
               ('retrieval/t2v_R1', 't2v R@1 (%)', 1.0))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('configs', nargs='+', help='config files (mmaction:: '
                   'paths work)')
    p.add_argument('--work-dirs', nargs='+', default=None,
                   help='one per config, in the same order (default: '
                   'work_dirs/<config name>); missing ones leave the '
                   'training and result columns empty')
    p.add_argument('--names', nargs='+', default=None,
                   help='row names (default: the config names)')
    p.add_argument('--batch', type=positive_int, default=1)
    p.add_argument('--repeats', type=positive_int, default=5)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--threads', type=positive_int, default=None)
    p.add_argument('--out-dir', default='work_dirs/compare')
    args = p.parse_args(argv)
    for flag, values in (('--work-dirs', args.work_dirs),
                         ('--names', args.names)):
        if values is not None and len(values) != len(args.configs):
            p.error(f'{flag}: {len(values)} given for '
                    f'{len(args.configs)} configs')
    return args


def training_seconds_per_epoch(work_dir: str) -> Optional[float]:
    """Mean logged iteration time x iterations per epoch, from the newest
    run's ``vis_data/scalars.json`` in ``work_dir``."""
    runs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                     'scalars.json')))
    if not runs:
        return None
    times, iters, epochs = [], 0, 0
    with open(runs[-1], encoding='utf-8') as f:
        for line in f:
            rec = json.loads(line)
            if 'loss' in rec and 'time' in rec and 'epoch' in rec:
                times.append(rec['time'])
                iters = max(iters, rec.get('iter', rec.get('step', 0)))
                epochs = max(epochs, rec['epoch'])
    if not times or not epochs:
        return None
    return sum(times) / len(times) * iters / epochs


def test_result(work_dir: str):
    """(metric name, value in %) from ``test_metrics.json``, or Nones."""
    path = osp.join(work_dir, 'test_metrics.json')
    if not osp.isfile(path):
        return None, None
    with open(path, encoding='utf-8') as f:
        metrics = json.load(f)
    for key, name, scale in RESULT_KEYS:
        if key in metrics:
            return name, metrics[key] * scale
    return None, None


def measure(args) -> List[dict]:
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.names or [osp.splitext(osp.basename(c))[0]
                           for c in args.configs]
    work_dirs = args.work_dirs or [osp.join('work_dirs', n) for n in names]
    cases = [ModelCase(c, 'cpu') for c in args.configs]
    timing = measure_alternating(
        {case.name: case.infer(args.batch, case.frames, 'fp32')
         for case in cases}, args.repeats, args.warmup)
    peaks = probe_memories([[case.config, 'infer', args.batch]
                            for case in cases], args.threads)
    rows = []
    for name, case, work, peak in zip(names, cases, work_dirs, peaks):
        metric, value = test_result(work)
        seconds = timing[case.name]['seconds']
        rows.append({
            'model': name,
            'params (M)': case.params / 1e6,
            'GFLOPs': case.flops / 1e9,
            'latency (ms)': 1000 * seconds,
            'clips/s': args.batch / seconds,
            'peak memory (MiB)': peak['peak_bytes'] / 2**20,
            'train s/epoch': training_seconds_per_epoch(work),
            'metric': metric,
            'result': value,
        })
    return rows


def _cell(value) -> str:
    if value is None:
        return '-'
    if isinstance(value, float):
        return f'{value:.3g}' if value < 10 else f'{value:.1f}'
    return str(value)


def markdown(rows: List[dict], where: str) -> str:
    lines = [where, '',
             '| ' + ' | '.join(COLUMNS) + ' |',
             '|' + '|'.join('---' if c in ('model', 'metric') else '---:'
                            for c in COLUMNS) + '|']
    for row in rows:
        lines.append('| ' + ' | '.join(_cell(row[c]) for c in COLUMNS) +
                     ' |')
    return '\n'.join(lines) + '\n'


def csv_text(rows: List[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: '' if v is None else v for k, v in row.items()})
    return buf.getvalue()


def plot(rows: List[dict], path: str, where: str) -> None:
    """Result vs GFLOPs and vs latency, one labelled point per model (rows
    without a result are left out)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    shown = [r for r in rows if r['result'] is not None]
    for ax, key in zip(axes, ('GFLOPs', 'latency (ms)')):
        for row in shown:
            ax.scatter(row[key], row['result'])
            ax.annotate(row['model'], (row[key], row['result']),
                        fontsize=7, xytext=(3, 3),
                        textcoords='offset points')
        ax.set(xlabel=key, ylabel=shown[0]['metric'] if shown else 'result')
        ax.set_xscale('log')
        ax.grid(alpha=0.3)
    fig.suptitle(where, fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    rows = measure(args)
    where = machine_line(machine())
    table = markdown(rows, where)
    atomic_write_text(osp.join(args.out_dir, 'results.md'), table)
    atomic_write_text(osp.join(args.out_dir, 'results.csv'), csv_text(rows))
    plot(rows, osp.join(args.out_dir, 'results.png'), where)
    sys.stdout.write(table)
    return rows


if __name__ == '__main__':
    main()
