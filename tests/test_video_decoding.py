"""VideoInit / VideoDecode (stan_mmaction.datasets.video_decoding): decord
and PyAV give the same frames, each needed frame is decoded once, PyAV
seeks instead of decoding from the start, and the configs switch readers
with one key. Videos written here (OpenCV), and prepared copies
(tools/data/prepare_videos.py)."""
import os.path as osp

import numpy as np
import pytest
from conftest import REPO_ROOT, call_main, write_video

from stan_mmaction.datasets.video_decoding import (DecordReader, PyAVReader,
                                                   VideoDecode, VideoInit)
from stan_mmaction.utils import load_config

K400 = osp.join(REPO_ROOT, 'configs', 'recognition', 'stan',
                'stan-attn_vit-base-p16-res224-clip-pre_1x1x8_k400-rgb.py')


@pytest.fixture(scope='module')
def videos(tmp_path_factory):
    """An original (OpenCV's MPEG-4, a keyframe every 12 frames) and its
    prepared copy (H.264, a keyframe every 8 frames, short side 128)."""
    root = tmp_path_factory.mktemp('decoding')
    original = write_video(str(root / 'src' / 'a.mp4'), 320, 240, 240)
    res = call_main('tools/data/prepare_videos.py', [
        str(root / 'src'), str(root / 'prepared'), '--short-side', '128'])
    assert res.returncode == 0, res.stderr[-2000:]
    return original, str(root / 'prepared' / 'a.mp4')


INDEX_SETS = ([0, 1, 2, 3], [5, 35, 65, 95, 125, 155, 185, 215],
              [0, 100, 239], list(range(100, 116)))


@pytest.mark.parametrize('which', [0, 1], ids=['original', 'prepared'])
def test_pyav_reads_the_frames_decord_reads(videos, which):
    path = videos[which]
    dec, pyav = DecordReader(path), PyAVReader(path)
    assert pyav.total == dec.total == 240 and pyav.fps == dec.fps == 25
    for inds in INDEX_SETS:
        a, b = dec.read(inds), pyav.read(inds)
        assert a.shape == b.shape == (len(inds), *a.shape[1:])
        assert np.abs(a.astype(int) - b).mean() < 1.0, inds
    with pytest.raises(ValueError, match='frame 240 is past the end'):
        PyAVReader(path).read([3, 240])


def test_pyav_seeks_to_the_keyframe_before_each_sparse_frame(videos):
    """8 frames spread over 240: the prepared copy (a keyframe every 8)
    decodes at most 8 frames per sampled one; dense frames are decoded in
    one run (16 consecutive frames, at most one group of pictures more)."""
    reader = PyAVReader(videos[1])
    reader.read(INDEX_SETS[1])
    assert reader.decoded <= 8 * 8  # not 216, the frames up to the last
    reader = PyAVReader(videos[1])
    reader.read(INDEX_SETS[3])
    assert reader.decoded <= 16 + 8


def test_pyav_reads_a_file_with_one_keyframe_in_one_pass(videos,
                                                         tmp_path):
    """No keyframe between two sampled frames: seeking would land at the
    start again each time; the reader decodes forward instead, each frame
    once (MMAction2's BigBuckBunny-like files: one keyframe)."""
    import av
    one = str(tmp_path / 'one_keyframe.mp4')
    with av.open(one, 'w') as out:  # x264 with one keyframe in 240 frames
        stream = out.add_stream('libx264', rate=25)
        stream.width, stream.height, stream.pix_fmt = 128, 96, 'yuv420p'
        stream.options = {'g': '1000', 'keyint_min': '1000',
                          'sc_threshold': '0', 'preset': 'veryfast'}
        for frame in DecordReader(videos[0]).read(list(range(240))):
            small = av.VideoFrame.from_ndarray(frame[::2, ::2][:96, :128],
                                               format='rgb24')
            for packet in stream.encode(small):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    reader = PyAVReader(one)
    assert reader.keyframes == [0] and reader.total == 240
    frames = reader.read(INDEX_SETS[1])
    assert reader.decoded == INDEX_SETS[1][-1] + 1  # one pass, no repeats
    ref = DecordReader(one).read(INDEX_SETS[1])
    assert np.abs(frames.astype(int) - ref).mean() < 1.0


@pytest.mark.parametrize('backend', ['decord', 'pyav'])
def test_decode_reads_each_frame_once_in_sampling_order(videos, backend):
    results = VideoInit(backend=backend).transform(
        dict(filename=videos[0]))
    assert results['total_frames'] == 240
    reader = results['video_reader']
    calls = []
    read = reader.read
    reader.read = lambda inds: calls.append(list(inds)) or read(inds)
    results['frame_inds'] = np.array([30, 30, 10, 70, 30])
    out = VideoDecode().transform(results)
    assert calls == [[10, 30, 70]]  # sorted, each once
    full = DecordReader(videos[0]).read([30, 30, 10, 70, 30])
    assert len(out['imgs']) == 5 and out['video_reader'] is None
    for got, want in zip(out['imgs'], full):
        assert np.abs(got.astype(int) - want).mean() < 1.0
    assert out['img_shape'] == out['original_shape'] == (240, 320)
    with pytest.raises(ValueError, match="backend 'opencv'"):
        VideoInit(backend='opencv')


def test_configs_switch_the_reader_with_one_key(videos):
    """The K400 test pipeline read with decord and, by the documented
    override, with PyAV: the same views, nearly the same pixels."""
    from mmaction.registry import TRANSFORMS
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    init_default_scope('mmaction')
    out = {}
    for backend in ('decord', 'pyav'):
        cfg = load_config(K400)
        cfg.merge_from_dict(
            {'test_dataloader.dataset.pipeline.0.backend': backend})
        steps = cfg.test_dataloader.dataset.pipeline
        assert steps[0] == dict(type='VideoInit', backend=backend,
                                io_backend='disk')
        pipeline = Compose([TRANSFORMS.build(s) for s in steps])
        out[backend] = pipeline(dict(filename=videos[0], start_index=0,
                                     modality='RGB'))['inputs']
    assert out['decord'].shape == out['pyav'].shape == (12, 3, 8, 224, 224)
    diff = (out['decord'].float() - out['pyav'].float()).abs()
    assert diff.mean() < 1.0
