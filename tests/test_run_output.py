"""What a run prints: one summary line for paramwise_cfg, no deprecation
notes from MMEngine's own calls, no hook table, the CPU memory note only
when training, the config dump without scope tags; and data errors in one
line before anything is built (docs/reliability.md, "What a run
prints")."""
import os.path as osp

import pytest
from conftest import DEMO_CFG, call_main

ONE_EPOCH = ['--cfg-options', 'train_cfg.max_epochs=1',
             'train_dataloader.batch_size=8']


@pytest.mark.slow
def test_a_training_run_prints_what_matters(demo_workspace, tmp_path):
    res = call_main('tools/train.py', [DEMO_CFG, '--work-dir',
                                       str(tmp_path / 'w'), *ONE_EPOCH],
                    cwd=demo_workspace)
    assert res.returncode == 0, res.stderr[-3000:]
    log = res.stdout + res.stderr
    assert 'paramwise_options' not in log
    (summary, ) = [line for line in log.splitlines()
                   if 'paramwise_cfg:' in line]
    groups = res.value.optim_wrapper.optimizer.param_groups
    lrs = sorted(g['initial_lr'] for g in groups)  # before the schedule
    assert f'paramwise_cfg: {len(groups)} parameter tensors; lr: ' \
        f'{lrs.count(lrs[0])} at lr {lrs[0]:g}' in summary
    assert 'FileClient' not in log and 'HardDiskBackend' not in log
    assert 'Hooks will be executed' not in log
    assert log.count('CPU training: freed memory is kept') == 1
    assert 'Config:' in log and 'Epoch(train) [1][2/2]' in log

    test = call_main('tools/test.py', [DEMO_CFG, str(tmp_path / 'w' /
                                                     'epoch_1.pth'),
                                       '--work-dir', str(tmp_path / 't')],
                     cwd=demo_workspace)
    assert test.returncode == 0, test.stderr[-3000:]
    assert 'freed memory' not in test.stdout + test.stderr  # not training

    # log_level DEBUG: MMEngine's lines are all there again.
    debug = call_main('tools/train.py', [
        DEMO_CFG, '--work-dir', str(tmp_path / 'd'), *ONE_EPOCH,
        'log_level=DEBUG'], cwd=demo_workspace)
    assert debug.returncode == 0, debug.stderr[-3000:]
    lines = (debug.stdout + debug.stderr).splitlines()
    assert sum('paramwise_options --' in line for line in lines) > 10
    assert any('Hooks will be executed' in line for line in lines)


@pytest.mark.slow
def test_config_dump_of_a_scope_config_has_no_scope_tags(demo_workspace,
                                                         tmp_path):
    """A config of the user's inheriting through the package scope (the
    README's my_stan.py): MMEngine tags every type dict with
    _scope_='stan_mmaction'; the log leaves them out, the dumped config
    file keeps them."""
    mine = tmp_path / 'my_stan.py'
    mine.write_text("_base_ = ['stan_mmaction::demo/stan_tiny_synthetic.py']"
                    '\ntrain_cfg = dict(max_epochs=1)\n')
    work = tmp_path / 'w'
    res = call_main('tools/train.py', [str(mine), '--work-dir', str(work)],
                    cwd=demo_workspace)
    assert res.returncode == 0, res.stderr[-3000:]
    log = res.stdout + res.stderr
    assert "type='StanCLIPBackbone'" in log
    assert '_scope_=' not in log
    dumped = open(osp.join(str(work), 'my_stan.py')).read()
    assert "_scope_='stan_mmaction'" in dumped


def test_data_errors_are_one_line_before_the_runner(demo_workspace,
                                                    tmp_path, monkeypatch):
    root = tmp_path / 'ws'
    (root / 'data').mkdir(parents=True)
    # A missing list file.
    res = call_main('tools/train.py', [DEMO_CFG, '--work-dir',
                                       str(tmp_path / 'w')], cwd=str(root))
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        'Error: train_dataloader.dataset: data/synthetic/train_list_videos'
        '.txt: No such file or directory']
    assert res.stdout == ''  # nothing built, nothing logged
    assert not (tmp_path / 'w').exists()
    # A bad line: FILE:LINE, for test as for train.
    import shutil
    shutil.copytree(osp.join(demo_workspace, 'data'), str(root / 'data'),
                    dirs_exist_ok=True)
    val = root / 'data' / 'synthetic' / 'val_list_videos.txt'
    val.write_text(val.read_text() + 'extra.mp4 0 3\n')
    res = call_main('tools/test.py', [DEMO_CFG, 'none', '--work-dir',
                                      str(tmp_path / 'w')], cwd=str(root))
    assert res.returncode == 1
    (line, ) = res.stderr.strip().splitlines()
    lines = len(val.read_text().splitlines())
    assert line.startswith(
        'Error: test_dataloader.dataset: data/synthetic/val_list_videos.txt:'
        f"{lines}: 'extra.mp4 0 3' looks like a multi-label list"), line
    assert res.stdout == ''
    # The traceback on request.
    from stan_mmaction.apis.data_check import DataCheckError
    monkeypatch.setenv('STAN_MMACTION_TRACEBACK', '1')
    with pytest.raises(DataCheckError, match='looks like a multi-label'):
        call_main('tools/test.py', [DEMO_CFG, 'none', '--work-dir',
                                    str(tmp_path / 'w')], cwd=str(root))
