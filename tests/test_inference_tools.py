"""What users run after training: demo/demo.py, tools/search.py,
tools/extract_features.py, tools/analysis_tools/plot_logs.py, zero-shot
testing. Each on tiny real files made here."""
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import (REPO_ROOT, call_main, run_tool, save_random_checkpoint,
                      subprocess_env, write_videos)

from stan_mmaction.datasets import SYNTHETIC_CLASSES
from stan_mmaction.utils.precision import AUTO_DTYPE_ENV

RETRIEVAL_CFG = osp.join(REPO_ROOT, 'configs', 'demo',
                         'stan_tiny_synthetic_retrieval.py')
RECOGNITION_CFG = osp.join(REPO_ROOT, 'configs', 'demo',
                           'stan_tiny_synthetic.py')


@pytest.fixture(params=['fp32', 'bf16'])
def auto_decision(request, monkeypatch):
    """What ``--dtype auto`` resolves to, forced (STAN_MMACTION_AUTO_DTYPE):
    the tools' default path as on a CPU without (fp32) and with (bf16)
    native bf16, whatever this machine has. Set in this process and so in
    the subprocesses the tests start."""
    monkeypatch.setenv(AUTO_DTYPE_ENV, request.param)
    return request.param


def run_inproc(args):
    """``run_tool`` for search.py and extract_features.py, in this process
    (their command line and the subprocess path are covered by the first
    test below and by test_extract_features_writes_embeddings)."""
    return call_main(f'tools/{args[0]}', args[1:])


@pytest.fixture(scope='module')
def retrieval_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('search')
    ckpt = str(root / 'retrieval.pth')
    model = save_random_checkpoint(RETRIEVAL_CFG, ckpt)
    videos = write_videos(root / 'videos', [0, 3, 5])
    (root / 'videos' / 'broken.mp4').write_text('not a video')
    return root, ckpt, model, videos


@pytest.mark.slow
def test_search_index_query_incremental_and_bad_input(retrieval_setup):
    root, ckpt, model, videos = retrieval_setup
    index = str(root / 'videos.idx')
    common = ['--config', RETRIEVAL_CFG, '--checkpoint', ckpt, '--index',
              index]
    # A query before any index exists says what to run.
    res = run_tool(['search.py', 'query', 'a square', '--index', index])
    assert res.returncode != 0
    assert 'No index at' in res.stderr and 'tools/search.py index' in \
        res.stderr

    res = run_inproc(['search.py', 'index', str(root / 'videos'), *common])
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'Indexing 4 new or changed video(s)' in res.stdout
    assert 'Index ' + index + ': 3 video(s)' in res.stdout
    assert '1 unreadable file(s) skipped' in res.stdout
    assert 'broken.mp4' in res.stdout.split('skipped:')[1]
    from stan_mmaction.apis.search_index import VideoIndex
    saved = VideoIndex.load(index)
    assert sorted(saved.entries) == sorted(videos)
    # Compared in the dtype the tool chose (`auto`: machine-dependent).
    from stan_mmaction.apis import StanInferencer, embed_video
    ref = StanInferencer(RETRIEVAL_CFG, ckpt, dtype=saved.dtype)
    torch.testing.assert_close(saved.entries[videos[0]]['embedding'],
                               embed_video(ref, videos[0]))

    # Incremental: one new file is embedded, the others are kept.
    new = write_videos(root / 'videos', [6], seed=3)[0]
    res = run_inproc(['search.py', 'index', str(root / 'videos'), *common])
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'Indexing 2 new or changed video(s) (3 already indexed)' in \
        res.stdout  # the new one, and the broken one again
    assert 'Index ' + index + ': 4 video(s)' in res.stdout
    assert new in VideoIndex.load(index).entries

    # Another config on the same index: a clear message.
    other = osp.join(REPO_ROOT, 'configs', 'demo',
                     'clip_meanp_tiny_synthetic_retrieval.py')
    res = run_inproc(['search.py', 'index', str(root / 'videos'),
                      '--config', other, '--index', index])
    assert res.returncode != 0 and 'was built with config' in res.stderr
    res = run_inproc(['search.py', 'query', 'x', '--index', index,
                      '--config', other])
    assert res.returncode != 0 and 'was built with config' in res.stderr


