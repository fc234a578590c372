"""Test a checkpoint, as MMAction2's ``tools/test.py``."""
import argparse
import json
import os
import os.path as osp

import _bootstrap  # noqa: F401  (repairs the stack before Config.fromfile)
from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from stan_mmaction.apis.cli import one_line_errors
from stan_mmaction.apis.data_check import check_datasets
from stan_mmaction.utils.atomic import atomic_write_text


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument(
        'checkpoint',
        help='checkpoint file, or "none" to test the model as the config '
        'builds it (zero-shot configs: weights come from pretrained=)')
    parser.add_argument('--work-dir',
                        help='the directory to save the evaluation metrics')
    parser.add_argument('--dump', type=str,
                        help='dump predictions to a pickle file')
    parser.add_argument(
        '--qb-norm', action='store_true',
        help='retrieval: also report QB-Norm text-to-video results '
        '(t2v_qb_*), the query bank being the training captions embedded by '
        'the model under test')
    parser.add_argument(
        '--dtype', choices=['auto', 'fp32', 'bf16', 'fp16'], default=None,
        help='cast the model to this precision for testing (auto: bf16 on '
        'GPUs and on CPUs with native bf16, fp32 elsewhere); metrics are '
        'computed in fp32 (default: the model as built, fp32)')
    parser.add_argument(
        '--compile', action='store_true',
        help='torch.compile the backbone for testing (the first batch, '
        'compilation included, is logged apart)')
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


def add_query_bank(cfg):
    """QB-Norm on the test evaluator, with QueryBankHook embedding the
    training captions (the config's training annotation file)."""
    from stan_mmaction.utils import clip_shape
    evaluators = cfg.test_evaluator
    if not isinstance(evaluators, (list, tuple)):
        evaluators = [evaluators]
    metrics = [e for e in evaluators
               if e.get('type') == 'VideoTextRetrievalMetric']
    if not metrics:
        raise SystemExit('--qb-norm is for retrieval configs '
                         '(VideoTextRetrievalMetric)')
    for metric in metrics:
        metric.qb_norm = metric.get('qb_norm') or dict()
    train = cfg.train_dataloader.dataset
    cfg.custom_hooks = [*cfg.get('custom_hooks', []), dict(
        type='QueryBankHook', ann_file=train.ann_file,
        ann_format=train.get('ann_format', 'json'),
        context_length=clip_shape(cfg).context_length or 77)]


def merge_args(cfg, args):
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = None if args.checkpoint.lower() == 'none' else \
        args.checkpoint
    cfg.launcher = args.launcher
    # Sharded training configs (FSDP, DeepSpeed; docs/scaling.md) are
    # tested with the ordinary runner: their checkpoints are full state
    # dicts of the ordinary model, and inference needs no sharding.
    flexible = {'FlexibleRunner': 'Runner',
                'StanFlexibleRunner': 'StanRunner'}
    if cfg.get('runner_type') in flexible:
        cfg.runner_type = flexible[cfg.runner_type]
    cfg.pop('strategy', None)
    if args.dump is not None:
        if not args.dump.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--dump must be a .pkl file, got {args.dump}')
        dump_metric = dict(type='DumpResults', out_file_path=args.dump)
        evaluator = cfg.test_evaluator
        if isinstance(evaluator, (list, tuple)):
            cfg.test_evaluator = [*evaluator, dump_metric]
        else:
            cfg.test_evaluator = [evaluator, dump_metric]
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.qb_norm:  # after the options: the training annotations used
        add_query_bank(cfg)
    if args.dtype is not None or args.compile:
        cfg.custom_hooks = [*cfg.get('custom_hooks', []), dict(
            type='InferencePrecisionHook', dtype=args.dtype or 'fp32',
            compile=args.compile)]
    return cfg


def main(argv=None):
    """Test; ``argv`` as on the command line (default ``sys.argv[1:]``).
    Returns the metrics."""
    args = parse_args(argv)
    with one_line_errors():  # refused checkpoints, unwritable work dirs
        cfg = merge_args(Config.fromfile(args.config), args)
        # Annotations read before anything is built or logged.
        check_datasets(cfg, 'test')
        # The runner a config names (ours: StanRunner), as in MMAction2's.
        runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else \
            RUNNERS.build(cfg)
        metrics = runner.test()
        if runner.rank == 0:
            # Besides the log: the metrics as JSON, for scripts and tables.
            atomic_write_text(
                osp.join(cfg.work_dir, 'test_metrics.json'),
                json.dumps({k: float(v) for k, v in metrics.items()},
                           indent=1))
    return metrics


if __name__ == '__main__':
    main()
