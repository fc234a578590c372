"""Installing the package into an environment that already has its own
torch and a full mmcv changes neither: pip's resolver (``--dry-run
--report``, offline) is run against an environment whose installed
distributions are stand-ins (metadata only) with another torch and full
mmcv, and must plan to install stan_mmaction alone."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, readme_block

#: Processes, training runs or installs: left out of `make test-quick`.
pytestmark = pytest.mark.slow


def read(path):
    with open(osp.join(REPO_ROOT, path)) as f:
        return [line.split('#')[0].strip() for line in f
                if line.split('#')[0].strip()]


def pinned_versions(path='requirements/pinned.txt'):
    return dict(line.split('==') for line in read(path))


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    """The wheel, built from a copy of the working tree (no stale build/
    folder of the repository can end up in it), with this environment's
    setuptools."""
    import shutil
    src = tmp_path_factory.mktemp('src') / 'stan_mmaction'
    skip = shutil.ignore_patterns(
        '.git', '.venv*', 'build', 'dist', 'work_dirs', 'data', '*.egg-info',
        '__pycache__', '.pytest_cache')
    shutil.copytree(REPO_ROOT, src, symlinks=True, ignore=skip)
    out = tmp_path_factory.mktemp('wheel')
    res = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q',
                          '--no-deps', '--no-build-isolation', '-w',
                          str(out), str(src)], capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    return str(out)


def fake_env(root, dists):
    """A venv whose site-packages holds only dist-info metadata."""
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip',
                    str(root)], check=True, timeout=120)
    python = str(root / 'bin' / 'python')
    site = subprocess.run(
        [python, '-c', 'import sysconfig; '
         'print(sysconfig.get_paths()["purelib"])'], capture_output=True,
        text=True, check=True).stdout.strip()
    for name, version in dists.items():
        info = osp.join(site, f'{name}-{version}.dist-info')
        os.makedirs(info)
        with open(osp.join(info, 'METADATA'), 'w') as f:
            f.write(f'Metadata-Version: 2.1\nName: {name}\n'
                    f'Version: {version}\n')
        for extra, text in (('INSTALLER', 'pip\n'), ('RECORD', '')):
            with open(osp.join(info, extra), 'w') as f:
                f.write(text)
    return python


def resolve(python, wheel, report):
    """pip's plan for installing our wheel into ``python``'s environment,
    offline, ignoring this machine's pip configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith('PIP_')}
    env['PIP_CONFIG_FILE'] = os.devnull
    return subprocess.run(
        [sys.executable, '-m', 'pip', '--python', python, 'install',
         '--dry-run', '--report', report, '--no-index', '--find-links',
         wheel, 'stan_mmaction'], env=env, capture_output=True, text=True,
        timeout=600)


def test_install_requires_are_ranges_without_mmcv():
    reqs = read('requirements/runtime.txt')
    assert not any('==' in r for r in reqs)
    assert not any(r.startswith(('mmcv', 'pytest', 'flake8', 'isort'))
                   for r in reqs)
    # Both tested points satisfy the ranges, and the lowest one is their
    # lower bounds.
    from packaging.requirements import Requirement
    pins = pinned_versions()
    lowest = pinned_versions('requirements/lowest.txt')
    for r in map(Requirement, reqs):
        assert r.specifier.contains(pins[r.name]), (r, pins[r.name])
        assert r.specifier.contains(lowest[r.name]), (r, lowest[r.name])
        lower = [s.version for s in r.specifier if s.operator == '>=']
        assert lower == [lowest[r.name]], r


def test_existing_torch_and_full_mmcv_are_kept(wheel, tmp_path):
    pins = pinned_versions()
    from packaging.requirements import Requirement
    dists = {Requirement(r).name: pins[Requirement(r).name]
             for r in read('requirements/runtime.txt')}
    dists['torch'] = '2.15.0'  # not the pinned 2.14.1
    dists['mmcv'] = '2.1.0'  # full mmcv, compiled for that torch
    python = fake_env(tmp_path / 'env', dists)
    report = str(tmp_path / 'report.json')
    res = resolve(python, wheel, report)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    with open(report) as f:
        plan = json.load(f)
    assert [i['metadata']['name'].replace('-', '_').lower()
            for i in plan['install']] == ['stan_mmaction']
    assert 'Requirement already satisfied: torch<3,>=2.9.1' in res.stdout
    assert '(2.15.0)' in res.stdout