@pytest.mark.slow
def test_search_never_mixes_models(retrieval_setup, tmp_path):
    """The index names its model by content: a checkpoint replaced at the
    same path, or an edited _base_ file of the config, is another model; the
    index refuses to add to it or to answer for it until rebuilt."""
    root, _, _, videos = retrieval_setup
    ckpt = str(tmp_path / 'model.pth')
    save_random_checkpoint(RETRIEVAL_CFG, ckpt)
    base = tmp_path / 'mybase.py'
    base.write_text(f"_base_ = [{RETRIEVAL_CFG!r}]\n"
                    "model = dict(head=dict(temperature=0.05))\n")
    leaf = tmp_path / 'leaf.py'
    leaf.write_text("_base_ = ['mybase.py']\n")
    index = str(tmp_path / 'v.idx')
    folder = str(root / 'videos')
    common = ['--config', str(leaf), '--checkpoint', ckpt, '--index', index]
    res = run_inproc(['search.py', 'index', folder, *common])
    assert res.returncode == 0, res.stderr[-3000:]

    torch.manual_seed(7)  # same path, other weights
    from stan_mmaction.apis import init_model
    torch.save({'state_dict': init_model(RETRIEVAL_CFG).state_dict()}, ckpt)
    for args in (['index', folder, *common],
                 ['query', 'x', '--index', index]):
        res = run_inproc(['search.py', *args])
        assert res.returncode != 0
        assert 'the checkpoint differs' in res.stderr, res.stderr[-2000:]
    res = run_inproc(['search.py', 'index', folder, *common, '--rebuild'])
    assert res.returncode == 0 and '(0 already indexed)' in res.stdout

    base.write_text(base.read_text().replace('0.05', '0.06'))
    res = run_inproc(['search.py', 'index', folder, *common])
    assert res.returncode != 0
    assert 'the resolved config differs' in res.stderr
    # The query sees the edited _base_ file by its bytes, before running
    # the config; naming the config, by the resolved config.
    res = run_inproc(['search.py', 'query', 'x', '--index', index])
    assert res.returncode != 0
    assert "its bytes (or a _base_ file's) changed" in res.stderr
    res = run_inproc(['search.py', 'query', 'x', '--index', index,
                      '--config', str(leaf)])
    assert res.returncode != 0 and 'was built with config' in res.stderr
    res = run_inproc(['search.py', 'query', 'x', '--index', index])
    assert res.returncode != 0  # still refused: nothing was mixed in


def test_search_ranks_a_constructed_index(retrieval_setup, tmp_path,
                                          auto_decision):
    """Video embeddings placed at known cosines to the query's embedding
    (computed in the dtype `auto` resolves to, as the tool does): the
    ranked list must follow them."""
    root, ckpt, model, videos = retrieval_setup
    from stan_mmaction.apis import StanInferencer
    query = 'a small red square moves left, then up'
    text = StanInferencer(RETRIEVAL_CFG, ckpt, dtype=auto_decision) \
        .embed_texts([query])[0].float()
    other = torch.nn.functional.normalize(torch.randn(32), dim=0)
    other = torch.nn.functional.normalize(other - (other @ text) * text,
                                          dim=0)  # orthogonal to text
    cosines = [0.2, 0.9, -0.5]
    index = str(tmp_path / 'constructed.idx')
    run_inproc(['search.py', 'index', str(root / 'videos'), '--config',
                RETRIEVAL_CFG, '--checkpoint', ckpt, '--index', index])
    from stan_mmaction.apis.search_index import VideoIndex
    data = VideoIndex.load(index)
    assert data.dtype == auto_decision
    for path, c in zip(videos, cosines):
        emb = c * text + (1 - c**2)**0.5 * other
        data.entries[path]['embedding'] = emb
    for path in set(data.entries) - set(videos):
        del data.entries[path]
    data.save(index)
    sheet = str(tmp_path / 'hits.jpg')
    res = run_inproc(['search.py', 'query', query, '--index', index,
                      '--top-k', '3', '--contact-sheet', sheet,
                      '--frames-per-hit', '4'])
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [line.split('\t') for line in res.stdout.splitlines()
             if line.count('\t') == 2]
    assert [p for _, _, p in lines] == [videos[1], videos[0], videos[2]]
    assert [float(s) for _, s, _ in lines] == pytest.approx([0.9, 0.2, -0.5],
                                                            abs=1e-4)
    import cv2
    image = cv2.imread(sheet)
    assert image.shape == (3 * 96, 4 * 128, 3)


