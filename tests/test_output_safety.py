"""The tools that write (demo, search, extract_features): arguments checked
by argparse, outputs inside their folder and never half-written, long jobs
that resume after a kill, concurrent index runs that lose nothing, and
videos decoded at the size the model needs."""
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, call_main, run_python, subprocess_env
from test_inference_tools import (RECOGNITION_CFG, RETRIEVAL_CFG,
                                  save_random_checkpoint, write_videos)

from stan_mmaction.apis.search_index import VideoIndex
from stan_mmaction.datasets import SYNTHETIC_CLASSES, write_mp4

DEMO = osp.join(REPO_ROOT, 'demo', 'demo.py')


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('safety')
    retrieval_ckpt = str(root / 'retrieval.pth')
    save_random_checkpoint(RETRIEVAL_CFG, retrieval_ckpt)
    recognition_ckpt = str(root / 'recognizer.pth')
    save_random_checkpoint(RECOGNITION_CFG, recognition_ckpt)
    labels = root / 'labels.txt'
    labels.write_text('\n'.join(SYNTHETIC_CLASSES) + '\n')
    return root, retrieval_ckpt, recognition_ckpt, str(labels)


def run_demo(args):
    """demo/demo.py's main in this process (stdout/stderr captured, exit
    codes as a subprocess has them)."""
    return call_main('demo/demo.py', args)


def run_inproc(args):
    """``run_tool`` for tools with ``main(argv)``, in this process."""
    return call_main(f'tools/{args[0]}', args[1:])


# -- arguments ----------------------------------------------------------------
@pytest.mark.parametrize('tool, args, message', [
    ('demo', ['v.mp4', 'c.py', 'none', '--label-map', 'l.txt', '--window',
              '-5'], 'argument --window: expected a positive integer, got '
     '-5'),
    ('demo', ['v.mp4', 'c.py', 'none', '--label-map', 'l.txt', '--top-k',
              'three'], "argument --top-k: expected a positive integer, got "
     "'three'"),
    ('search.py', ['query', '  ', '--index', 'x.idx'],
     'argument text: expected some text, got an empty string'),
    ('search.py', ['query', 'a dog', '--index', 'x.idx', '--top-k', '0'],
     'argument --top-k: expected a positive integer, got 0'),
    ('search.py', ['index', 'f', '--config', 'c.py', '--index', 'x.idx',
                   '--save-every', '0'], 'argument --save-every'),
    ('extract_features.py', ['c.py', '--videos', 'v', '--out-dir', 'o',
                             '--window', '-1'], 'argument --window'),
    ('extract_features.py', ['c.py', '--videos', 'v', '--out-dir', 'o',
                             '--workers', '-1'],
     'argument --workers: expected an integer >= 0, got -1'),
    ('search.py', ['index', 'f', '--config', 'c.py', '--index', 'x.idx',
                   '--batch-size', '0'],
     'argument --batch-size: expected a positive integer, got 0'),
    ('search.py', ['query', 'a dog', '--index', 'x.idx', '--dtype', 'fp8'],
     "argument --dtype: invalid choice: 'fp8'"),
    ('demo', ['v.mp4', 'c.py', 'none', '--label-map', 'l.txt', '--workers',
              'two'], "argument --workers: expected an integer >= 0, got "
     "'two'"),
    ('analysis_tools/benchmark_tools.py', ['--videos', 'v', '--config',
                                           'c.py', '--workers', '-2'],
     'argument --workers: expected an integer >= 0, got -2'),
])
def test_bad_arguments_are_argparse_errors(tool, args, message):
    proc = run_demo(args) if tool == 'demo' else run_inproc([tool, *args])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr


