"""Our configs in MMAction2's own tools: ``mmaction/.mim/tools/train.py``,
``test.py``, ``dist_train.sh``, ``dist_test.sh`` as installed with
mmaction2 (what ``mim train mmaction2`` runs, and what an MMAction2
checkout's ``tools/`` are). Those tools read a config before its
``custom_imports`` import the plugin, so nothing of ours runs first."""
import glob
import json
import os
import os.path as osp
import pickle
import subprocess
import sys

import mmaction
import pytest
import torch
from conftest import (REPO_ROOT, call_main, readme_block, run_python,
                      run_script, subprocess_env)

#: Processes, training runs or installs: left out of `make test-quick`.
pytestmark = pytest.mark.slow

MIM_TOOLS = osp.join(osp.dirname(mmaction.__file__), '.mim', 'tools')
DEMO = osp.join(REPO_ROOT, 'configs', 'demo')
RECOGNITION_CFG = osp.join(DEMO, 'stan_tiny_synthetic.py')
RETRIEVAL_CFG = osp.join(DEMO, 'stan_tiny_synthetic_retrieval.py')
FSDP_CFG = osp.join(DEMO, 'stan_tiny_synthetic_fsdp.py')

# A fresh interpreter as MMAction2's tools start: only MMEngine imported,
# and `pkg_resources` missing as with setuptools >= 82 (whatever this
# environment's setuptools has).
_AS_MMACTION_TOOLS = '''
import sys
sys.modules['pkg_resources'] = None
from mmengine.config import Config
'''


def _free_port() -> str:
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


def mmaction_tool(args, cwd, timeout=300):
    """``python mmaction/.mim/tools/<args>``, or ``bash`` for a ``.sh``
    (their shell scripts call ``python``: this interpreter's folder goes
    first on PATH; their rendezvous port, 29500 by default, is a free
    one)."""
    script = osp.join(MIM_TOOLS, args[0])
    cmd = ['bash', script] if script.endswith('.sh') else \
        [sys.executable, script]
    env = subprocess_env(dict(PORT=_free_port()))
    env['PATH'] = osp.dirname(sys.executable) + os.pathsep + env['PATH']
    return subprocess.run([*cmd, *args[1:]], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def mmaction_in_process(args, cwd):
    """MMAction2's ``tools/<script>`` run in this process (their command
    line in a fresh interpreter, with the config importing the plugin: the
    train runs of the tests below)."""
    return run_script(osp.join(MIM_TOOLS, args[0]), args[1:], cwd=cwd)


def test_every_config_loads_as_mmaction2_tools_load_it():
    """Every config of ours resolves its bases without the plugin imported
    and without `pkg_resources` (none names an `mmaction::` base), and its
    custom_imports import the plugin; an `mmaction::` base in the same
    setting fails, which is why ours have none."""
    configs = sorted(
        p for p in glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'),
                             recursive=True) if '_base_' not in p)
    assert len(configs) > 25
    res = run_python(_AS_MMACTION_TOOLS + f'''
for path in {configs!r}:
    cfg = Config.fromfile(path)
    assert cfg.custom_imports.imports == ['stan_mmaction'], path
    assert 'model' in cfg and 'train_dataloader' in cfg, path
    print('loaded', path)
print('plugin imported:', 'stan_mmaction.models' in sys.modules)
''')
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count('loaded ') == len(configs)
    assert 'plugin imported: True' in res.stdout
    assert 'MultiScaleDeformableAttention' not in res.stderr

    res = run_python(_AS_MMACTION_TOOLS + '''
import tempfile
with tempfile.NamedTemporaryFile('w', suffix='.py') as f:
    f.write("_base_ = ['mmaction::_base_/default_runtime.py']\\n")
    f.flush()
    Config.fromfile(f.name)
''')
    assert res.returncode != 0
    assert 'import pkg_resources' in res.stderr  # MMEngine's is_installed
    assert 'ModuleNotFoundError' in res.stderr


def test_readme_example_in_an_mmaction2_checkout(tmp_path):
    """The README's MMAction2-style config, as written, in a checkout's
    configs/recognition/stan/ beside MMAction2's own _base_ (the copy its
    wheel carries): it loads as MMAction2's tools load it and builds STAN
    (weights stripped: nothing is downloaded)."""
    import shutil
    configs = tmp_path / 'mmaction2' / 'configs'
    shutil.copytree(osp.join(osp.dirname(MIM_TOOLS), 'configs', '_base_'),
                    configs / '_base_')
    example = configs / 'recognition' / 'stan' / 'stan_example.py'
    example.parent.mkdir(parents=True)
    example.write_text(readme_block('tests/test_mmaction_tools.py'))
    res = run_python(_AS_MMACTION_TOOLS + f'''
cfg = Config.fromfile({str(example)!r})
from mmengine.registry import init_default_scope
from stan_mmaction.utils import build_model_without_weights
init_default_scope(cfg.default_scope)
model = build_model_without_weights(cfg.model)
print(type(model.backbone).__name__, model.backbone.num_stan_layers,
      model.cls_head.num_classes, cfg.default_hooks.checkpoint.type)
''')
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.split() == ['StanCLIPBackbone', '4', '400',
                                  'CheckpointHook']