@pytest.mark.slow
def test_extract_features_writes_embeddings(retrieval_setup, tmp_path,
                                            auto_decision):
    """Default --dtype (auto) under both decisions, compared with the
    library in the dtype the tool recorded (fp32 in a subprocess, the
    tool's command line; bf16 in this process)."""
    root, ckpt, model, videos = retrieval_setup
    out = tmp_path / 'feats'
    args = ['extract_features.py', RETRIEVAL_CFG, '--checkpoint', ckpt,
            '--videos', str(root / 'videos'), '--out-dir', str(out)]
    res = run_tool(args) if auto_decision == 'fp32' else run_inproc(args)
    assert res.returncode == 0, res.stderr[-3000:]
    manifest = json.loads((out / 'manifest.json').read_text())
    assert manifest['dtype'] == auto_decision
    from stan_mmaction.apis import StanInferencer, embed_video
    ref = StanInferencer(RETRIEVAL_CFG, ckpt, dtype=auto_decision)
    emb = np.load(out / (osp.splitext(osp.basename(videos[0]))[0] + '.npy'))
    assert emb.shape == (32, )
    np.testing.assert_allclose(emb, embed_video(ref, videos[0]).numpy(),
                               rtol=1e-5, atol=1e-6)
    assert 'broken.mp4' in (out / 'failed.txt').read_text()


@pytest.fixture(scope='module')
def recognition_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('demo')
    ckpt = str(root / 'recognizer.pth')
    save_random_checkpoint(RECOGNITION_CFG, ckpt)
    labels = root / 'labels.txt'
    labels.write_text('\n'.join(SYNTHETIC_CLASSES) + '\n')
    short = write_videos(root, [0])[0]
    long = write_videos(root / 'long', [2], frames=250)[0]
    return root, ckpt, str(labels), short, long


@pytest.mark.slow
def test_demo_prints_top5_and_writes_gif(recognition_setup, auto_decision):
    """Default --dtype (auto) under both decisions: the same top-5 as the
    library computes in that dtype (fp32 in a subprocess, the script's
    command line; bf16 in this process)."""
    root, ckpt, labels, short, long = recognition_setup
    out = str(root / f'annotated_{auto_decision}.gif')
    args = [long, RECOGNITION_CFG, ckpt, '--label-map', labels, '--window',
            '100', '--out-file', out]
    if auto_decision == 'fp32':
        res = subprocess.run(
            [sys.executable, osp.join(REPO_ROOT, 'demo', 'demo.py'), *args],
            cwd=REPO_ROOT, env=subprocess_env(), capture_output=True,
            text=True, timeout=300)
    else:
        res = call_main('demo/demo.py', args)
    assert res.returncode == 0, res.stderr[-3000:]
    assert '(250 frames, 3 window(s))' in res.stdout
    assert f'; {auto_decision})' in res.stdout  # the Throughput line
    printed = [line.split('. ', 1)[1].rsplit(': ', 1)
               for line in res.stdout.splitlines() if line[:2] in
               ('1.', '2.', '3.', '4.', '5.')]
    assert len(printed) == 5
    # The same top-5 as the library computes: mean of the 3 windows.
    from stan_mmaction.apis import StanInferencer, iter_clips
    inferencer = StanInferencer(RECOGNITION_CFG, ckpt, dtype=auto_decision)
    shape = inferencer.shape
    scores = torch.cat([
        inferencer.predict(inferencer.collate([inferencer.preprocess(clip)]))
        for clip, _, _ in iter_clips(long, shape.frames, shape.short_side,
                                     shape.crop, window=100)
    ]).mean(0)
    values, idx = scores.topk(5)
    assert [n for n, _ in printed] == [SYNTHETIC_CLASSES[i].replace('_', ' ')
                                       for i in idx.tolist()]
    assert [float(v) for _, v in printed] == pytest.approx(values.tolist(),
                                                           abs=1e-4)
    assert open(out, 'rb').read(6) in (b'GIF89a', b'GIF87a')


def test_demo_rejects_unreadable_video(recognition_setup, tmp_path):
    root, ckpt, labels, short, long = recognition_setup
    bad = tmp_path / 'bad.mp4'
    bad.write_bytes(b'\x00' * 100)
    res = call_main('demo/demo.py', [str(bad), RECOGNITION_CFG, ckpt,
                                     '--label-map', labels])
    assert res.returncode != 0 and f'Cannot read {bad}' in res.stderr


