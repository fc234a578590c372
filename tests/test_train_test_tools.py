"""tools/train.py and tools/test.py on the pinned stack."""
import glob
import os.path as osp

import pytest
import torch
from conftest import (DEMO_CFG, TINY_TRAINING, call_main, copy_work_dir,
                      load_script, run_python)
from mmengine.config import Config


def load_tool(name):
    return load_script(f'tools/{name}.py')


@pytest.mark.slow
def test_plugin_and_mmaction_models_import_in_fresh_interpreter():
    res = run_python('import stan_mmaction, mmaction.models\n'
                     'from mmaction.registry import MODELS\n'
                     'print(MODELS.get("StanCLIPBackbone").__name__)')
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == 'StanCLIPBackbone'


def test_train_args_map_to_config():
    train = load_tool('train')
    cfg = Config.fromfile(DEMO_CFG)
    args = train.argparse.Namespace(
        no_validate=False, work_dir='/tmp/wd', amp=True, resume='ckpt.pth',
        auto_scale_lr=False, seed=7, diff_rank_seed=False, deterministic=True,
        launcher='none', cfg_options={'train_cfg.max_epochs': 3},
        config=DEMO_CFG)
    cfg = train.merge_args(cfg, args)
    assert cfg.work_dir == '/tmp/wd'
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    assert cfg.resume is True and cfg.load_from == 'ckpt.pth'
    assert cfg.randomness == dict(seed=7, deterministic=True)
    assert cfg.train_cfg.max_epochs == 3
    args.resume, args.work_dir, args.amp = 'auto', None, False
    cfg = train.merge_args(Config.fromfile(DEMO_CFG), args)
    assert cfg.resume is True and cfg.load_from is None
    assert cfg.work_dir == './work_dirs/stan_tiny_synthetic'


@pytest.mark.slow
def test_train_resume_auto_and_test(tiny_trained, demo_workspace, tmp_path):
    """The session's training run (tools/train.py, 2 epochs of 4
    iterations), resumed with --resume (auto) to a third epoch, then
    tools/test.py on its checkpoint; the tools run in this process."""
    assert sorted(osp.basename(p) for p in glob.glob(
        f'{tiny_trained}/*.pth')) == ['epoch_1.pth', 'epoch_2.pth']
    work = copy_work_dir(tiny_trained, tmp_path / 'work')
    options = [o.replace('max_epochs=2', 'max_epochs=3')
               for o in TINY_TRAINING]
    second = call_main('tools/train.py', [DEMO_CFG, '--work-dir', work,
                                          '--resume', *options],
                       cwd=demo_workspace)
    assert second.returncode == 0, second.stderr[-3000:]
    log = second.stdout + second.stderr
    assert f'Auto resumed from the latest checkpoint {work}/epoch_2.pth' \
        in log
    assert 'resumed epoch: 2, iter: 8' in log
    ckpt = torch.load(f'{work}/epoch_3.pth', map_location='cpu',
                      weights_only=False)
    assert ckpt['meta']['epoch'] == 3 and ckpt['meta']['iter'] == 12

    test = call_main('tools/test.py', [DEMO_CFG, f'{work}/epoch_3.pth',
                                       '--work-dir', work],
                     cwd=demo_workspace)
    assert test.returncode == 0, test.stderr[-3000:]
    assert 'Epoch(test) [1/1]' in test.stdout + test.stderr
    assert 'acc/top1:' in test.stdout + test.stderr
    assert set(test.value) == {'acc/top1', 'acc/top5', 'acc/mean1'}


def test_test_tool_rejects_bad_dump_name():
    tool = load_tool('test')
    args = tool.argparse.Namespace(work_dir=None, checkpoint='x.pth',
                                   launcher='none', dump='out.json',
                                   cfg_options=None, config=DEMO_CFG)
    with pytest.raises(ValueError, match='--dump must be a .pkl file'):
        tool.merge_args(Config.fromfile(DEMO_CFG), args)