def test_demo_out_file_folder_is_created_and_names_checked(setup, tmp_path):
    root, _, ckpt, labels = setup
    video = write_videos(tmp_path, [1])[0]
    out = tmp_path / 'new' / 'deeper' / 'annotated.mp4'
    proc = run_demo([video, RECOGNITION_CFG, ckpt, '--label-map', labels,
                     '--out-file', str(out)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.stat().st_size > 0
    assert not [p for p in os.listdir(out.parent) if p.startswith('.')]
    import decord
    assert len(decord.VideoReader(str(out))) == 16
    bad = run_demo([video, RECOGNITION_CFG, ckpt, '--label-map', labels,
                    '--out-file', str(tmp_path / 'x.avi')])
    assert bad.returncode != 0
    assert 'use a .mp4 or .gif name' in bad.stderr


# -- decoding at the model's size -------------------------------------------
# One fresh interpreter imports once; each measurement runs in a child
# forked from it (an allocator that holds nothing of the others).
PROBE = '''
import json, sys
sys.argv = ['demo.py']
import runpy
import stan_mmaction
from stan_mmaction.analysis.profiling import PeakMemory, in_forked_child
from stan_mmaction.apis import StanInferencer, embed_video
demo = runpy.run_path({demo!r})


def peak(tool, video, cfg, ckpt, labels):
    if tool == 'demo':
        with PeakMemory('cpu') as mem:
            demo['main']([video, cfg, ckpt, '--label-map', labels])
    else:
        inferencer = StanInferencer(cfg, ckpt)
        with PeakMemory('cpu') as mem:
            embed_video(inferencer, video)
    return mem.peak


print('PEAKS', json.dumps([in_forked_child(peak, *c) for c in {cases!r}]))
'''


def _peaks(cases):
    """Peak extra MiB of each ``(tool, video, cfg, ckpt, labels)``."""
    proc = run_python(PROBE.format(cases=[tuple(c) for c in cases],
                                   demo=DEMO))
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith('PEAKS ')]
    assert line, proc.stdout[-2000:]
    return [peak / 2**20 for peak in json.loads(line[-1].split(' ', 1)[1])]


def _textured_video(path, h, w, frames=24, block=8):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (h // block + 1, w // block + 1, 3),
                        np.uint8)
    write_mp4(path, np.stack([
        np.repeat(np.repeat(np.roll(base, i, 1), block, 0), block, 1)[:h, :w]
        for i in range(frames)]))
    return path


@pytest.mark.slow
def test_4k_video_costs_about_what_a_small_one_does(setup, tmp_path):
    """A 3840x2160 clip through the demo and through embed_video (search,
    extract_features) peaks within 100 MiB of a 398x224 one (decoding all
    8 sampled 4K frames, as before, took ~200 MiB for the frames alone)."""
    root, retrieval_ckpt, recognition_ckpt, labels = setup
    big = _textured_video(str(tmp_path / 'uhd.mp4'), 2160, 3840)
    small = _textured_video(str(tmp_path / 'small.mp4'), 224, 398)
    tools = (('demo', RECOGNITION_CFG, recognition_ckpt),
             ('embed', RETRIEVAL_CFG, retrieval_ckpt))
    peaks = _peaks([(tool, v, cfg, ckpt, labels)
                    for tool, cfg, ckpt in tools for v in (big, small)])
    for i, (tool, _, _) in enumerate(tools):
        big_peak, small_peak = peaks[2 * i:2 * i + 2]
        assert big_peak - small_peak < 100, (tool, big_peak, small_peak)
        assert small_peak > 0, tool


def test_decoded_at_size_matches_resizing_after_decoding(tmp_path):
    """Decoding at the clip's size (the decoder's scaler) gives nearly the
    frames of decoding at full size and resizing (OpenCV), on content that
    is not finer than the output pixels (finer detail aliases differently
    in the two scalers)."""
    import cv2
    import decord

    from stan_mmaction.apis import iter_clips
    path = _textured_video(str(tmp_path / 'v.mp4'), 360, 640, frames=8,
                           block=32)
    clip = next(iter_clips(path, 8, 64, 64))[0]
    full = decord.VideoReader(path).get_batch(list(range(8))).asnumpy()
    ref = np.stack([cv2.resize(f, (114, 64), interpolation=cv2.INTER_AREA)
                    for f in full])
    # Short side 64; the pipeline's Resize and crop come after decoding.
    assert clip.shape == ref.shape == (8, 64, 114, 3)
    # mean absolute difference of 0-255 levels (unrelated frames: ~85)
    assert np.abs(clip.astype(float) - ref).mean() < 10


# -- extract_features ---------------------------------------------------------
def test_extract_outputs_stay_inside_and_never_collide(setup, tmp_path):
    root, ckpt, _, _ = setup
    videos = tmp_path / 'videos'
    a = write_videos(videos, [0])[0]
    os.makedirs(tmp_path / 'escaped')
    os.link(a, tmp_path / 'escaped' / 'good.mp4')
    listing = tmp_path / 'list.txt'
    listing.write_text(f'{osp.basename(a)} 0\n../escaped/good.mp4 1\n')
    out = tmp_path / 'feats'
    proc = run_inproc(['extract_features.py', RETRIEVAL_CFG, '--checkpoint',
                       ckpt, '--videos', str(listing), '--data-prefix',
                       str(videos), '--out-dir', str(out)])
    assert proc.returncode != 0
    assert f'{listing}:2: ../escaped/good.mp4 would be written outside ' \
        '--out-dir' in proc.stderr
    assert not (tmp_path / 'escaped' / 'good.npy').exists()
    assert not out.exists()  # nothing written
    # clip.mp4 and clip.avi: refused, then both kept with --keep-ext.
    os.link(a, videos / 'clip.mp4')
    os.link(a, videos / 'clip.avi')
    proc = run_inproc(['extract_features.py', RETRIEVAL_CFG, '--checkpoint',
                       ckpt, '--videos', str(videos), '--out-dir', str(out)])
    assert proc.returncode != 0
    assert 'clip.mp4 and clip.avi would both write' in proc.stderr
    assert 'pass --keep-ext' in proc.stderr
    proc = run_inproc(['extract_features.py', RETRIEVAL_CFG, '--checkpoint',
                       ckpt, '--videos', str(videos), '--out-dir', str(out),
                       '--keep-ext'])
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = sorted(p for p in os.listdir(out) if not p.startswith('.'))
    assert names == sorted(['clip.avi.npy', 'clip.mp4.npy', 'failed.txt',
                            'manifest.json', osp.basename(a) + '.npy'])
    np.testing.assert_array_equal(np.load(out / 'clip.avi.npy'),
                                  np.load(out / 'clip.mp4.npy'))


@pytest.mark.slow
def test_extract_resumes_and_refuses_another_model(setup, tmp_path):
    root, ckpt, _, _ = setup
    videos = write_videos(tmp_path / 'videos', [0, 2, 4])
    out = tmp_path / 'feats'
    args = ['extract_features.py', RETRIEVAL_CFG, '--checkpoint', ckpt,
            '--videos', str(tmp_path / 'videos'), '--out-dir', str(out)]
    assert run_inproc(args).returncode == 0
    first = out / (osp.splitext(osp.basename(videos[0]))[0] + '.npy')
    os.remove(first)  # as if the run had stopped before this one
    again = run_inproc(args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert '2 of 3 embedding(s) already' in again.stdout
    assert '1 embedding(s) written' in again.stdout
    assert first.exists()
    # Another checkpoint in the same folder: refused, then --overwrite.
    other = str(tmp_path / 'other.pth')
    torch.save({'state_dict': {
        k: v + 1 for k, v in torch.load(ckpt, weights_only=True)[
            'state_dict'].items()}}, other)
    args[3] = other
    refused = run_inproc(args)
    assert refused.returncode != 0
    assert 'holds embeddings of another model or options' in \
        refused.stderr and 'checkpoint_sha256' in refused.stderr
    assert run_inproc(args + ['--overwrite']).returncode == 0
    manifest = json.loads((out / 'manifest.json').read_text())
    from stan_mmaction.apis.search_index import file_sha256
    assert manifest['checkpoint_sha256'] == file_sha256(other)


# -- search index -------------------------------------------------------------
def _index_cmd(folder, ckpt, index, *extra):
    return [sys.executable, osp.join(REPO_ROOT, 'tools', 'search.py'),
            'index', str(folder), '--config', RETRIEVAL_CFG, '--checkpoint',
            ckpt, '--index', str(index), *extra]


def _entries(index):
    try:
        return set(VideoIndex.load(str(index)).entries)
    except Exception:  # noqa: BLE001  (not written yet)
        return set()


@pytest.mark.slow
def test_killed_index_run_resumes_with_the_rest(setup, tmp_path):
    root, ckpt, _, _ = setup
    folder = tmp_path / 'videos'
    videos = write_videos(folder, list(range(8)) * 2, frames=200)
    index = tmp_path / 'videos.idx'
    proc = subprocess.Popen(
        _index_cmd(folder, ckpt, index, '--save-every', '1', '--window',
                   '8'), cwd=REPO_ROOT,
        env=subprocess_env({'OMP_NUM_THREADS': '1'}),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while len(_entries(index)) < 2 and time.time() < deadline and \
            proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = _entries(index)
    assert 2 <= len(saved) < len(videos), 'the run ended before the kill'
    again = run_inproc(['search.py', 'index', str(folder), '--config',
                        RETRIEVAL_CFG, '--checkpoint', ckpt, '--index',
                        str(index), '--window', '8'])
    assert again.returncode == 0, again.stderr[-2000:]
    assert (f'Indexing {len(videos) - len(saved)} new or changed video(s) '
            f'({len(saved)} already indexed)') in again.stdout
    assert _entries(index) == {osp.abspath(v) for v in videos}


@pytest.mark.slow
def test_concurrent_index_runs_keep_everything(setup, tmp_path):
    root, ckpt, _, _ = setup
    a = write_videos(tmp_path / 'a', [0, 1, 2, 3], frames=48)
    b = write_videos(tmp_path / 'b', [4, 5, 6, 7], frames=48, seed=1)
    index = tmp_path / 'shared.idx'
    procs = [subprocess.Popen(
        _index_cmd(tmp_path / name, ckpt, index, '--save-every', '1'),
        cwd=REPO_ROOT, env=subprocess_env({'OMP_NUM_THREADS': '1'}),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ('a', 'b')]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
    loaded = VideoIndex.load(str(index))
    assert set(loaded.entries) == {osp.abspath(v) for v in a + b}
    assert not [p for p in os.listdir(tmp_path) if p.endswith('.tmp')]


def test_contact_sheet_is_written_whole(tmp_path, monkeypatch):
    import runpy
    monkeypatch.syspath_prepend(osp.join(REPO_ROOT, 'tools'))
    search = runpy.run_path(osp.join(REPO_ROOT, 'tools', 'search.py'))
    video = write_videos(tmp_path / 'v', [3])[0]
    sheet = tmp_path / 'new' / 'hits.jpg'
    assert search['contact_sheet'](str(sheet), [(video, 0.5)], 2) == (
        96, 256, 3)
    assert sheet.read_bytes()[:2] == b'\xff\xd8'  # JPEG
    with pytest.raises(SystemExit, match='cannot write the contact sheet'):
        search['contact_sheet'](str(tmp_path / 'hits.txt'), [(video, 0.5)],
                                2)
    assert sorted(os.listdir(tmp_path)) == ['new', 'v']  # no leftovers
