"""Precision, compilation and batched, overlapped decoding of the inference
tools (demo/demo.py, tools/search.py, tools/extract_features.py,
tools/test.py --dtype): ``auto`` from the CPU's features, bf16 close to
fp32, dtypes recorded and never mixed, compiled equal to eager. The tools'
``main`` runs in this process (no ~10 s interpreter start per call)."""
import json
import os.path as osp
import pickle
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import (REPO_ROOT, call_main, load_script,
                      save_random_checkpoint, write_videos)

from stan_mmaction.apis import (StanInferencer, embed_video, init_model,
                                resolve_dtype)
from stan_mmaction.datasets import SYNTHETIC_CLASSES
from stan_mmaction.utils import precision

RETRIEVAL_CFG = osp.join(REPO_ROOT, 'configs', 'demo',
                         'stan_tiny_synthetic_retrieval.py')
RECOGNITION_CFG = osp.join(REPO_ROOT, 'configs', 'demo',
                           'stan_tiny_synthetic.py')
AMX = 'processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f amx_bf16 amx_tile\n'
AVX512_BF16 = 'flags\t\t: fpu avx2 avx512f avx512_bf16\n'
AVX2 = 'flags\t\t: fpu sse2 avx avx2 fma\n'


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('precision')
    ckpt = str(root / 'retrieval.pth')
    save_random_checkpoint(RETRIEVAL_CFG, ckpt)
    videos = write_videos(root / 'videos', [0, 3, 5], frames=24)
    (root / 'videos' / 'broken.mp4').write_text('not a video')
    ref = StanInferencer(RETRIEVAL_CFG, ckpt)
    fp32 = {p: embed_video(ref, p) for p in videos}
    return root, ckpt, videos, fp32


def copy_folder(setup, dest):
    root = setup[0]
    shutil.copytree(root / 'videos', dest)
    return str(dest)


def test_auto_decision_can_be_forced(monkeypatch):
    """STAN_MMACTION_AUTO_DTYPE replaces what ``auto`` would pick from the
    machine (both ways), leaves explicit dtypes alone, and a bad value is
    a named error."""
    monkeypatch.setenv(precision.AUTO_DTYPE_ENV, 'bf16')
    assert resolve_dtype('auto', 'cpu', cpuinfo=AVX2) == 'bf16'
    assert resolve_dtype('fp32', 'cpu', cpuinfo=AVX2) == 'fp32'
    monkeypatch.setenv(precision.AUTO_DTYPE_ENV, 'fp32')
    assert resolve_dtype('auto', 'cpu', cpuinfo=AMX) == 'fp32'
    assert resolve_dtype('auto', 'cuda') == 'fp32'
    assert resolve_dtype('bf16', 'cpu', cpuinfo=AMX) == 'bf16'
    monkeypatch.setenv(precision.AUTO_DTYPE_ENV, 'fp16')
    assert resolve_dtype('auto', 'cuda:0') == 'fp16'
    with pytest.raises(ValueError, match='STAN_MMACTION_AUTO_DTYPE=fp16: '
                       'fp16 is for GPUs'):
        resolve_dtype('auto', 'cpu')
    monkeypatch.setenv(precision.AUTO_DTYPE_ENV, 'float32')
    with pytest.raises(ValueError, match="STAN_MMACTION_AUTO_DTYPE="
                       "'float32': use one of fp32, bf16, fp16"):
        resolve_dtype('auto', 'cpu')
    monkeypatch.setenv(precision.AUTO_DTYPE_ENV, '')  # empty: not forced
    assert resolve_dtype('auto', 'cpu', cpuinfo=AVX2) == 'fp32'


def cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(a.float(), b.float(), dim=-1)


