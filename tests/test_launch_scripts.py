"""tools/dist_*.sh and tools/slurm_*.sh pass every argument on as given,
print a usage line when arguments are missing, keep the current folder off
PYTHONPATH and pick a free port. Python and srun are replaced by stand-ins
that print their argv (and the environment they see) as JSON."""
import json
import os
import os.path as osp
import stat
import subprocess

import pytest
from conftest import REPO_ROOT

STAND_IN = '''#!{python}
import json, os, sys
if sys.argv[1:2] == ['-c']:  # the scripts' free-port helper
    exec(sys.argv[2])
else:
    print(json.dumps(dict(argv=sys.argv[1:],
                          pythonpath=os.environ.get('PYTHONPATH'),
                          master_port=os.environ.get('MASTER_PORT'))))
'''
ODD = ['my dir/config one.py', 'model.x=[1,2]', '*', 'a  b', "it's"]


@pytest.fixture
def stand_ins(tmp_path):
    import sys
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    for name in ('fakepython', 'srun'):
        path = bin_dir / name
        body = STAND_IN.format(python=sys.executable)
        if name == 'srun':  # print argv, do not run the rest
            body = body.replace("sys.argv[1:2] == ['-c']", 'False')
        path.write_text(body)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    # Files that a glob in the arguments would match.
    (tmp_path / 'model.x=1').write_text('')
    (tmp_path / 'zzz').write_text('')
    env = dict(os.environ, PYTHON=str(bin_dir / 'fakepython'),
               PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
               PYTHONPATH='/some/lib:')
    for key in ('PORT', 'MASTER_PORT', 'NNODES'):
        env.pop(key, None)
    return tmp_path, env


def run(script, args, env, cwd):
    return subprocess.run(['bash', osp.join(REPO_ROOT, 'tools', script),
                           *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


def printed(res):
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize('script,fixed', [
    ('dist_train.sh', ['cfg dir/a b.py', '2']),
    ('dist_test.sh', ['cfg dir/a b.py', 'ck pt/e*.pth', '2']),
    ('slurm_train.sh', ['part', 'my job', 'cfg dir/a b.py']),
    ('slurm_test.sh', ['part', 'my job', 'cfg dir/a b.py', 'ck pt/e*.pth']),
])
def test_arguments_pass_through_unchanged(script, fixed, stand_ins):
    cwd, env = stand_ins
    env['SRUN_ARGS'] = '--mem=0 --comment=*'
    out = printed(run(script, fixed + ODD, env, cwd))
    argv = out['argv']
    tools = osp.join(REPO_ROOT, 'tools')
    if script.startswith('dist'):
        assert argv[:2] == ['-m', 'torch.distributed.run']
        tool = 'train.py' if 'train' in script else 'test.py'
        i = argv.index(osp.join(tools, tool))
        rest = fixed[:-1]  # all but GPUS
        assert argv[i + 1:] == rest + ['--launcher', 'pytorch'] + ODD
        assert '--nproc_per_node=2' in argv
        port = int([a for a in argv if a.startswith('--master_port=')][0]
                   .split('=')[1])
        assert 1024 <= port <= 65535
    else:
        # srun's own options, the split SRUN_ARGS (no globbing), then python.
        assert argv[:2] == ['-p', 'part'] and '--job-name=my job' in argv
        assert '--mem=0' in argv and '--comment=*' in argv
        i = argv.index(env['PYTHON'])
        tool = 'train.py' if 'train' in script else 'test.py'
        assert argv[i + 1:i + 3] == ['-u', osp.join(tools, tool)]
        assert argv[i + 3:] == fixed[2:] + ['--launcher=slurm'] + ODD
        assert int(out['master_port']) > 0
    # The repository first, no empty entry (which means the current folder).
    assert out['pythonpath'].split(os.pathsep) == [
        osp.join(tools, '..'), '/some/lib']


@pytest.mark.parametrize('script,need', [
    ('dist_train.sh', 'CONFIG GPUS'), ('dist_test.sh', 'CONFIG CHECKPOINT '
                                       'GPUS'),
    ('slurm_train.sh', 'PARTITION JOB_NAME CONFIG'),
    ('slurm_test.sh', 'PARTITION JOB_NAME CONFIG CHECKPOINT')])
def test_missing_arguments_print_usage(script, need, stand_ins):
    cwd, env = stand_ins
    res = run(script, ['only-one'], env, cwd)
    assert res.returncode == 2
    assert 'Usage: bash ' in res.stderr and need in res.stderr
    assert res.stdout == ''


def test_two_launches_pick_different_free_ports_and_port_wins(stand_ins):
    cwd, env = stand_ins

    def port(extra=None):
        out = printed(run('dist_train.sh', ['c.py', '1'],
                          dict(env, **(extra or {})), cwd))
        return [a for a in out['argv'] if a.startswith('--master_port=')][0]

    ports = {port() for _ in range(3)}
    assert len(ports) >= 2  # the OS hands out different free ports
    assert port(dict(PORT='29611')) == '--master_port=29611'
    res = run('dist_train.sh', ['c.py', '1'], dict(env, NNODES='2'), cwd)
    assert res.returncode == 2 and 'set PORT' in res.stderr
