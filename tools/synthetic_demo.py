"""The embedded default: STAN learns time where mean pooling cannot.

Recognition (the default, what `make demo` runs): writes the synthetic
time-reversal dataset (real MP4 files plus MMAction2 annotation lists),
then, for STAN-attn, STAN-conv and the CLIP mean-pooling baseline, trains
with ``tools/train.py`` and tests with ``tools/test.py`` on the configs under
``configs/demo/``, and prints a table of held-out top-1. Within each
time-reversed pair the baseline cannot beat chance: its best possible top-1
is 50%.

Retrieval (``--task retrieval``): the same for video-text retrieval on
captions of a square moving one way, then another ("a small red square
moves left, then up"), STAN-attn vs mean pooling, text-to-video R@1 etc.

Comparison (``--task compare``): the recognition data for STAN-attn, mean
pooling and MMAction2's own TSN, TSM and X3D (``configs/compare/``), then
``tools/analysis_tools/compare.py`` over them: one table (parameters,
GFLOPs, latency, peak memory, training time, top-1), CSV and plot in
``<work dir>/compare/``.

    python tools/synthetic_demo.py                    # what `make demo` runs
    python tools/synthetic_demo.py --task retrieval   # the retrieval demo
    python tools/synthetic_demo.py --task compare     # beside MMAction2's
    python tools/synthetic_demo.py --jobs 1           # one training at a time
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

TASKS = {
    'recognition': dict(
        variants=[
            ('STAN-attn', 'configs/demo/stan_tiny_synthetic.py'),
            ('STAN-conv', 'configs/demo/stan_conv_tiny_synthetic.py'),
            ('CLIP mean pooling', 'configs/demo/clip_meanp_tiny_synthetic.py'),
        ],
        data_root='data/synthetic',
        splits=('train', 'val'),
        ann='{root}/{split}_list_videos.txt',
        columns=[('held-out top-1', 'acc/top1', 100)]),
    'compare': dict(
        variants=[
            ('STAN-attn', 'configs/demo/stan_tiny_synthetic.py'),
            ('CLIP mean pooling', 'configs/demo/clip_meanp_tiny_synthetic.py'),
            ('TSN R18', 'configs/compare/tsn_r18_tiny_synthetic.py'),
            ('TSM R18', 'configs/compare/tsm_r18_tiny_synthetic.py'),
            ('X3D', 'configs/compare/x3d_tiny_synthetic.py'),
        ],
        data_root='data/synthetic',
        dataset='recognition',
        splits=('train', 'val'),
        ann='{root}/{split}_list_videos.txt',
        columns=[('held-out top-1', 'acc/top1', 100)]),
    'retrieval': dict(
        variants=[
            ('STAN-attn', 'configs/demo/stan_tiny_synthetic_retrieval.py'),
            ('CLIP mean pooling',
             'configs/demo/clip_meanp_tiny_synthetic_retrieval.py'),
        ],
        data_root='data/synthetic_retrieval',
        splits=('train', 'test'),
        ann='{root}/{split}_captions.json',
        columns=[('t2v R@1', 'retrieval/t2v_R1', 1),
                 ('t2v R@5', 'retrieval/t2v_R5', 1),
                 ('t2v MdR', 'retrieval/t2v_MdR', 1),
                 ('v2t R@1', 'retrieval/v2t_R1', 1),
                 ('t2v R@1 (DSL)', 'retrieval/t2v_dsl_R1', 1)]),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--task', choices=sorted(TASKS),
                        default='recognition')
    parser.add_argument('--work-dir', default=None,
                        help='defaults to work_dirs/demo (recognition), '
                        'work_dirs/demo_retrieval or work_dirs/demo_compare')
    parser.add_argument('--data-root', default=None,
                        help='defaults to data/synthetic or '
                        'data/synthetic_retrieval')
    parser.add_argument('--train-per-class', type=int, default=None,
                        help='training videos per class (recognition, '
                        'default 64) or per caption type (retrieval, 6)')
    parser.add_argument('--val-per-class', type=int, default=None,
                        help='held-out videos per class (16) or per caption '
                        'type (1)')
    parser.add_argument('--epochs', type=int, default=None,
                        help='override the configs\' max_epochs')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--jobs', type=int, default=2,
        help='trainings run side by side, one CPU thread each')
    args = parser.parse_args(argv)
    task = TASKS[args.task]
    retrieval = args.task == 'retrieval'
    if args.work_dir is None:
        args.work_dir = 'work_dirs/demo' + (
            '' if args.task == 'recognition' else f'_{args.task}')
    if args.data_root is None:
        args.data_root = task['data_root']
    if args.train_per_class is None:
        args.train_per_class = 6 if retrieval else 64
    if args.val_per_class is None:
        args.val_per_class = 1 if retrieval else 16
    return args


def ensure_dataset(task, root, train, val, seed):
    """(Re)write the dataset unless one with the same settings is there."""
    from stan_mmaction.datasets import (make_synthetic_dataset,
                                        make_synthetic_retrieval_dataset)
    train_split, val_split = TASKS[task]['splits']
    task = TASKS[task].get('dataset', task)  # compare: recognition data
    settings = dict(task=task, train=train, val=val, seed=seed, version=1)
    stamp = osp.join(root, 'settings.json')
    if osp.isfile(stamp):
        with open(stamp) as f:
            if json.load(f) == settings:
                return
    make = make_synthetic_retrieval_dataset if task == 'retrieval' else \
        make_synthetic_dataset
    make(root, {train_split: train, val_split: val}, seed=seed)
    with open(stamp, 'w') as f:
        json.dump(settings, f)


def epoch_summaries(work_dir: str, since: float = 0.0) -> dict:
    """epoch -> summary of the newest ``vis_data/scalars.json`` MMEngine
    wrote under ``work_dir``: the last logged loss, the mean logged training
    top-1 (recognition heads log ``top1_acc``) and any validation metric of
    that epoch. Files last written before ``since`` (earlier runs) are
    ignored."""
    files = sorted(f for f in glob.glob(osp.join(
        work_dir, '*', 'vis_data', 'scalars.json'))
        if osp.getmtime(f) >= since)
    epochs = {}
    if not files:
        return epochs
    with open(files[-1]) as f:
        lines = f.readlines()
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:  # a line being written
            continue
        if 'epoch' in rec and 'loss' in rec:
            e = epochs.setdefault(rec['epoch'], dict(acc=[], val={}))
            e['loss'] = rec['loss']
            if 'top1_acc' in rec:
                e['acc'].append(rec['top1_acc'])
        elif 'step' in rec and 'loss' not in rec:
            # validation: step is the epoch
            epochs.setdefault(rec['step'], dict(acc=[], val={}))['val'] = {
                k: v for k, v in rec.items() if k != 'step'}
    return epochs


def progress_line(name: str, epoch: int, total, summary: dict,
                  val_column: tuple) -> str:
    """``val_column``: (label, metric key, scale) of the demo's table."""
    label, val_key, val_scale = val_column
    line = f'  [{name}] epoch {epoch}/{total}'
    if 'loss' in summary:
        line += f'  loss {summary["loss"]:.3f}'
    if summary['acc']:
        acc = 100 * sum(summary['acc']) / len(summary['acc'])
        line += f'  train top-1 {acc:.1f}%'
    if val_key in summary['val']:
        value = val_scale * summary['val'][val_key]
        line += f'  {label} {value:.1f}' + ('%' if val_scale == 100 else '')
    return line