def test_auto_resolves_from_the_cpu_features(monkeypatch):
    monkeypatch.delenv(precision.AUTO_DTYPE_ENV, raising=False)
    assert resolve_dtype('auto', 'cpu', cpuinfo=AMX) == 'bf16'
    assert resolve_dtype('auto', 'cpu', cpuinfo=AVX512_BF16) == 'bf16'
    assert resolve_dtype('auto', 'cpu', cpuinfo=AVX2) == 'fp32'
    assert resolve_dtype('fp32', 'cpu', cpuinfo=AMX) == 'fp32'
    assert resolve_dtype('bf16', 'cpu', cpuinfo=AVX2) == 'bf16'
    with pytest.raises(ValueError, match='fp16 is for GPUs'):
        resolve_dtype('fp16', 'cpu', cpuinfo=AMX)
    with pytest.raises(ValueError, match="dtype 'fp8': use one of auto"):
        resolve_dtype('fp8', 'cpu')
    # This machine's features are read once, then reused.
    calls = []
    monkeypatch.setattr(precision, '_CPU_NATIVE_BF16', None)
    monkeypatch.setattr(precision, 'cpu_has_native_bf16',
                        lambda: calls.append(1) or True)
    assert resolve_dtype('auto') == resolve_dtype('auto') == 'bf16'
    assert len(calls) == 1
    monkeypatch.setattr(precision, '_CPU_NATIVE_BF16', False)
    assert resolve_dtype('auto') == 'fp32'
    # GPUs: bf16 where supported, else fp16.
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda: True)
    assert resolve_dtype('auto', 'cuda:0') == 'bf16'
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda: False)
    assert resolve_dtype('auto', 'cuda') == 'fp16'
    assert resolve_dtype('fp16', 'cuda') == 'fp16'


def test_cast_model_bf16_matches_fp32_and_returns_fp32(setup):
    root, ckpt, videos, fp32 = setup
    inferencer = StanInferencer(RETRIEVAL_CFG, ckpt, dtype='bf16')
    model = inferencer.model
    assert inferencer.dtype == 'bf16'
    assert precision.model_dtype(model) == torch.bfloat16
    assert next(model.backbone.parameters()).dtype == torch.bfloat16
    assert model.data_preprocessor.video.mean.dtype == torch.float32
    outs = {o.path: o for o in inferencer.iter_videos(videos, workers=0)}
    for path in videos:
        assert outs[path].embedding.dtype == torch.float32
        assert cosines(outs[path].embedding, fp32[path]) >= 0.999
    ref = StanInferencer(RETRIEVAL_CFG, ckpt)
    texts = ['a red square moves left', 'a circle grows']
    assert cosines(inferencer.embed_texts(texts),
                   ref.embed_texts(texts)).min() >= 0.999
    # A recognizer called as MMEngine's test_step does (fp32 input from the
    # data preprocessor): input cast on the way in, scores fp32 out.
    from mmaction.structures import ActionDataSample
    rec32 = init_model(RECOGNITION_CFG)
    rec16 = init_model(RECOGNITION_CFG, dtype='bf16')
    rec16.load_state_dict(rec32.state_dict())
    x = torch.randn(2, 1, 3, 8, 32, 32)
    with torch.no_grad():
        a = rec32(x, [ActionDataSample() for _ in range(2)], mode='predict')
        b = rec16(x, [ActionDataSample() for _ in range(2)], mode='predict')
    for s32, s16 in zip(a, b):
        assert s16.pred_score.dtype == torch.float32
        torch.testing.assert_close(s16.pred_score, s32.pred_score,
                                   atol=2e-2, rtol=0)


def test_batched_workers_equal_one_by_one(setup):
    """Clips of several videos in one batch, decoded by 2 worker
    processes: the same embeddings as one video, one window at a time; an
    unreadable file comes back as an error, the others are unaffected."""
    root, ckpt, videos, fp32 = setup
    inferencer = StanInferencer(RETRIEVAL_CFG, ckpt)
    paths = [videos[0], str(root / 'videos' / 'broken.mp4'), *videos[1:]]
    single = {p: embed_video(inferencer, p, window=8, batch_size=1)
              for p in videos}
    outs = list(inferencer.iter_videos(paths, window=8, batch_size=5,
                                       workers=2))
    assert sorted(o.path for o in outs) == sorted(paths)
    for out in outs:
        if out.path.endswith('broken.mp4'):
            assert 'cannot open as a video' in out.error
            continue
        assert out.error is None and out.total == 24
        assert out.spans == [(0, 8), (8, 16), (16, 24)]
        assert out.outputs.shape == (3, 32)
        torch.testing.assert_close(out.embedding, single[out.path],
                                   atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match='batch_size must be >= 1'):
        next(inferencer.iter_videos(paths, batch_size=0))


