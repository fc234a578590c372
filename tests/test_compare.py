"""STAN beside MMAction2's own models: a configs/compare/ model trains and
tests with our tools, and the comparison tool tabulates work dirs; the
FLOP counter and the benchmark take mmaction:: configs."""
import csv
import json
import os.path as osp

import pytest
from conftest import DEMO_CFG, REPO_ROOT, call_main, copy_work_dir

COMPARE = sorted(osp.join('configs', 'compare', name) for name in (
    'tsn_r18_tiny_synthetic.py', 'tsm_r18_tiny_synthetic.py',
    'x3d_tiny_synthetic.py'))
# The MMAction2 model base each one writes out.
MMACTION_BASE = {'tsn': 'tsn_r50.py', 'tsm': 'tsm_r50.py', 'x3d': 'x3d.py'}
X3D_S = 'mmaction::recognition/x3d/x3d_s_13x6x1_facebook-kinetics400-rgb.py'


@pytest.mark.parametrize('rel', COMPARE)
def test_compare_configs_are_mmaction_models_on_the_demo_data(rel):
    from mmengine.config import Config

    from stan_mmaction.utils import build_model_without_weights, load_config

    # No `pkg::` base: it loads in MMAction2's own tools too.
    assert not any('::' in b for b in Config._get_base_files(
        osp.join(REPO_ROOT, rel)))
    cfg = Config.fromfile(osp.join(REPO_ROOT, rel))
    # MMAction2's own model: the types and input handling of its base.
    base = load_config('mmaction::_base_/models/' +
                       MMACTION_BASE[osp.basename(rel)[:3]]).model
    for part in ('backbone', 'cls_head'):
        assert cfg.model[part].type == base[part].type
    assert cfg.model.type == base.type
    assert {k: v for k, v in cfg.model.data_preprocessor.items()
            if k != '_scope_'} == {k: v for k, v in
                                   base.data_preprocessor.items()
                                   if k != '_scope_'}
    demo = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'demo',
                                    'stan_tiny_synthetic.py'))
    # Same data, sampling, schedule and seed as the STAN demo.
    for key in ('train_dataloader', 'val_dataloader'):
        ours, theirs = cfg[key].dataset, demo[key].dataset
        assert ours.ann_file == theirs.ann_file
        assert ours.num_classes == theirs.num_classes == 8
    assert cfg.optim_wrapper == demo.optim_wrapper
    assert cfg.param_scheduler == demo.param_scheduler
    assert cfg.train_cfg == demo.train_cfg and cfg.randomness.seed == 0
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.default_scope)  # as the runner does
    model = build_model_without_weights(cfg.model)
    model.init_weights()  # from random initialisation, nothing to load
    assert model.cls_head.num_classes == 8
    assert cfg.model.backbone.get('pretrained') is None


@pytest.mark.parametrize('rel', COMPARE)
def test_compare_pipelines_give_eight_frames(rel, demo_workspace):
    """Training and test samples hold the 8 frames the model expects (a
    2D pipeline with UniformSample(clip_len=1) gave TSN one frame)."""
    from mmaction.registry import DATASETS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    init_default_scope('mmaction')
    cfg = Config.fromfile(osp.join(REPO_ROOT, rel))
    root = osp.join(demo_workspace, 'data', 'synthetic')
    for key in ('train_dataloader', 'test_dataloader'):
        dataset = cfg[key].dataset
        dataset.ann_file = osp.join(root, osp.basename(dataset.ann_file))
        dataset.data_prefix = dict(video=root)
        inputs = DATASETS.build(dataset)[0]['inputs']
        expected = (1, 3, 8, 32, 32) if 'x3d' in rel else (8, 3, 32, 32)
        assert tuple(inputs.shape) == expected, (rel, key)