@pytest.mark.slow
def test_zero_shot_config_through_test_tool(tmp_path, tiny_clip_file,
                                            demo_workspace):
    path, _ = tiny_clip_file
    cfg = tmp_path / 'zeroshot_tiny.py'
    cfg.write_text(f"""
_base_ = ['{osp.join(REPO_ROOT, 'configs', 'demo',
                     'clip_meanp_tiny_synthetic.py')}']
model = dict(
    backbone=dict(pretrained='{path}'),
    cls_head=dict(_delete_=True, type='TextClassifierHead', num_classes=8,
                  in_channels=32, class_names={list(
                      c.replace('_', ' ') for c in SYNTHETIC_CLASSES)},
                  text_encoder=dict(type='CLIPTextEncoder', arch='tiny',
                                    pretrained='{path}')))
""")
    res = call_main('tools/test.py', [str(cfg), 'none', '--work-dir',
                                      str(tmp_path / 'work')],
                    cwd=demo_workspace)
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((tmp_path / 'work' / 'test_metrics.json')
                         .read_text())
    assert 0 <= metrics['acc/top1'] <= 1


def test_plot_logs(tmp_path):
    scalars = tmp_path / 'scalars.json'
    records = [dict(loss=2.0 - i / 10, lr=1e-3, epoch=1, iter=i, step=i)
               for i in range(1, 6)]
    records += [{'acc/top1': 0.5, 'data_time': 0.1, 'step': 1},
                {'acc/top1': 0.8, 'data_time': 0.1, 'step': 2}]
    scalars.write_text('\n'.join(json.dumps(r) for r in records) + '\n')
    out = tmp_path / 'curves.png'
    res = call_main('tools/analysis_tools/plot_logs.py',
                    [str(scalars), '--out', str(out)])
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'training loss and acc/top1' in res.stdout
    assert out.read_bytes()[:4] == b'\x89PNG'


@pytest.mark.slow
def test_demo_with_an_mmaction2_config(recognition_setup, tmp_path):
    """MMAction2's own X3D-S config (random weights saved to a file)."""
    root, _, _, short, _ = recognition_setup
    from stan_mmaction.apis import init_model
    from stan_mmaction.utils import load_config
    cfg = 'mmaction::recognition/x3d/x3d_s_13x6x1_facebook-kinetics400-rgb.py'
    torch.manual_seed(0)
    ckpt = str(tmp_path / 'x3d.pth')
    torch.save({'state_dict': init_model(load_config(cfg)).state_dict()},
               ckpt)
    labels = tmp_path / 'k400.txt'
    labels.write_text(''.join(f'action {i}\n' for i in range(400)))
    res = call_main('demo/demo.py', [short, cfg, ckpt, '--label-map',
                                     str(labels)])
    assert res.returncode == 0, res.stderr[-3000:]
    ranked = [line for line in res.stdout.splitlines()
              if line[:2] in ('1.', '2.', '3.', '4.', '5.')]
    assert len(ranked) == 5 and all('action ' in line for line in ranked)


# -- the inference API --------------------------------------------------------
def test_init_model_options_and_the_video_forward_helpers():
    from stan_mmaction.apis import (init_model, is_retrieval_model,
                                    video_embedding_forward, video_forward)
    from stan_mmaction.utils import clip_shape, load_config
    recognizer = init_model(RECOGNITION_CFG, cfg_options={
        'model.cls_head.num_classes': 5})
    assert not recognizer.training
    assert recognizer.cls_head.fc_cls.out_features == 5
    retriever = init_model(RETRIEVAL_CFG, random_weights=True)
    assert is_retrieval_model(retriever) and not is_retrieval_model(
        recognizer)
    x = torch.randn(*clip_shape(load_config(RECOGNITION_CFG)).input_shape(2))
    with torch.no_grad():
        feats = video_embedding_forward(recognizer)(x)
        assert feats.shape == (2, 32)
        torch.testing.assert_close(video_forward(recognizer)(x), feats)
        assert video_forward(retriever)(x).shape == (2, 32)
        torch.testing.assert_close(video_embedding_forward(retriever)(x),
                                   retriever.encode_video(x))


def test_retriever_grad_checkpointing_reaches_both_towers():
    from stan_mmaction.apis import init_model
    model = init_model(RETRIEVAL_CFG, random_weights=True)
    model.set_grad_checkpointing(True)
    assert model.backbone.grad_checkpointing
    assert model.backbone.stan_branch.grad_checkpointing
    assert model.text_encoder.text.transformer.grad_checkpointing
    model.set_grad_checkpointing(False)
    assert not model.backbone.stan_branch.grad_checkpointing
    assert not model.text_encoder.text.transformer.grad_checkpointing