@pytest.mark.slow
def test_search_records_the_dtype_and_never_mixes_it(setup, tmp_path,
                                                     capsys):
    root, ckpt, videos, fp32 = setup
    search = load_script('tools/search.py')
    folder = copy_folder(setup, tmp_path / 'videos')
    index = str(tmp_path / 'bf16.idx')
    common = ['--config', RETRIEVAL_CFG, '--checkpoint', ckpt, '--index',
              index]
    search.main(['index', folder, *common, '--dtype', 'bf16',
                 '--batch-size', '3', '--workers', '2'])
    out = capsys.readouterr()
    assert 'in bf16 on cpu' in out.out
    assert 'Throughput: 4 video(s) in' in out.out and 'bf16)' in out.out
    assert '[4/4]' in out.err and 'videos/s' in out.err
    from stan_mmaction.apis.search_index import VideoIndex
    saved = VideoIndex.load(index)
    assert saved.dtype == 'bf16' and len(saved.entries) == 3
    for path in videos:
        emb = saved.entries[osp.join(folder, osp.basename(path))]
        assert cosines(emb['embedding'], fp32[path]) >= 0.999

    # An incremental run in another dtype, a query in another dtype:
    # refused, saying what to do; the index is unchanged.
    write_videos(tmp_path / 'videos', [6], seed=3)
    with pytest.raises(SystemExit, match='holds embeddings computed in '
                       'bf16; this index run would compute them in fp32.*'
                       'pass --dtype bf16.*--rebuild'):
        search.main(['index', folder, *common, '--dtype', 'fp32'])
    with pytest.raises(SystemExit, match='holds embeddings computed in '
                       'bf16; this query would compute them in fp32'):
        search.main(['query', 'a square', '--index', index, '--dtype',
                     'fp32'])
    assert len(VideoIndex.load(index).entries) == 3
    # Without --dtype the index's dtype is used: the new video is added.
    search.main(['index', folder, *common, '--workers', '0'])
    assert 'Indexing 2 new or changed video(s) (3 already indexed) in ' \
        'bf16' in capsys.readouterr().out
    saved = VideoIndex.load(index)
    assert saved.dtype == 'bf16' and len(saved.entries) == 4
    hits = search.main(['query', 'a square', '--index', index, '--top-k',
                        '2'])
    assert len(hits) == 2
    # --rebuild in fp32 replaces it.
    search.main(['index', folder, *common, '--dtype', 'fp32', '--rebuild'])
    assert VideoIndex.load(index).dtype == 'fp32'
    # An index written before dtypes were recorded counts as fp32.
    from safetensors import safe_open
    from safetensors.torch import save_file

    from stan_mmaction.apis.search_index import META_KEY
    with safe_open(index, framework='pt') as f:
        meta = json.loads(f.metadata()[META_KEY])
        tensors = {'embeddings': f.get_tensor('embeddings')}
    del meta['dtype']
    old = str(tmp_path / 'old.idx')
    save_file(tensors, old, metadata={META_KEY: json.dumps(meta)})
    assert VideoIndex.load(old).dtype == 'fp32'
    with pytest.raises(SystemExit, match='fp16 is for GPUs'):
        search.main(['query', 'x', '--index', index, '--dtype', 'fp16'])


