"""``stan-mmaction COMMAND ...``: the tools of an installed package.

What ``mim train mmaction2 ...`` is to MMAction2: each command runs one of
the tool scripts the package ships in ``stan_mmaction/.mim/`` (the
repository's ``tools/`` and ``demo/``) with the arguments given, as
``python SCRIPT ARGS`` would (in this process: the package is imported
once), and exits with its code::

    stan-mmaction train my_config.py --work-dir work_dirs/mine
    stan-mmaction test my_config.py work_dirs/mine/epoch_10.pth
    stan-mmaction config-path demo/stan_tiny_synthetic.py

``python -m stan_mmaction ...`` is the same.
"""
import os
import os.path as osp
import runpy
import subprocess
import sys
from typing import List, Optional

_MIM = osp.join(osp.dirname(osp.abspath(__file__)), '.mim')

#: command -> (script under .mim, what it does)
COMMANDS = {
    'train': ('tools/train.py', 'train a config'),
    'test': ('tools/test.py', 'test a checkpoint'),
    'dist-train': ('tools/dist_train.sh',
                   'train on GPUS processes with torchrun: CONFIG GPUS ...'),
    'dist-test': ('tools/dist_test.sh',
                  'test on GPUS processes: CONFIG CHECKPOINT GPUS ...'),
    'demo': ('demo/demo.py', 'label a video with a recognizer'),
    'search': ('tools/search.py', 'index videos, query them with text'),
    'extract': ('tools/extract_features.py', 'video embeddings to .npy'),
    'convert': ('tools/convert_checkpoint.py',
                'convert checkpoints (authors\' STAN, HF CLIP, ...)'),
    'synthetic-demo': ('tools/synthetic_demo.py',
                       'the embedded demo (synthetic data, tiny models)'),
    'prepare-videos': ('tools/data/prepare_videos.py',
                       're-encode videos for fast training (PyAV)'),
    'get-flops': ('tools/analysis_tools/get_flops.py',
                  'parameters and FLOPs of a config'),
    'benchmark': ('tools/analysis_tools/benchmark.py',
                  'latency, memory and throughput of configs'),
    'benchmark-attention': ('tools/analysis_tools/benchmark_attention.py',
                            'attention paths timed at STAN\'s shapes'),
    'benchmark-data': ('tools/analysis_tools/benchmark_data.py',
                       'clips/s of the training pipelines, cores per GPU'),
    'compare': ('tools/analysis_tools/compare.py',
                'tabulate trained work dirs beside each other'),
    'memory-plan': ('tools/analysis_tools/memory_plan.py',
                    'training memory per GPU (DDP, FSDP, ZeRO-2)'),
    'plot-logs': ('tools/analysis_tools/plot_logs.py',
                  'plot training curves from work dirs'),
}


def _usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = ['usage: stan-mmaction COMMAND [ARGS ...]', '',
             'STAN for MMAction2: the tools of the installed package '
             '(COMMAND --help for each).', '', 'commands:']
    lines += [f'  {name:<{width}}  {what}'
              for name, (_, what) in COMMANDS.items()]
    lines += [f'  {"config-path":<{width}}  the path of a shipped config '
              '(or of the configs folder)']
    return '\n'.join(lines)


def script_path(command: str) -> str:
    """The shipped script a command runs."""
    return osp.join(_MIM, COMMANDS[command][0])


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        print(_usage(), file=sys.stderr)
        return 2
    if argv[0] in ('-h', '--help'):
        print(_usage())
        return 0
    command, args = argv[0], argv[1:]
    if command == 'config-path':
        if len(args) > 1:
            raise SystemExit('usage: stan-mmaction config-path [NAME]')
        from .registry import config_path
        try:
            print(config_path(args[0] if args else ''))
        except FileNotFoundError as err:
            raise SystemExit(f'stan-mmaction config-path: {err}')
        return 0
    if command not in COMMANDS:
        raise SystemExit(f'stan-mmaction: unknown command {command!r}; '
                         f'choose from {", ".join(COMMANDS)}, config-path')
    script = script_path(command)
    if not osp.isfile(script):
        raise SystemExit(f'stan-mmaction {command}: {script} is missing '
                         '(an incomplete install?)')
    if script.endswith('.sh'):
        env = dict(os.environ, PYTHON=sys.executable)
        return subprocess.call(['bash', script, *args], env=env)
    # As `python SCRIPT ARGS`: its folder first on the import path, its
    # arguments in sys.argv, run as __main__ (SystemExit passes through).
    sys.argv = [script, *args]
    sys.path.insert(0, osp.dirname(script))
    runpy.run_path(script, run_name='__main__')
    return 0


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
