"""Every shipped config trains, validates, resumes and tests as shipped,
through tools/train.py and tools/test.py, with only data, model size,
resolution, batch size and the AMP wrapper swapped (``tests/_shipped.py``
says how; docs/reliability.md, "Every shipped config, as shipped")."""
import glob
import json
import os.path as osp
import subprocess

import pytest
import torch
from _shipped import tiny_options, write_tiny_data
from conftest import REPO_ROOT, call_main, subprocess_env
from mmengine.config import Config

SHIPPED = sorted(
    osp.relpath(p, REPO_ROOT)
    for p in glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'),
                       recursive=True) if '_base_' not in p)

#: Configs whose training the CPU cannot run, and why; their test path
#: (tools/test.py, which runs every config with the ordinary runner) is
#: still run, on the weights of a tiny model of their own.
NOT_TRAINED_HERE = {
    'configs/recognition/stan/'
    'stan-attn_vit-large-p14-res224-clip-pre_zero2_1x1x8_k400-rgb.py':
    'DeepSpeed ZeRO-2 needs CUDA GPUs (and deepspeed); make '
    'test-deepspeed builds its strategy with DeepSpeed\'s own config class',
}


def _strategy(cfg) -> str:
    return cfg.get('strategy', {}).get('type', '') if 'strategy' in cfg \
        else ''


@pytest.fixture(scope='module')
def clip_file(tmp_path_factory):
    """A tiny CLIP (both towers) saved as open_clip names, what
    ``pretrained=`` reads."""
    from stan_mmaction.models import build_clip
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('clip') / 'tiny_clip.pt'
    torch.save(build_clip('tiny').state_dict(), path)
    return str(path)


