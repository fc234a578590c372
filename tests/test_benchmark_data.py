"""tools/analysis_tools/benchmark_data.py on videos written here: every
combination measured, the prepared copies made and timed, the speed-ups
and the cores-per-GPU arithmetic computed from the rows it printed."""
import json
import math
import os.path as osp

import pytest
from conftest import REPO_ROOT, call_main, write_video

from stan_mmaction.analysis.data_bench import (cores_per_gpu, geometric_mean,
                                               gpu_rates, train_pipeline)
from stan_mmaction.utils import load_config

K400 = osp.join(REPO_ROOT, 'configs', 'recognition', 'stan',
                'stan-attn_vit-base-p16-res224-clip-pre_1x1x8_k400-rgb.py')
TINY = osp.join(REPO_ROOT, 'configs', 'demo', 'stan_tiny_synthetic.py')


def test_arithmetic_and_pipeline_selection():
    assert geometric_mean([2.0, 8.0]) == pytest.approx(4.0)
    assert cores_per_gpu(173.0, 11.5) == pytest.approx(15.04, abs=0.01)
    rates = gpu_rates({'b16': 173.0}, {'b16': {8: 2.0, 16: 4.0, 12: 3.0}})
    assert rates['b16'][8] == 173.0 and rates['b16'][16] == 86.5
    assert rates['b16'][12] == pytest.approx(115.33, abs=0.01)
    steps = train_pipeline(load_config(K400), 'pyav')
    assert steps[0]['type'] == 'VideoInit' and steps[0]['backend'] == 'pyav'
    assert steps[-1] == dict(type='PackActionInputs')
    with pytest.raises(ValueError, match='DecordInit in the training'):
        train_pipeline(load_config(TINY), 'pyav')


def test_tool_refuses_a_missing_video(tmp_path):
    out = tmp_path / 'bench'
    res = call_main('tools/analysis_tools/benchmark_data.py', [
        '--videos', str(tmp_path / 'nope.mp4'), '--out-dir', str(out)])
    assert res.returncode != 0 and 'nope.mp4: no such video' in res.stderr
    assert not out.exists()


@pytest.mark.slow
def test_tool_measures_every_combination(tmp_path):
    videos = [write_video(str(tmp_path / 'v' / 'a.mp4'), 160, 120, 40),
              write_video(str(tmp_path / 'v' / 'b.mp4'), 120, 160, 30,
                          seed=1)]
    out = tmp_path / 'bench'
    res = call_main('tools/analysis_tools/benchmark_data.py', [
        '--videos', *videos, '--configs', K400, '--workers', '0', '1',
        '--clips', '3', '--short-side', '96', '--gpu-rate', f'{TINY}=100',
        '--frames', '8', '16', '--out-dir', str(out)])
    assert res.returncode == 0, res.stderr[-3000:]
    data = json.loads((out / 'results.json').read_text())
    assert data == res.value
    rows = data['pipelines']
    # pipeline x reader x (original, prepared) x videos x workers
    assert len(rows) == 1 * 2 * 2 * 2 * 2
    for r in rows:
        assert r['shape'] == [1, 3, 8, 224, 224]
        assert r['per_core'] == pytest.approx(
            r['clips_per_s'] / max(1, r['workers']))
    assert [p['prepared'] for p in data['prepare']] == ['128x96', '96x128']
    assert all(p['realtime'] > 0 for p in data['prepare'])
    for s in data['speedups']:
        sel = [r for r in rows if (r['backend'], r['workers']) ==
               (s['backend'], s['workers'])]
        ratio = [p['per_core'] / o['per_core'] for o, p in
                 zip([r for r in sel if r['files'] == 'original'],
                     [r for r in sel if r['files'] == 'prepared'])]
        assert s['speedup'] == pytest.approx(
            math.exp(sum(map(math.log, ratio)) / len(ratio)))
    cores = {c['frames']: c for c in data['cores_per_gpu']}
    assert cores[8]['gpu_clips_per_s'] == pytest.approx(100)
    assert cores[16]['gpu_clips_per_s'] == pytest.approx(
        100 * cores[8]['gflops'] / cores[16]['gflops'])
    best = max(s['original'] for s in data['speedups'])
    assert cores[8]['cores_original'] == pytest.approx(100 / best)
    table = (out / 'results.md').read_text()
    assert table.startswith('Machine: ') and 'prepared / original' in table