@pytest.mark.slow
def test_extract_features_bf16_and_compiled(setup, tmp_path, capsys):
    root, ckpt, videos, fp32 = setup
    extract = load_script('tools/extract_features.py')
    folder = str(root / 'videos')
    out = tmp_path / 'bf16'
    common = [RETRIEVAL_CFG, '--checkpoint', ckpt, '--videos', folder]
    extract.main([*common, '--out-dir', str(out), '--dtype', 'bf16'])
    assert json.loads((out / 'manifest.json').read_text())['dtype'] == 'bf16'
    for path in videos:
        name = osp.splitext(osp.basename(path))[0] + '.npy'
        emb = torch.from_numpy(np.load(out / name))
        assert emb.dtype == torch.float32
        assert cosines(emb, fp32[path]) >= 0.999
    assert 'Throughput: 4 video(s)' in capsys.readouterr().out
    # Another dtype in the same folder: refused unless --overwrite.
    with pytest.raises(SystemExit, match=r'\(dtype differ'):
        extract.main([*common, '--out-dir', str(out), '--dtype', 'fp32'])
    extract.main([*common, '--out-dir', str(out)])  # resumes in bf16
    assert '3 of 4 embedding(s) already in' in capsys.readouterr().out
    extract.main([*common, '--out-dir', str(out), '--dtype', 'fp32',
                  '--overwrite'])
    assert json.loads((out / 'manifest.json').read_text())['dtype'] == 'fp32'

    # Compiled (fp32, batches of 2: the last one padded) equals eager; the
    # warm-up is reported apart.
    capsys.readouterr()
    comp = tmp_path / 'compiled'
    extract.main([*common, '--out-dir', str(comp), '--dtype', 'fp32',
                  '--compile', '--batch-size', '2', '--window', '8'])
    line = [s for s in capsys.readouterr().out.splitlines()
            if s.startswith('Throughput')][0]
    assert 'compiled)' in line
    assert float(line.split('warm-up ')[1].split(' s')[0]) > 0
    eager = StanInferencer(RETRIEVAL_CFG, ckpt)
    for path in videos:
        name = osp.splitext(osp.basename(path))[0] + '.npy'
        torch.testing.assert_close(
            torch.from_numpy(np.load(comp / name)),
            embed_video(eager, path, window=8), atol=1e-4, rtol=1e-4)


def test_demo_bf16_keeps_the_top5(setup, tmp_path, capsys):
    """A recognizer whose classifier separates the classes (weights x2:
    the top-6 probabilities at least 0.01 apart, checked): the demo's
    top-5 labels in bf16 are those of fp32."""
    torch.manual_seed(0)
    model = init_model(RECOGNITION_CFG)
    with torch.no_grad():
        model.cls_head.fc_cls.weight.mul_(2)
    ckpt = str(tmp_path / 'rec.pth')
    torch.save({'state_dict': model.state_dict()}, ckpt)
    labels = tmp_path / 'labels.txt'
    labels.write_text('\n'.join(SYNTHETIC_CLASSES) + '\n')
    video = write_videos(tmp_path, [2], frames=40)[0]
    ref = next(StanInferencer(RECOGNITION_CFG, ckpt).iter_videos(
        [video], 'predict', 16, workers=0)).outputs.mean(0)
    top6 = ref.sort(descending=True).values[:6]
    assert (top6[:-1] - top6[1:]).min() > 0.01  # margins bf16 keeps

    demo = load_script('demo/demo.py')
    common = [video, RECOGNITION_CFG, ckpt, '--label-map', str(labels),
              '--window', '16']
    top32 = demo.main([*common, '--dtype', 'fp32'])
    top16 = demo.main([*common, '--dtype', 'bf16', '--batch-size', '2'])
    assert [n for n, _ in top16] == [n for n, _ in top32]
    assert [v for _, v in top16] == pytest.approx([v for _, v in top32],
                                                  abs=1e-2)
    assert [v for _, v in top32] == pytest.approx(
        ref.sort(descending=True).values[:5].tolist(), abs=1e-5)
    out = capsys.readouterr().out
    assert '(40 frames, 3 window(s))' in out and 'bf16)' in out
    with pytest.raises(SystemExit, match='--dtype fp16: fp16 is for GPUs'):
        demo.main([*common, '--dtype', 'fp16', '--device', 'cpu'])


@pytest.mark.slow
def test_test_tool_dtype(tmp_path, demo_workspace):
    """tools/test.py --dtype bf16: the model is cast after the checkpoint
    is loaded, the predictions reach the metric in fp32 and match fp32."""
    ckpt = str(tmp_path / 'rec.pth')
    save_random_checkpoint(RECOGNITION_CFG, ckpt)
    preds = {}
    for dtype in ('fp32', 'bf16'):
        dump = str(tmp_path / f'{dtype}.pkl')
        res = call_main('tools/test.py', [
            RECOGNITION_CFG, ckpt, '--work-dir', str(tmp_path / dtype),
            '--dtype', dtype, '--dump', dump], cwd=demo_workspace)
        assert res.returncode == 0, res.stderr[-3000:]
        assert f'Testing in {dtype} (requested: {dtype})' in res.stdout + \
            res.stderr
        with open(dump, 'rb') as f:
            preds[dtype] = torch.stack([torch.as_tensor(r['pred_score'])
                                        for r in pickle.load(f)])
    assert preds['bf16'].dtype == torch.float32
    assert len(preds['fp32']) == 8  # the 8 test videos of the demo data
    assert cosines(preds['bf16'], preds['fp32']).min() >= 0.999
    torch.testing.assert_close(preds['bf16'], preds['fp32'], atol=2e-2,
                               rtol=0)