class ProgressReporter(threading.Thread):
    """Prints one line per finished epoch of every training (read from the
    scalars MMEngine writes), so a long demo shows it is alive."""

    def __init__(self, runs, total_epochs, val_column,
                 interval: float = 5.0):
        super().__init__(daemon=True)
        self.runs = runs  # [(name, work_dir)]
        self.total = total_epochs
        self.val_column = val_column
        self.interval = interval
        self.printed = {name: 0 for name, _ in runs}
        self.finished = set()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.since = time.time()

    def poll(self):
        with self.lock:
            for name, work in self.runs:
                self._poll_one(name, work)

    def _poll_one(self, name, work):
        epochs = epoch_summaries(work, self.since)
        if not epochs:
            return
        # An epoch is complete once the next one has started (its
        # validation is then written too) or its training has ended.
        last = max(epochs) if name in self.finished else max(epochs) - 1
        for epoch in range(self.printed[name] + 1, last + 1):
            if epoch in epochs:
                print(progress_line(name, epoch, self.total.get(name, '?'),
                                    epochs[epoch], self.val_column),
                      flush=True)
            self.printed[name] = epoch

    def finish(self, name):
        with self.lock:
            self.finished.add(name)

    def run(self):
        while not self.stop.wait(self.interval):
            self.poll()


def run(cmd, log_path, env):
    with open(log_path, 'w') as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT,
                              env=env)
    if proc.returncode != 0:
        raise RuntimeError(f'{" ".join(cmd)} failed; see {log_path}')


def work_dir_of(config, args):
    return osp.join(args.work_dir, osp.splitext(osp.basename(config))[0])


def max_epochs_of(config, args):
    if args.epochs is not None:
        return args.epochs
    import stan_mmaction  # noqa: F401  # isort:skip  (repairs the stack)
    from mmengine.config import Config
    return Config.fromfile(osp.join(REPO_ROOT, config)).train_cfg.max_epochs