def _train(cfg_path, cfg, work, opts, ws, epochs, resume=False):
    """tools/train.py in this process, or tools/dist_train.sh on 2 CPU
    processes for a sharded config; returns (log, runner or None)."""
    argv = [cfg_path, '--work-dir', work, *(['--resume'] if resume else []),
            '--cfg-options', *opts, f'train_cfg.max_epochs={epochs}']
    if _strategy(cfg):
        cmd = ['bash', osp.join(REPO_ROOT, 'tools', 'dist_train.sh'),
               argv[0], '2', *argv[1:]]
        env = subprocess_env(dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1'))
        res = subprocess.run(cmd, cwd=ws, env=env, capture_output=True,
                             text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-4000:]
        return res.stdout + res.stderr, None
    res = call_main('tools/train.py', argv, cwd=ws)
    assert res.returncode == 0, res.stderr[-4000:]
    return res.stdout + res.stderr, res.value


def _val_metrics(work):
    """The validation metrics of every epoch, from the runs' scalars."""
    out = {}
    for path in glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json')):
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                if 'lr' not in row and 'step' in row:
                    out[row['step']] = row
    return out


@pytest.mark.slow
@pytest.mark.parametrize('rel', SHIPPED)
def test_shipped_config_trains_validates_resumes_and_tests(
        rel, clip_file, tmp_path):
    cfg_path = osp.join(REPO_ROOT, rel)
    cfg = Config.fromfile(cfg_path)
    ws, work = str(tmp_path / 'ws'), str(tmp_path / 'ws' / 'work')
    write_tiny_data(cfg, ws)
    opts = tiny_options(cfg, clip_file)

    if rel in NOT_TRAINED_HERE:
        from conftest import save_random_checkpoint
        ckpt = str(tmp_path / 'weights.pth')
        save_random_checkpoint(_options_applied(cfg, opts), ckpt)
        _test(cfg_path, ckpt, work, opts, ws, cfg)
        return

    # Epoch 1, then --resume (auto) to epoch 2; validation after each.
    _train(cfg_path, cfg, work, opts, ws, epochs=1)
    log, runner = _train(cfg_path, cfg, work, opts, ws, epochs=2,
                         resume=True)
    assert 'Auto resumed from the latest checkpoint' in log
    assert 'resumed epoch: 1' in log
    assert osp.isfile(osp.join(work, 'epoch_2.pth'))

    # The shipped checkpoint hook: best checkpoint by the right rule.
    hook_cfg = cfg.default_hooks.checkpoint
    best = glob.glob(osp.join(work, 'best_*.pth'))
    if hook_cfg.get('save_best') is None:
        assert best == []
        ckpt = osp.join(work, 'epoch_2.pth')
    else:
        assert len(best) == 1, best
        ckpt = best[0]
        metrics = _val_metrics(work)
        assert sorted(metrics) == [1, 2], metrics
        key = next(k for k in metrics[1] if '/' in k)  # the first metric
        rule = ('less' if key.endswith(('MdR', 'MnR')) else 'greater')
        scores = [metrics[e][key] for e in (1, 2)]
        pick = (max if rule == 'greater' else min)(scores)
        epoch = scores.index(pick) + 1  # ties keep the first
        assert osp.basename(ckpt) == \
            f'best_{key.replace("/", "_")}_epoch_{epoch}.pth'
        if runner is not None:
            (hook, ) = [h for h in runner.hooks
                        if type(h).__name__ == 'StanCheckpointHook']
            assert hook.rules == [rule]
            assert runner.message_hub.get_info('best_score') == pick
    _test(cfg_path, ckpt, work, opts, ws, cfg)


def _options_applied(cfg, opts):
    from mmengine.config import DictAction
    parsed = {}
    for opt in opts:
        key, value = opt.split('=', 1)
        parsed[key] = DictAction._parse_iterable(value)
    cfg = Config(cfg.to_dict())
    cfg.merge_from_dict(parsed)
    return cfg


def _test(cfg_path, ckpt, work, opts, ws, cfg):
    res = call_main('tools/test.py', [cfg_path, ckpt, '--work-dir', work,
                                      '--cfg-options', *opts], cwd=ws)
    assert res.returncode == 0, res.stderr[-4000:]
    metrics = res.value
    evaluator = cfg.test_evaluator.type
    if evaluator == 'VideoTextRetrievalMetric':
        assert 0 <= metrics['retrieval/t2v_R1'] <= 100
        assert metrics['retrieval/t2v_MdR'] >= 1
    else:
        assert 0 <= metrics['acc/top1'] <= 1
    return metrics


def test_every_shipped_config_is_in_the_test():
    """New configs are picked up by the glob; the list holds every
    folder's (a moved folder would drop out silently otherwise)."""
    folders = {osp.dirname(rel) for rel in SHIPPED}
    assert {'configs', 'configs/demo', 'configs/compare',
            'configs/recognition/stan', 'configs/retrieval/stan'} <= folders
    assert set(NOT_TRAINED_HERE) <= set(SHIPPED)


@pytest.mark.slow
def test_design_card_commands_verbatim(clip_file, tmp_path):
    """The README's Kinetics-400 commands as a user types them, from a
    folder holding tools/, configs/ and data/ (a clone with its data):
    the short config name, its default work dir, tools/test.py on that
    run's checkpoint, tools/dist_train.sh on 2 processes. Swapped: the
    tiny override set (``--cfg-options``), 1 epoch (so ``epoch_1.pth``
    for ``epoch_30.pth``) and 2 processes for 8 GPUs."""
    import shlex
    import sys

    from conftest import readme_block
    lines = [line.split('#')[0].strip() for line in
             readme_block('tests/test_shipped_configs.py').splitlines()]
    lines = [line for line in lines if line]
    assert [line.split()[:3] for line in lines] == [
        ['python', 'tools/train.py', 'configs/stan_vitb16_k400.py'],
        ['python', 'tools/test.py', 'configs/stan_vitb16_k400.py'],
        ['bash', 'tools/dist_train.sh', 'configs/stan_vitb16_k400.py']]
    ws = tmp_path / 'clone'
    ws.mkdir()
    for name in ('tools', 'configs'):
        (ws / name).symlink_to(osp.join(REPO_ROOT, name))
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs',
                                   'stan_vitb16_k400.py'))
    write_tiny_data(cfg, str(ws))
    opts = [*tiny_options(cfg, clip_file), 'train_cfg.max_epochs=1']
    env = subprocess_env(dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1'))
    logs = []
    for line in lines:
        line = line.replace('epoch_30.pth', 'epoch_1.pth')
        argv = shlex.split(line)
        if argv[0] == 'python':
            argv[0] = sys.executable
        if argv[1] == 'tools/dist_train.sh':
            argv[3] = '2'
        res = subprocess.run([*argv, '--cfg-options', *opts], cwd=ws,
                             env=env, capture_output=True, text=True,
                             timeout=600)
        assert res.returncode == 0, (line, res.stderr[-4000:])
        logs.append(res.stdout + res.stderr)
        work = ws / 'work_dirs' / 'stan_vitb16_k400'
        assert (work / 'epoch_1.pth').is_file(), line
    train, test, dist = logs
    assert 'Epoch(val) [1][2/2]' in train
    assert (work / 'best_acc_top1_epoch_1.pth').is_file()
    assert 'Epoch(test)' in test and 'acc/top1:' in test
    assert 'Distributed training: True' in dist, dist[-3000:]
    # 4 training videos in batches of 2: 2 iterations in one process, 1
    # on each of 2.
    assert 'Epoch(train) [1][2/2]' in train
    assert 'Epoch(train) [1][1/1]' in dist
