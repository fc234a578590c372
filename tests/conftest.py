import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

import stan_mmaction  # noqa: F401  (applies compat, registers modules)
from stan_mmaction.models import build_clip

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def subprocess_env(env_extra: dict = None) -> dict:
    """This environment with the repo on PYTHONPATH, this interpreter as
    $PYTHON (for the shell tools), plus ``env_extra``."""
    env = dict(os.environ, PYTHON=sys.executable)
    env['PYTHONPATH'] = REPO_ROOT + os.pathsep + env.get('PYTHONPATH', '')
    env.update(env_extra or {})
    return env


def run_python(code: str, env_extra: dict = None, timeout: int = 300):
    """Run ``python -c code`` in a fresh interpreter from the repo root."""
    return subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT,
                          env=subprocess_env(env_extra), capture_output=True,
                          text=True, timeout=timeout)


def run_tool(args, timeout: int = 600, env_extra: dict = None,
             cwd: str = REPO_ROOT):
    """Run ``python tools/<args>`` (or a shell script), by default from the
    repo root."""
    if args[0].endswith('.sh'):
        cmd = ['bash', osp.join(REPO_ROOT, 'tools', args[0]), *args[1:]]
    else:
        cmd = [sys.executable, osp.join(REPO_ROOT, 'tools', args[0]),
               *args[1:]]
    return subprocess.run(cmd, cwd=cwd, env=subprocess_env(env_extra),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='session')
def tiny_clip_file(tmp_path_factory):
    """A randomly initialised tiny open_clip CLIP saved as a state dict.

    Returns (path, model) with the model in eval mode.
    """
    torch.manual_seed(1234)
    model = build_clip('tiny').eval()
    path = tmp_path_factory.mktemp('clip') / 'tiny_clip.pt'
    torch.save(model.state_dict(), path)
    return str(path), model


@pytest.fixture(scope='session')
def demo_workspace(tmp_path_factory):
    """A folder holding ``data/synthetic`` (2 train / 1 val video per
    class), the ``data_root`` of configs/demo; run tools from it."""
    from stan_mmaction.datasets import make_synthetic_dataset
    root = tmp_path_factory.mktemp('workspace')
    make_synthetic_dataset(str(root / 'data' / 'synthetic'),
                           dict(train=2, val=1), seed=0)
    return str(root)