@pytest.mark.slow
def test_tool_benchmark_rows(setup, tmp_path, monkeypatch):
    """benchmark_tools.py: one real extraction run (a fresh process) read
    back from the tool's --stats-json file (the numbers of its Throughput
    line); on a CPU without native bf16 the bf16 row says so instead of a
    number."""
    import io

    from stan_mmaction.apis import VideoProgress
    bench = load_script('tools/analysis_tools/benchmark_tools.py')
    progress = VideoProgress(3, startup=9.5, warmup=1.25, file=io.StringIO())
    progress.update(3)
    stats = progress.stats('bf16', True)
    assert stats['videos'] == 3 and stats['dtype'] == 'bf16'
    assert stats['compiled'] and stats['startup_s'] == 9.5
    assert stats['warmup_s'] == 1.25 and stats['videos_per_s'] > 0
    line = progress.line('bf16', True)
    assert line.startswith('Throughput: 3 video(s) in ')
    assert line.endswith('(start-up 9.50 s, warm-up 1.25 s; bf16, compiled)')

    monkeypatch.setattr(precision, '_CPU_NATIVE_BF16', False)
    root, ckpt, videos, _ = setup
    results = bench.main([
        '--videos', *videos[:2], '--copies', '2', '--config', RETRIEVAL_CFG,
        '--tools', 'extract', '--dtypes', 'fp32', 'bf16', '--no-baseline',
        '--batch-sizes', '4', '--out-dir', str(tmp_path)])
    fp32, bf16 = results['rows']
    assert fp32['videos'] == 4 and fp32['videos_per_s'] > 0
    assert fp32['wall_s'] > fp32['seconds'] and fp32['startup_s'] > 0
    assert bf16 == dict(tool='extract', dtype='bf16', compiled=False,
                        batch=4, workers=1, not_native=True)
    assert results['decode_videos_per_s'] > 0
    table = (tmp_path / 'results.md').read_text()
    assert table.startswith('Machine: ') and 'decoding alone' in table
    assert '| extract | bf16 | no | 4 | 1 | not native here |' in table
    assert len(list((tmp_path / 'outputs').glob('extract_fp32_*/*.npy'))) \
        == 4


def test_precision_hook_casts_and_compiles_after_loading():
    """InferencePrecisionHook (tools/test.py --dtype --compile) on a
    runner's model: cast in before_test (after the checkpoint is loaded),
    backbone compiled, the first batch logged once."""
    import logging

    from mmengine.logging import MMLogger

    from stan_mmaction.engine import InferencePrecisionHook

    class Runner:
        logger = MMLogger.get_instance('precision_hook_test')

    with pytest.raises(ValueError, match="dtype 'half'"):
        InferencePrecisionHook(dtype='half')
    runner = Runner()
    runner.model = init_model(RECOGNITION_CFG)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    runner.logger.addHandler(handler)
    hook = InferencePrecisionHook(dtype='bf16', compile=True)
    hook.before_test(runner)
    assert next(runner.model.backbone.parameters()).dtype == torch.bfloat16
    assert runner.model.backbone._compiled_call_impl is not None
    assert vars(runner.model).keys() == vars(
        init_model(RECOGNITION_CFG)).keys()  # nothing stored on the model
    hook.before_test_iter(runner, 0)
    hook.after_test_iter(runner, 0)
    hook.after_test_iter(runner, 1)  # logged once
    messages = [r.getMessage() for r in records]
    assert 'Testing in bf16 with the backbone compiled (requested: bf16)' \
        in messages
    assert sum('first test batch' in m and 'compilation included' in m
               for m in messages) == 1
