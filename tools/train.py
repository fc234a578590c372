"""Train a model from a config, as MMAction2's ``tools/train.py``."""
import argparse
import os
import os.path as osp

import _bootstrap  # noqa: F401  (repairs the stack before Config.fromfile)
from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from stan_mmaction.apis.cli import one_line_errors
from stan_mmaction.apis.data_check import check_datasets


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a STAN / MMAction2 '
                                     'model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or with no value (or '
        '"auto") from the latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='enable automatic mixed precision training')
    parser.add_argument('--no-validate', action='store_true',
                        help='do not evaluate checkpoints during training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the actual batch size')
    parser.add_argument('--seed', type=int, default=None, help='random seed')
    parser.add_argument('--diff-rank-seed', action='store_true',
                        help='different seeds on different ranks')
    parser.add_argument('--deterministic', action='store_true',
                        help='deterministic options for CUDNN / torch')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, "xxx=yyy" in dot notation')
    parser.add_argument('--launcher',
                        choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg, args):
    """Apply the command-line options to the config."""
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if optim_wrapper != 'AmpOptimWrapper':
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if args.auto_scale_lr:
        cfg.setdefault('auto_scale_lr', {})
        cfg.auto_scale_lr.enable = True
    randomness = dict(cfg.get('randomness', None) or {})
    if args.seed is not None:
        randomness['seed'] = args.seed
    if args.diff_rank_seed:
        randomness['diff_rank_seed'] = True
    if args.deterministic:
        randomness['deterministic'] = True
    if randomness:
        cfg.randomness = randomness
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def main(argv=None):
    """Train; ``argv`` as on the command line (default ``sys.argv[1:]``).
    Returns the runner."""
    args = parse_args(argv)
    # A refused checkpoint (pretrained=, load_from, --resume) or an output
    # folder that cannot be written: one line, not a traceback.
    with one_line_errors():
        cfg = merge_args(Config.fromfile(args.config), args)
        # Annotations read before anything is built or logged.
        check_datasets(cfg, 'train')
        # The runner a config names (ours: StanRunner, StanFlexibleRunner
        # for FSDP and DeepSpeed), as in MMAction2's tools.
        runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else \
            RUNNERS.build(cfg)
        runner.train()
    return runner


if __name__ == '__main__':
    main()
