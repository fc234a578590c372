"""The embedded default: STAN learns time where mean pooling cannot.

Writes the synthetic time-reversal dataset (real MP4 files plus MMAction2
annotation lists), then, for STAN-attn, STAN-conv and the CLIP mean-pooling
baseline, trains with ``tools/train.py`` and tests with ``tools/test.py`` on
the configs under ``configs/demo/``, and prints a table of held-out top-1.
Within each time-reversed pair the baseline cannot beat chance: its best
possible top-1 is 50%.

    python tools/demo.py            # what `make demo` runs
    python tools/demo.py --jobs 1   # one training at a time
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

VARIANTS = [
    ('STAN-attn', 'configs/demo/stan_tiny_synthetic.py'),
    ('STAN-conv', 'configs/demo/stan_conv_tiny_synthetic.py'),
    ('CLIP mean pooling', 'configs/demo/clip_meanp_tiny_synthetic.py'),
]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/synthetic')
    parser.add_argument('--train-per-class', type=int, default=64)
    parser.add_argument('--val-per-class', type=int, default=16)
    parser.add_argument('--epochs', type=int, default=None,
                        help='override the configs\' max_epochs')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--jobs', type=int, default=2,
        help='trainings run side by side, one CPU thread each')
    return parser.parse_args()


def ensure_dataset(root, train, val, seed):
    """(Re)write the dataset unless one with the same settings is there."""
    from stan_mmaction.datasets import make_synthetic_dataset
    settings = dict(train=train, val=val, seed=seed, version=1)
    stamp = osp.join(root, 'settings.json')
    if osp.isfile(stamp):
        with open(stamp) as f:
            if json.load(f) == settings:
                return
    make_synthetic_dataset(root, dict(train=train, val=val), seed=seed)
    with open(stamp, 'w') as f:
        json.dump(settings, f)


def run(cmd, log_path, env):
    with open(log_path, 'w') as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT,
                              env=env)
    if proc.returncode != 0:
        raise RuntimeError(f'{" ".join(cmd)} failed; see {log_path}')


def train_and_test(name, config, args, threads):
    work = osp.join(args.work_dir, osp.splitext(osp.basename(config))[0])
    os.makedirs(work, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    env['PYTHONPATH'] = REPO_ROOT + os.pathsep + env.get('PYTHONPATH', '')
    data = args.data_root
    options = [
        f'train_dataloader.dataset.ann_file={data}/train_list_videos.txt',
        f'train_dataloader.dataset.data_prefix.video={data}',
        f'val_dataloader.dataset.ann_file={data}/val_list_videos.txt',
        f'val_dataloader.dataset.data_prefix.video={data}',
        f'test_dataloader.dataset.ann_file={data}/val_list_videos.txt',
        f'test_dataloader.dataset.data_prefix.video={data}',
    ]
    if args.epochs is not None:
        options.append(f'train_cfg.max_epochs={args.epochs}')
    config = osp.join(REPO_ROOT, config)
    start = time.time()
    run([sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), config,
         '--work-dir', work, '--seed', str(args.seed), '--cfg-options',
         *options], osp.join(work, 'train.log'), env)
    with open(osp.join(work, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    run([sys.executable, osp.join(REPO_ROOT, 'tools', 'test.py'), config,
         checkpoint, '--work-dir', work, '--cfg-options', *options],
        osp.join(work, 'test.log'), env)
    with open(osp.join(work, 'test_metrics.json')) as f:
        metrics = json.load(f)
    return name, metrics['acc/top1'], time.time() - start


def main():
    args = parse_args()
    start = time.time()
    ensure_dataset(args.data_root, args.train_per_class, args.val_per_class,
                   args.seed)
    print(f'Synthetic dataset: {args.data_root} ({args.train_per_class} '
          f'train / {args.val_per_class} held-out videos per class, 8 '
          'classes in 4 time-reversed pairs)', flush=True)
    jobs = max(1, args.jobs)
    threads = 1 if jobs > 1 else 2
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(train_and_test, name, cfg, args, threads)
                   for name, cfg in VARIANTS]
        results = []
        for future in futures:
            name, top1, seconds = future.result()
            print(f'  {name}: trained and tested in {seconds:.0f} s',
                  flush=True)
            results.append((name, top1))
    print('\n| model | held-out top-1 |')
    print('|---|---:|')
    for name, top1 in results:
        print(f'| {name} | {100 * top1:.1f}% |')
    print('\nChance: 12.5%; best possible for a frame-order-blind model: '
          '50.0%.')
    print(f'Total time: {time.time() - start:.0f} s. Logs and checkpoints: '
          f'{args.work_dir}/')
    summary = dict(results={n: t for n, t in results},
                   seconds=time.time() - start)
    with open(osp.join(args.work_dir, 'demo_results.json'), 'w') as f:
        json.dump(summary, f, indent=1)


if __name__ == '__main__':
    main()
