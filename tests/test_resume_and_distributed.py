"""Kill-and-resume equivalence and 2-process CPU training."""
import os
import os.path as osp
import signal
import socket
import subprocess
import sys

import pytest
import torch
from conftest import (REPO_ROOT, TINY_TRAINING, call_main, copy_work_dir,
                      process_state_kept, run_tool, start_until_file,
                      subprocess_env)

#: Processes, training runs or installs: left out of `make test-quick`.
pytestmark = pytest.mark.slow

CFG = osp.join(REPO_ROOT, 'configs', 'demo', 'stan_tiny_synthetic.py')
# 16 training videos in batches of 2: 8 iterations an epoch; validate once
# at the end; one thread, so that two runs compute bit-identically.
OPTIONS = ['train_cfg.max_epochs=3', 'train_cfg.val_interval=3',
           'train_dataloader.batch_size=2']
ENV = dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')


def train_cmd(work, *extra):
    return [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), CFG,
            '--work-dir', work, '--seed', '0', '--deterministic', *extra,
            '--cfg-options', *OPTIONS]


def final_val_top1(log: str) -> str:
    lines = [ln for ln in log.splitlines() if 'Epoch(val) [3]' in ln]
    assert lines, log[-2000:]
    return lines[-1].split('acc/top1:')[1].split()[0]


def train_in_process(workspace, work, *extra):
    """tools/train.py in this process on one thread (as ENV gives the
    killed subprocess), so that the runs compute bit-identically."""
    with process_state_kept():
        torch.set_num_threads(1)
        return call_main('tools/train.py', train_cmd(work, *extra)[2:],
                         cwd=workspace)


def test_sigkill_then_resume_matches_uninterrupted(demo_workspace, tmp_path):
    """A run killed (SIGKILL, a separate process) after its first
    checkpoint and resumed with --resume ends with the weights and
    accuracy of one that never stopped."""
    work_a, work_b = str(tmp_path / 'a'), str(tmp_path / 'b')
    full = train_in_process(demo_workspace, work_a)
    assert full.returncode == 0, full.stderr[-3000:]

    proc = start_until_file(train_cmd(work_b),
                            osp.join(work_b, 'epoch_1.pth'),
                            cwd=demo_workspace, env_extra=ENV)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not osp.exists(osp.join(work_b, 'epoch_3.pth'))

    resumed = train_in_process(demo_workspace, work_b, '--resume')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = resumed.stdout + resumed.stderr
    assert 'Auto resumed from the latest checkpoint' in log

    assert final_val_top1(log) == final_val_top1(full.stdout + full.stderr)
    ckpt_a = torch.load(osp.join(work_a, 'epoch_3.pth'), weights_only=False)
    ckpt_b = torch.load(osp.join(work_b, 'epoch_3.pth'), weights_only=False)
    assert ckpt_a['state_dict'].keys() == ckpt_b['state_dict'].keys()
    for key, value in ckpt_a['state_dict'].items():
        assert torch.equal(value, ckpt_b['state_dict'][key]), key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_dist_train_two_cpu_processes(demo_workspace, tmp_path):
    work = str(tmp_path / 'dist')
    res = run_tool(['dist_train.sh', CFG, '2', '--work-dir', work,
                    '--cfg-options', 'train_cfg.max_epochs=1',
                    'train_dataloader.batch_size=4'],
                   cwd=demo_workspace,
                   env_extra=dict(PORT=str(free_port()), **ENV))
    assert res.returncode == 0, res.stderr[-4000:]
    log = res.stdout + res.stderr
    assert 'Distributed training: True' in log
    # 16 videos over 2 processes in batches of 4: 2 iterations an epoch.
    assert 'Epoch(train) [1][2/2]' in log
    assert osp.exists(osp.join(work, 'epoch_1.pth'))


def test_resume_without_last_checkpoint_continues_and_keeps_files(
        tiny_trained, demo_workspace, tmp_path):
    """A work dir with checkpoints but no last_checkpoint (the session's
    2-epoch run, copied): --resume goes on from the newest one; the
    earlier run's files are not overwritten."""
    import hashlib
    work = copy_work_dir(tiny_trained, tmp_path / 'w')
    os.remove(osp.join(work, 'last_checkpoint'))

    def digest(name):
        with open(osp.join(work, name), 'rb') as f:
            return hashlib.sha256(f.read()).hexdigest()

    before = {n: digest(n) for n in ('epoch_1.pth', 'epoch_2.pth')}
    options = [o.replace('max_epochs=2', 'max_epochs=3')
               for o in TINY_TRAINING]
    res = call_main('tools/train.py', [CFG, '--work-dir', work, '--resume',
                                       *options], cwd=demo_workspace)
    assert res.returncode == 0, res.stderr[-3000:]
    log = res.stdout + res.stderr
    assert 'resuming from the newest checkpoint' in log
    assert 'resumed epoch: 2' in log, log[-3000:]
    assert {n: digest(n) for n in before} == before
    assert osp.isfile(osp.join(work, 'epoch_3.pth'))
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert f.read().endswith('epoch_3.pth')


def _teardown_code(finished: bool) -> str:
    return ('import atexit, os\n'
            'import torch.distributed as dist\n'
            'atexit.register(lambda: print("alive at exit:", '
            'dist.is_initialized()))\n'
            'os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", '
            f'MASTER_ADDR="127.0.0.1", MASTER_PORT="{free_port()}")\n'
            'import stan_mmaction\n'
            'from stan_mmaction.engine import DistributedTeardownHook\n'
            'from stan_mmaction.engine.runner import '
            'init_cpu_process_group\n'
            'init_cpu_process_group("pytorch", dict(backend="nccl"))\n'
            + ('DistributedTeardownHook().after_run(None)\n' if finished
               else ''))


@pytest.fixture(scope='module')
def teardown_runs():
    """Both processes of the test below, started together (each one's
    exit is what is checked; their imports overlap on the two cores):
    {finished: (returncode, stdout, stderr)}."""
    procs = {finished: subprocess.Popen(
        [sys.executable, '-c', _teardown_code(finished)], cwd=REPO_ROOT,
        env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True) for finished in (True, False)}
    results = {}
    for finished, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        results[finished] = (proc.returncode, out, err)
    return results


@pytest.mark.parametrize('finished', [True, False])
def test_a_finished_run_destroys_its_group_at_exit(teardown_runs, finished):
    """DistributedTeardownHook: a run that ended (after_run) leaves a
    barrier and the group's destruction for exit (an exit handler
    registered before it runs after it and sees the group gone); a run
    that did not end (a crash) registers nothing, so it never waits for
    the other ranks."""
    returncode, stdout, stderr = teardown_runs[finished]
    assert returncode == 0, stderr[-2000:]
    assert f'alive at exit: {not finished}' in stdout
