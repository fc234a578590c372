"""Training curves from MMEngine logs as a PNG.

Reads ``vis_data/scalars.json`` (JSON lines MMEngine writes in every run's
work dir) of one or more runs and plots, per run: the training loss over
iterations, and every validation metric over epochs (``acc/top1``,
``retrieval/t2v_R1``, ...).

    python tools/analysis_tools/plot_logs.py \\
        work_dirs/demo/stan_tiny_synthetic \\
        work_dirs/demo/clip_meanp_tiny_synthetic --out docs/demo_curves.png
"""
import argparse
import glob
import json
import os.path as osp
import sys
from typing import Dict, List, Tuple

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import _bootstrap  # noqa: F401,E402  (the repo on sys.path)

from stan_mmaction.utils.atomic import atomic_savefig  # noqa: E402

TRAIN_KEYS = ('iter', 'epoch', 'step', 'lr', 'base_lr', 'time',
              'data_time', 'grad_norm', 'memory')


def find_scalars(path: str) -> str:
    """A scalars.json file, or the newest one under a work dir."""
    if osp.isfile(path):
        return path
    found = sorted(glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')))
    if not found:
        raise SystemExit(f'no */vis_data/scalars.json under {path}; pass a '
                         'work dir of tools/train.py or the file itself')
    return found[-1]


def read_scalars(path: str) -> Tuple[Dict[str, list], Dict[str, list]]:
    """(train: key -> [(iteration, value)], val: key -> [(epoch, value)])"""
    train, val = {}, {}
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            if 'iter' in rec:  # a training record
                for key, value in rec.items():
                    if key.startswith('loss'):
                        train.setdefault(key, []).append(
                            (rec['step'], value))
            else:  # validation: step is the epoch
                for key, value in rec.items():
                    if key not in TRAIN_KEYS and isinstance(value,
                                                            (int, float)):
                        val.setdefault(key, []).append((rec['step'], value))
    return train, val


def plot(runs: List[str], out: str, keys=None, title=None) -> List[str]:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    data = []
    for run in runs:
        train, val = read_scalars(find_scalars(run))
        data.append((osp.basename(osp.normpath(run)), train, val))
    val_keys = sorted({k for _, _, v in data for k in v})
    if keys:
        val_keys = [k for k in val_keys if k in keys]
    panels = 1 + len(val_keys)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.4),
                             squeeze=False)
    for name, train, _ in data:
        points = train.get('loss') or next(iter(train.values()), [])
        if points:
            axes[0][0].plot(*zip(*points), label=name)
    axes[0][0].set(title='training loss', xlabel='iteration')
    for ax, key in zip(axes[0][1:], val_keys):
        for name, _, val in data:
            if key in val:
                ax.plot(*zip(*val[key]), marker='o', label=name)
        ax.set(title=key, xlabel='epoch')
    for ax in axes[0]:
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    atomic_savefig(fig, out, dpi=110)
    plt.close(fig)
    return val_keys


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('runs', nargs='+', help='work dirs or scalars.json files')
    p.add_argument('--out', default='curves.png')
    p.add_argument('--keys', nargs='*', default=None,
                   help='validation metrics to plot (default: all)')
    p.add_argument('--title', default=None)
    args = p.parse_args(argv)
    keys = plot(args.runs, args.out, args.keys, args.title)
    print(f'{args.out}: training loss and {", ".join(keys) or "no metric"}')


if __name__ == '__main__':
    main()