def train_and_test(name, config, args, threads, reporter=None):
    work = work_dir_of(config, args)
    os.makedirs(work, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    env['PYTHONPATH'] = REPO_ROOT + os.pathsep + env.get('PYTHONPATH', '')
    data = args.data_root
    task = TASKS[args.task]
    train_ann, val_ann = (task['ann'].format(root=data, split=split)
                          for split in task['splits'])
    options = [
        f'train_dataloader.dataset.ann_file={train_ann}',
        f'train_dataloader.dataset.data_prefix.video={data}',
        f'val_dataloader.dataset.ann_file={val_ann}',
        f'val_dataloader.dataset.data_prefix.video={data}',
        f'test_dataloader.dataset.ann_file={val_ann}',
        f'test_dataloader.dataset.data_prefix.video={data}',
    ]
    if args.epochs is not None:
        options.append(f'train_cfg.max_epochs={args.epochs}')
    config = osp.join(REPO_ROOT, config)
    start = time.time()
    run([sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), config,
         '--work-dir', work, '--seed', str(args.seed), '--cfg-options',
         *options], osp.join(work, 'train.log'), env)
    if reporter is not None:
        reporter.finish(name)
    with open(osp.join(work, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    run([sys.executable, osp.join(REPO_ROOT, 'tools', 'test.py'), config,
         checkpoint, '--work-dir', work, '--cfg-options', *options],
        osp.join(work, 'test.log'), env)
    with open(osp.join(work, 'test_metrics.json')) as f:
        metrics = json.load(f)
    return name, metrics, time.time() - start


def main(argv=None):
    args = parse_args(argv)
    task = TASKS[args.task]
    start = time.time()
    ensure_dataset(args.task, args.data_root, args.train_per_class,
                   args.val_per_class, args.seed)
    if args.task == 'retrieval':
        print(f'Synthetic captions: {args.data_root} (64 caption types, '
              f'{args.train_per_class} train / {args.val_per_class} test '
              'video(s) each, 2 captions per video)', flush=True)
    else:
        print(f'Synthetic dataset: {args.data_root} ({args.train_per_class} '
              f'train / {args.val_per_class} held-out videos per class, 8 '
              'classes in 4 time-reversed pairs)', flush=True)
    os.makedirs(args.work_dir, exist_ok=True)
    jobs = max(1, args.jobs)
    threads = 1 if jobs > 1 else 2
    runs = [(name, work_dir_of(cfg, args)) for name, cfg in task['variants']]
    for name, work in runs:
        print(f'  {name}: logs in {work}/ (train.log, test.log)', flush=True)
    print(f'Training {len(runs)} models, {jobs} at a time; one line per '
          'epoch:', flush=True)
    reporter = ProgressReporter(
        runs, {name: max_epochs_of(cfg, args)
               for name, cfg in task['variants']}, task['columns'][0])
    reporter.start()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(train_and_test, name, cfg, args, threads,
                               reporter)
                   for name, cfg in task['variants']]
        results = []
        for future in futures:
            name, metrics, seconds = future.result()
            reporter.poll()
            print(f'  {name}: trained and tested in {seconds:.0f} s',
                  flush=True)
            results.append((name, metrics))
    reporter.stop.set()
    columns = task['columns']
    print('\n| model | ' + ' | '.join(c[0] for c in columns) + ' |')
    print('|---|' + '---:|' * len(columns))
    for name, metrics in results:
        cells = []
        for _, key, scale in columns:
            value = scale * metrics[key]
            cells.append(f'{value:.1f}' + ('%' if scale == 100 else ''))
        print(f'| {name} | ' + ' | '.join(cells) + ' |')
    if args.task == 'retrieval':
        print('\nChance t2v R@1: 1.6% (64 test videos). A frame-order-blind '
              'model cannot tell "moves left, then up" from its time '
              'reverse "moves down, then right".')
    else:
        print('\nChance: 12.5%; best possible for a frame-order-blind '
              'model: 50.0%.')
    seconds = time.time() - start
    print(f'Total time: {seconds:.0f} s. Logs and checkpoints: '
          f'{args.work_dir}/')
    summary = dict(task=args.task, results={n: m for n, m in results},
                   seconds=seconds)
    if args.task == 'compare':
        out_dir = osp.join(args.work_dir, 'compare')
        compare = subprocess.run(
            [sys.executable, osp.join(REPO_ROOT, 'tools', 'analysis_tools',
                                      'compare.py'),
             *[osp.join(REPO_ROOT, c) for _, c in task['variants']],
             '--work-dirs', *[w for _, w in runs],
             '--names', *[n for n, _ in task['variants']],
             '--out-dir', out_dir], capture_output=True, text=True)
        if compare.returncode != 0:
            raise SystemExit(compare.stderr[-3000:])
        print(f'\n{compare.stdout}\nTable, CSV and plot: {out_dir}/ '
              f'({time.time() - start:.0f} s in all)')
    with open(osp.join(args.work_dir, 'demo_results.json'), 'w') as f:
        json.dump(summary, f, indent=1)


if __name__ == '__main__':
    main()
