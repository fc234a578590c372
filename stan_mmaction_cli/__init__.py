"""``stan-mmaction COMMAND ...``: the tools of an installed package.

What ``mim train mmaction2 ...`` is to MMAction2: each command runs one of
the tool scripts the package ships in ``stan_mmaction/.mim/`` (the
repository's ``tools/`` and ``demo/``) with the arguments given, as
``python SCRIPT ARGS`` would (in this process: the package is imported
once), and exits with its code::

    stan-mmaction train my_config.py --work-dir work_dirs/mine
    stan-mmaction train demo/stan_tiny_synthetic.py     # a shipped name
    stan-mmaction test my_config.py work_dirs/mine/epoch_10.pth
    stan-mmaction config-path demo/stan_tiny_synthetic.py

A package of its own beside ``stan_mmaction``, standard library only:
importing ``stan_mmaction`` imports torch and MMAction2 and registers the
plugin (6 s on a 2-core machine), which ``--help`` and ``config-path`` do
not need. Help texts are the tools' own ``--help`` output, kept in
``help/`` (``make help-texts`` writes them; ``tests/test_cli.py`` checks
they are current); a command runs only when it is not asked for help.
``python -m stan_mmaction ...`` is the same.
"""
import importlib.util
import os
import os.path as osp
import sys
from typing import List, Optional

SCOPE = 'stan_mmaction'

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
HELP_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'help')
HELP_ARGS = ('-h', '--help')


def mim_dir() -> str:
    """``stan_mmaction/.mim`` (configs, tools, demo), found without
    importing the package."""
    spec = importlib.util.find_spec(SCOPE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit('stan-mmaction: the stan_mmaction package is not '
                         'installed')
    return osp.join(list(spec.submodule_search_locations)[0], '.mim')


def config_path(name: str = '') -> str:
    """The absolute path of a shipped config (or of the configs folder).

    Args:
        name (str): relative to the configs folder, e.g.
            ``'demo/stan_tiny_synthetic.py'``; ``'stan_mmaction::'`` in
            front is accepted. Defaults to the folder itself.

    Raises:
        FileNotFoundError: naming the path and where the configs are; a
            name that leads out of the configs folder is none of them.
    """
    if name.startswith(SCOPE + '::'):
        name = name[len(SCOPE) + 2:]
    root = osp.realpath(osp.join(mim_dir(), 'configs'))
    path = osp.realpath(osp.join(root, name))
    inside = path == root or path.startswith(root + os.sep)
    if not inside or not osp.exists(path):
        raise FileNotFoundError(
            f'no shipped config {name!r} (looked for '
            f'{path if inside else osp.join(root, name)}); the configs are '
            f'in {root}')
    return path


def resolve_config_args(args: List[str]) -> List[str]:
    """``args`` with each ``*.py`` argument that is no file here but a
    shipped config's name (``demo/stan_tiny_synthetic.py``,
    ``stan_mmaction::recognition/stan/...``) replaced by that config's
    path, as ``config-path`` finds it (``--config NAME`` and
    ``--config=NAME`` too)."""
    def resolve(value: str) -> str:
        if not value.endswith('.py') or osp.isfile(value):
            return value
        try:
            return config_path(value)
        except FileNotFoundError:
            return value

    out = []
    for arg in args:
        if arg.startswith('--') and '=' in arg:
            key, value = arg.split('=', 1)
            out.append(f'{key}={resolve(value)}')
        else:
            out.append(resolve(arg))
    return out


def usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = ['usage: stan-mmaction COMMAND [ARGS ...]', '',
             'STAN for MMAction2: the tools of the installed package '
             '(COMMAND --help for each; a shipped config by its name, e.g. '
             'demo/stan_tiny_synthetic.py).', '', 'commands:']
    lines += [f'  {name:<{width}}  {what}'
              for name, (_, what) in COMMANDS.items()]
    lines += [f'  {"config-path":<{width}}  the path of a shipped config '
              '(or of the configs folder)']
    return '\n'.join(lines)


def help_text(command: str) -> str:
    with open(osp.join(HELP_DIR, f'{command}.txt'), encoding='utf-8') as f:
        return f.read()


def script_path(command: str) -> str:
    """The shipped script a command runs."""
    return osp.join(mim_dir(), COMMANDS[command][0])


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        print(usage(), file=sys.stderr)
        return 2
    if argv[0] in HELP_ARGS:
        print(usage())
        return 0
    command, args = argv[0], argv[1:]
    if command == 'config-path':
        if len(args) > 1:
            raise SystemExit('usage: stan-mmaction config-path [NAME]')
        try:
            print(config_path(args[0] if args else ''))
        except FileNotFoundError as err:
            raise SystemExit(f'stan-mmaction config-path: {err}')
        return 0
    if command not in COMMANDS:
        raise SystemExit(f'stan-mmaction: unknown command {command!r}; '
                         f'choose from {", ".join(COMMANDS)}, config-path')
    before_dashes = args[:args.index('--')] if '--' in args else args
    if any(a in HELP_ARGS for a in before_dashes):
        sys.stdout.write(help_text(command))
        return 0
    script = script_path(command)
    if not osp.isfile(script):
        raise SystemExit(f'stan-mmaction {command}: {script} is missing '
                         '(an incomplete install?)')
    from stan_mmaction.commands import run_script
    return run_script(script, resolve_config_args(args))
