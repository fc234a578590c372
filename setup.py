import os.path as osp
from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_requirements():
    """install_requires: the ranges of requirements/runtime.txt (the exact
    lock, requirements/pinned.txt, is what `make` installs into .venv)."""
    reqs = []
    with open(osp.join(HERE, 'requirements', 'runtime.txt')) as f:
        for line in f:
            line = line.split('#')[0].strip()
            if line:
                reqs.append(line)
    return reqs


version = {}
with open(osp.join(HERE, 'stan_mmaction', 'version.py')) as f:
    exec(f.read(), version)

setup(
    name='stan_mmaction',
    version=version['__version__'],
    description='STAN (CVPR 2023) CLIP-to-video models as an MMAction2 1.x '
    'plugin',
    packages=find_packages(exclude=('tests', 'configs', 'tools')),
    python_requires='>=3.9',
    install_requires=read_requirements(),
    extras_require={'tests': ['pytest', 'flake8', 'isort']},
)