def _dumped(path):
    with open(path, 'rb') as f:  # written by the test tool just now
        return pickle.load(f)


def _test_metrics(work_dir):
    """The metrics MMEngine's test loop wrote (``<timestamp>.json``)."""
    found = glob.glob(osp.join(work_dir, '*', '*.json'))
    assert len(found) == 1, found
    with open(found[0]) as f:
        return json.loads(f.read().splitlines()[-1])


def test_recognition_in_mmaction2_tools_and_ours(demo_workspace, tmp_path):
    """MMAction2's train.py trains the tiny demo config, its test.py tests
    the checkpoint (result file and metrics agree), and our test.py gives
    the same scores from that checkpoint."""
    work = str(tmp_path / 'theirs')
    res = mmaction_tool(['train.py', RECOGNITION_CFG, '--work-dir', work,
                         '--cfg-options', 'train_cfg.max_epochs=1'],
                        cwd=demo_workspace)
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'MultiScaleDeformableAttention' not in res.stderr
    ckpt = osp.join(work, 'epoch_1.pth')
    theirs = str(tmp_path / 'theirs.pkl')
    res = mmaction_in_process(['test.py', RECOGNITION_CFG, ckpt,
                               '--work-dir', str(tmp_path / 'theirs_test'),
                               '--dump', theirs], cwd=demo_workspace)
    assert res.returncode == 0, res.stderr[-3000:]
    samples = _dumped(theirs)
    assert len(samples) == 8  # one held-out video per class
    scores = torch.stack([s['pred_score'] for s in samples])
    labels = torch.cat([s['gt_label'] for s in samples])
    assert scores.shape == (8, 8)
    top1 = (scores.argmax(1) == labels).float().mean().item()
    metrics = _test_metrics(str(tmp_path / 'theirs_test'))
    assert metrics['acc/top1'] == pytest.approx(top1)

    ours = str(tmp_path / 'ours.pkl')
    res = call_main('tools/test.py', [RECOGNITION_CFG, ckpt, '--work-dir',
                                      str(tmp_path / 'ours_test'), '--dump',
                                      ours], cwd=demo_workspace)
    assert res.returncode == 0, res.stderr[-3000:]
    torch.testing.assert_close(
        torch.stack([s['pred_score'] for s in _dumped(ours)]), scores)


@pytest.fixture(scope='module')
def retrieval_workspace(tmp_path_factory):
    from stan_mmaction.datasets import make_synthetic_retrieval_dataset
    root = tmp_path_factory.mktemp('retrieval')
    make_synthetic_retrieval_dataset(
        str(root / 'data' / 'synthetic_retrieval'), dict(train=1, test=1),
        seed=0)
    return str(root)


def test_retrieval_in_mmaction2_tools(retrieval_workspace, tmp_path):
    """The tiny retrieval demo config trains with MMAction2's train.py, and
    its test.py reports our retrieval metric (both ways, R@1 within its
    range) on that checkpoint."""
    work = str(tmp_path / 'theirs')
    # 64 videos x 2 captions: 4 batches of 32, one epoch.
    res = mmaction_in_process(['train.py', RETRIEVAL_CFG, '--work-dir', work,
                               '--seed', '0', '--cfg-options',
                               'train_cfg.max_epochs=1',
                               'train_dataloader.batch_size=32'],
                              cwd=retrieval_workspace)
    assert res.returncode == 0, res.stderr[-3000:]
    test_dir = str(tmp_path / 'theirs_test')
    res = mmaction_in_process(['test.py', RETRIEVAL_CFG,
                               osp.join(work, 'epoch_1.pth'), '--work-dir',
                               test_dir], cwd=retrieval_workspace)
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = _test_metrics(test_dir)
    for key in ('retrieval/t2v_R1', 'retrieval/v2t_R1', 'retrieval/t2v_MdR',
                'retrieval/t2v_dsl_R1'):
        assert key in metrics, metrics
    assert 0 <= metrics['retrieval/t2v_R1'] <= 100
    assert metrics['retrieval/t2v_MdR'] >= 1


def test_sharded_config_in_mmaction2_launchers(demo_workspace, tmp_path):
    """The tiny FSDP config trains on 2 processes with MMAction2's
    dist_train.sh and tests with its dist_test.sh; its test.py without a
    launcher stops with our message naming what to run instead."""
    work = str(tmp_path / 'fsdp')
    res = mmaction_tool(['dist_train.sh', FSDP_CFG, '2', '--work-dir', work,
                         '--cfg-options', 'train_cfg.max_epochs=1'],
                        cwd=demo_workspace)
    assert res.returncode == 0, res.stderr[-3000:]
    ckpt = osp.join(work, 'epoch_1.pth')
    test_dir = str(tmp_path / 'fsdp_test')
    res = mmaction_tool(['dist_test.sh', FSDP_CFG, ckpt, '2', '--work-dir',
                         test_dir], cwd=demo_workspace)
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'acc/top1' in _test_metrics(test_dir)

    with pytest.raises(RuntimeError, match='FSDP needs distributed '
                       'processes, and none were started'):
        mmaction_in_process(['test.py', FSDP_CFG, ckpt], cwd=demo_workspace)