def test_a_missing_dependency_is_what_gets_planned(wheel, tmp_path):
    """Control: the check can fail. Without einops installed (and no index),
    pip cannot plan the install and says which requirement is missing."""
    pins = pinned_versions()
    from packaging.requirements import Requirement
    dists = {Requirement(r).name: pins[Requirement(r).name]
             for r in read('requirements/runtime.txt')}
    del dists['einops']
    python = fake_env(tmp_path / 'env', dists)
    res = resolve(python, wheel, str(tmp_path / 'r.json'))
    assert res.returncode != 0 and 'einops' in res.stdout + res.stderr


def test_the_wheel_is_a_working_plugin(wheel, tmp_path):
    """pip install of the wheel alone (--no-deps, into a folder) gives the
    configs, tools and the `stan-mmaction` command: from a folder outside
    the repository, a user config inheriting a shipped config trains and
    tests on tiny data, with the installed package (not the clone)."""
    import glob
    import zipfile
    whl = glob.glob(osp.join(wheel, '*.whl'))[0]
    names = zipfile.ZipFile(whl).namelist()
    for shipped in ('stan_mmaction/.mim/model-index.yml',
                    'stan_mmaction/.mim/configs/recognition/stan/'
                    'stan-attn_vit-base-p16-res224-clip-pre_1x1x8_k400-rgb.py',
                    'stan_mmaction/.mim/configs/_base_/default_runtime.py',
                    'stan_mmaction/.mim/configs/recognition/stan/'
                    'metafile.yml',
                    'stan_mmaction/.mim/configs/retrieval/stan/metafile.yml',
                    'stan_mmaction/.mim/configs/demo/metafile.yml',
                    'stan_mmaction/.mim/tools/train.py',
                    'stan_mmaction/.mim/tools/dist_train.sh',
                    'stan_mmaction/.mim/tools/analysis_tools/get_flops.py',
                    'stan_mmaction/.mim/demo/demo.py'):
        assert shipped in names, shipped
    assert not any('__pycache__' in n or n.startswith('tests/')
                   for n in names)
    site = tmp_path / 'site'
    res = subprocess.run([sys.executable, '-m', 'pip', 'install', '-q',
                          '--no-deps', '--no-index', '--target', str(site),
                          whl], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    command = str(site / 'bin' / 'stan-mmaction')

    user = tmp_path / 'user'  # outside the repository
    user.mkdir()
    # The README's config and commands, as written there.
    (user / 'my_stan.py').write_text(
        readme_block('tests/test_install_requirements.py'))
    train = 'train my_stan.py --work-dir work'
    test = 'test my_stan.py work/epoch_1.pth --work-dir work --dump ' \
        'results.pkl'
    with open(osp.join(REPO_ROOT, 'README.md')) as f:
        readme = f.read()
    assert f'stan-mmaction {train}\n' in readme
    assert f'stan-mmaction {test}\n' in readme
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env['PYTHONPATH'] = str(site)

    def run(*args):
        return subprocess.run(args, cwd=user, env=env, capture_output=True,
                              text=True, timeout=600)

    res = run(sys.executable, '-c', 'import stan_mmaction; '
              'from stan_mmaction.datasets import make_synthetic_dataset; '
              'print(stan_mmaction.__file__); make_synthetic_dataset('
              '"data/synthetic", dict(train=2, val=1), seed=0)')
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.startswith(str(site))
    res = run(command, 'config-path', 'demo/stan_tiny_synthetic.py')
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == osp.join(
        str(site), 'stan_mmaction', '.mim', 'configs', 'demo',
        'stan_tiny_synthetic.py')

    res = run(command, *train.split())
    assert res.returncode == 0, res.stderr[-3000:]
    log = res.stdout + res.stderr
    assert 'Epoch(train) [1][1/1]' in log
    assert 'MultiScaleDeformableAttention' not in log
    assert 'Failed to search registry' not in log  # the scope resolves
    res = run(command, *test.split())
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'acc/top1:' in res.stdout + res.stderr
    assert (user / 'results.pkl').stat().st_size > 0
