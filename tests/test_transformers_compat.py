"""Compat repair 7 with a real transformers release installed: mmaction2
1.2.0's VindLU models import names transformers 4.57 moved; with our repair
mmaction2 registers its placeholders and everything else works.

An install test: it needs transformers 4.57.6 and its dependencies in a
folder of their own (`make test` puts them in .venv/transformers-4.57.6
from the package registry once; without it this test installs them into a
temporary folder). They are put first on PYTHONPATH of fresh interpreters
only, so the suite's own environment is untouched."""
import os
import os.path as osp
import subprocess
import sys

import pytest
from conftest import REPO_ROOT
from conftest import TRANSFORMERS_VERSION as VERSION

#: Processes, training runs or installs: left out of `make test-quick`.
pytestmark = pytest.mark.slow

CFG = osp.join(REPO_ROOT, 'configs', 'demo', 'stan_tiny_synthetic.py')


def env_with(transformers_dir, **extra):
    return dict(PYTHONPATH=os.pathsep.join([transformers_dir, REPO_ROOT]),
                **extra)


def run_code(code, env):
    return subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT,
                          env=dict(os.environ, **env), capture_output=True,
                          text=True, timeout=600)


def test_mmaction_models_break_without_the_repair(transformers_dir):
    res = run_code(
        'import stan_mmaction.compat as c\n'
        'c.patch_missing_drn(); c.patch_importlib_metadata()\n'
        'import transformers; print(transformers.__version__)\n'
        'import mmaction.models\n',
        env_with(transformers_dir, STAN_MMACTION_NO_COMPAT='1'))
    assert VERSION in res.stdout
    assert res.returncode != 0
    assert "cannot import name 'apply_chunking_to_forward'" in res.stderr


def test_import_and_vindlu_placeholders_with_the_repair(transformers_dir):
    res = run_code(
        'import stan_mmaction, mmaction.models, transformers\n'
        'from stan_mmaction import compat\n'
        'from mmaction.registry import MODELS\n'
        'print(transformers.__version__, compat.VINDLU_REASON)\n'
        'print(MODELS.get("StanCLIPBackbone").__name__)\n'
        'try:\n'
        '    MODELS.build(dict(type="VindLURetrieval"))\n'
        'except ImportError as err:\n'
        '    print("placeholder:", err)\n',
        env_with(transformers_dir))
    assert res.returncode == 0, res.stderr[-3000:]
    assert VERSION in res.stdout and 'apply_chunking_to_forward' in \
        res.stdout
    assert 'StanCLIPBackbone' in res.stdout
    assert 'placeholder: VindLURetrieval requires extra multi-modal' in \
        res.stdout


def test_tiny_train_and_test_tools_with_transformers(transformers_dir,
                                                     demo_workspace,
                                                     tmp_path):
    """tools/train.py, then tools/test.py on its checkpoint, in one fresh
    interpreter with transformers importable (the tools' main(argv))."""
    work = str(tmp_path / 'work')
    env = env_with(transformers_dir, OMP_NUM_THREADS='1')
    tools = osp.join(REPO_ROOT, 'tools')
    code = f'''
import importlib.util, sys
sys.path.insert(0, {tools!r})
import transformers
def tool(name):
    spec = importlib.util.spec_from_file_location(
        'tool_' + name, {tools!r} + '/' + name + '.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
tool('train').main([{CFG!r}, '--work-dir', {work!r}, '--cfg-options',
                    'train_cfg.max_epochs=1'])
tool('test').main([{CFG!r}, {work!r} + '/epoch_1.pth', '--work-dir',
                   {work!r}])
print('transformers', transformers.__version__)
'''
    res = subprocess.run([sys.executable, '-c', code], cwd=demo_workspace,
                         env=dict(os.environ, **env), capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f'transformers {VERSION}' in res.stdout
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))
    assert osp.isfile(osp.join(work, 'test_metrics.json'))