@pytest.mark.slow
def test_train_test_and_compare_two_work_dirs(
        tiny_trained, demo_workspace, tmp_path):
    """X3D trained and tested with our tools, STAN-attn from the session's
    training run (tested here), then compared from the two work dirs."""
    x3d = osp.join(REPO_ROOT, 'configs', 'compare', 'x3d_tiny_synthetic.py')
    x3d_work = str(tmp_path / 'x3d_tiny_synthetic')
    train = call_main('tools/train.py', [
        x3d, '--work-dir', x3d_work, '--cfg-options',
        'train_cfg.max_epochs=1', 'train_dataloader.batch_size=8'],
        cwd=demo_workspace)
    assert train.returncode == 0, train.stderr[-3000:]
    stan_work = copy_work_dir(tiny_trained, tmp_path / 'stan_tiny_synthetic')
    works = [x3d_work, stan_work]
    for cfg, work, ckpt in ((x3d, x3d_work, 'epoch_1.pth'),
                            (DEMO_CFG, stan_work, 'epoch_2.pth')):
        test = call_main('tools/test.py', [cfg, f'{work}/{ckpt}',
                                           '--work-dir', work],
                         cwd=demo_workspace)
        assert test.returncode == 0, test.stderr[-3000:]
    stan = DEMO_CFG
    out = tmp_path / 'compare'
    proc = call_main('tools/analysis_tools/compare.py', [
        x3d, stan, '--work-dirs', *works, '--names', 'X3D', 'STAN-attn',
        '--repeats', '1', '--warmup', '0', '--out-dir', str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    columns = ['model', 'params (M)', 'GFLOPs', 'latency (ms)', 'clips/s',
               'peak memory (MiB)', 'train s/epoch', 'metric', 'result']
    with open(out / 'results.csv') as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == columns
    assert [r['model'] for r in rows] == ['X3D', 'STAN-attn']
    for row, work in zip(rows, works):
        with open(osp.join(work, 'test_metrics.json')) as f:
            top1 = json.load(f)['acc/top1']
        assert row['metric'] == 'top-1 (%)'
        assert float(row['result']) == pytest.approx(100 * top1)
        for key in ('params (M)', 'GFLOPs', 'latency (ms)', 'clips/s',
                    'train s/epoch'):
            assert float(row[key]) > 0, key
    assert float(rows[1]['GFLOPs']) == pytest.approx(0.086, abs=0.001)
    table = (out / 'results.md').read_text()
    assert table.startswith('Machine: ')
    assert '| ' + ' | '.join(columns) + ' |' in table
    assert '| X3D |' in table and '| STAN-attn |' in table
    assert (out / 'results.png').read_bytes()[:4] == b'\x89PNG'
    assert table in proc.stdout


@pytest.mark.slow
def test_flops_and_benchmark_take_mmaction_configs(tmp_path):
    flops = call_main('tools/analysis_tools/get_flops.py', [X3D_S])
    assert flops.returncode == 0, flops.stderr[-2000:]
    assert 'FLOPs:' in flops.stdout and flops.value['flops'] > 1e9
    # in this process (the tool's subprocess path: tests/test_benchmark.py)
    bench = call_main('tools/analysis_tools/benchmark.py', [
        X3D_S, '--repeats', '1', '--warmup', '0', '--out-dir',
        str(tmp_path)])
    assert bench.returncode == 0, bench.stderr[-2000:]
    assert '| x3d_s_13x6x1_facebook-kinetics400-rgb |' in bench.stdout
    results = json.loads((tmp_path / 'results.json').read_text())
    assert results['inference'][0]['gflops'] > 1  # X3D-S: ~6 (mul+add)


def test_compare_and_qb_norm_arguments_are_checked(tmp_path):
    proc = call_main('tools/analysis_tools/compare.py',
                     ['a.py', 'b.py', '--work-dirs', 'only_one'])
    assert proc.returncode == 2
    assert '--work-dirs: 1 given for 2 configs' in proc.stderr
    demo = osp.join(REPO_ROOT, 'configs', 'demo', 'stan_tiny_synthetic.py')
    proc = call_main('tools/test.py', [demo, 'none', '--work-dir',
                                       str(tmp_path), '--qb-norm'])
    assert proc.returncode != 0
    assert '--qb-norm is for retrieval configs' in proc.stderr
    assert not (tmp_path / 'test_metrics.json').exists()
