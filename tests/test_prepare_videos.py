"""tools/data/prepare_videos.py on videos written here: sizes and frames
kept, keyframes, a broken file listed with the rest done, a SIGKILL then a
re-run that completes without redoing finished files, list mode and the
rewritten annotation list."""
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO_ROOT, call_main, subprocess_env, write_video

TOOL = 'tools/data/prepare_videos.py'


def probe(path):
    """((width, height), frames, keyframe indices, audio streams, codec)
    of a file as PyAV reads it."""
    import av

    from stan_mmaction.apis.video_prepare import count_packets
    with av.open(path) as c:
        s = c.streams.video[0]
        size = (s.codec_context.width, s.codec_context.height)
        audio = len(c.streams.audio)
        codec = s.codec_context.name
    frames, keys = count_packets(path)
    return size, frames, keys, audio, codec


def test_folder_sizes_frames_keyframes_and_a_broken_file(tmp_path):
    src, dst = tmp_path / 'src', tmp_path / 'dst'
    wide = write_video(str(src / 'wide.mp4'), 640, 272, 30)
    small = write_video(str(src / 'sub' / 'small.avi'), 120, 180, 17,
                        fourcc='MJPG')
    (src / 'broken.mp4').write_bytes(b'\x00' * 500)
    res = call_main(TOOL, [str(src), str(dst), '--short-side', '128',
                           '--keyframe-interval', '4', '--workers', '2'])
    assert res.returncode == 0, res.stderr[-3000:]
    assert '2 prepared, 0 already done, 1 failed' in res.stdout
    assert f"{src / 'broken.mp4'}: " in res.stdout  # listed, with reason
    # Short side 128 (even sizes), aspect kept; never upscaled.
    size, frames, keys, audio, codec = probe(str(dst / 'wide.mp4'))
    assert size == (302, 128) and frames == 30 and audio == 0
    assert codec == 'h264'
    assert keys[0] == 0 and max(np.diff(keys + [frames])) <= 4
    size, frames, _, _, _ = probe(str(dst / 'sub' / 'small.mp4'))
    assert size == (120, 180) and frames == 17  # .avi -> .mp4
    manifest = json.loads((dst / 'manifest.json').read_text())
    assert sorted(manifest['files']) == ['sub/small.mp4', 'wide.mp4']
    entry = manifest['files']['wide.mp4']
    assert entry['src'] == wide and entry['frames'] == entry['src_frames']
    assert entry['size'] == osp.getsize(dst / 'wide.mp4')
    assert entry['duration'] == pytest.approx(30 / 25)
    assert manifest['files']['sub/small.mp4']['src'] == small
    assert list(manifest['failed']) == [str(src / 'broken.mp4')]
    assert not (dst / '.prepare_tmp').exists()
    # What decord (the training pipelines' reader) sees.
    import decord
    reader = decord.VideoReader(str(dst / 'wide.mp4'))
    assert len(reader) == 30 and reader[0].shape == (128, 302, 3)

    # A re-run does nothing again; a changed source is redone.
    again = call_main(TOOL, [str(src), str(dst), '--short-side', '128',
                             '--keyframe-interval', '4'])
    assert '0 prepared, 2 already done, 1 failed' in again.stdout
    write_video(wide, 640, 272, 20, seed=1)
    third = call_main(TOOL, [str(src), str(dst), '--short-side', '128',
                             '--keyframe-interval', '4'])
    assert third.value['done_now'] == ['wide.mp4']
    assert probe(str(dst / 'wide.mp4'))[1] == 20
    # Other settings: everything is redone.
    fourth = call_main(TOOL, [str(src), str(dst), '--short-side', '64',
                              '--keyframe-interval', '4'])
    assert sorted(fourth.value['done_now']) == ['sub/small.mp4',
                                                'wide.mp4']
    assert probe(str(dst / 'wide.mp4'))[0] == (150, 64)


@pytest.mark.slow
def test_sigkill_then_rerun_completes_without_redoing(tmp_path):
    src, dst = tmp_path / 'src', tmp_path / 'dst'
    for i in range(8):
        write_video(str(src / f'v{i}.mp4'), 640, 272, 150, seed=i)
    cmd = [sys.executable, osp.join(REPO_ROOT, TOOL), str(src), str(dst),
           '--keyframe-interval', '8']
    proc = subprocess.Popen(cmd, env=subprocess_env(), cwd=REPO_ROOT,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    manifest = dst / 'manifest.json'
    deadline = time.time() + 120
    done = {}
    while time.time() < deadline and proc.poll() is None:
        try:
            done = json.loads(manifest.read_text())['files']
        except (OSError, ValueError, KeyError):
            done = {}
        if len(done) >= 2:
            break
        time.sleep(0.01)
    assert proc.poll() is None, 'finished before it could be killed'
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = json.loads(manifest.read_text())['files']
    assert 2 <= len(done) < 8
    # No half-written video at a destination path: every .mp4 there is
    # one the manifest lists, complete.
    written = sorted(p for p in os.listdir(dst) if p.endswith('.mp4'))
    assert written == sorted(done)
    for name in written:
        assert probe(str(dst / name))[1] == 150
    stamps = {n: os.stat(dst / n).st_mtime_ns for n in written}

    res = call_main(TOOL, [str(src), str(dst), '--keyframe-interval', '8'])
    assert res.returncode == 0, res.stderr[-3000:]
    assert sorted(res.value['done_before']) == written
    assert len(res.value['done_now']) == 8 - len(written)
    assert {n: os.stat(dst / n).st_mtime_ns for n in written} == stamps
    final = json.loads(manifest.read_text())
    assert len(final['files']) == 8 and not final['failed']
    assert not (dst / '.prepare_tmp').exists()  # the killed run's temp


def x264_options(path):
    """The options x264 wrote into the stream (its SEI text)."""
    data = open(path, 'rb').read()
    start = data.index(b'options: ') + len(b'options: ')
    text = data[start:data.index(b'\x00', start)].decode('ascii', 'replace')
    return dict(kv.split('=', 1) for kv in text.split() if '=' in kv)


def test_encoded_for_fast_decoding_unless_told(tmp_path):
    src = tmp_path / 'src'
    write_video(str(src / 'a.mp4'), 96, 64, 12)
    res = call_main(TOOL, [str(src), str(tmp_path / 'fast')])
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.value['settings']['tune'] == 'fastdecode'
    opts = x264_options(str(tmp_path / 'fast' / 'a.mp4'))
    # fastdecode: CAVLC instead of CABAC, no deblocking, no weighted P.
    assert opts['cabac'] == '0' and opts['deblock'].startswith('0')
    assert opts['weightp'] == '0' and opts['keyint'] == '8'
    res = call_main(TOOL, [str(src), str(tmp_path / 'plain'),
                           '--tune', 'none'])
    assert res.value['settings']['tune'] == 'none'
    opts = x264_options(str(tmp_path / 'plain' / 'a.mp4'))
    assert opts['cabac'] == '1' and opts['deblock'].startswith('1')
    res = call_main(TOOL, [str(src), str(tmp_path / 'bad'),
                           '--tune', 'fastest'])
    assert res.returncode != 0 and "invalid choice: 'fastest'" in res.stderr
    assert not (tmp_path / 'bad').exists()


def test_list_mode_rewrites_the_annotation_list(tmp_path):
    root, dst = tmp_path / 'videos', tmp_path / 'prepared'
    write_video(str(root / 'a.avi'), 64, 48, 12, fourcc='MJPG')
    write_video(str(root / 'sub' / 'b.mp4'), 48, 64, 9)
    listing = tmp_path / 'train_list.txt'
    listing.write_text('a.avi 3\n\nsub/b.mp4 1\nmissing.webm 0\n'
                       '../outside.mp4 2\n')
    new = tmp_path / 'train_list_prepared.txt'
    res = call_main(TOOL, [str(listing), str(dst), '--list', '--root',
                           str(root), '--ann-out', str(new)])
    assert res.returncode == 0, res.stderr[-3000:]
    assert sorted(res.value['files']) == ['a.mp4', 'sub/b.mp4']
    failed = res.value['failed']
    assert failed[str(root / 'missing.webm')] == 'no such file'
    assert failed['../outside.mp4'] == 'the path leaves the data root'
    assert not (tmp_path / 'outside.mp4').exists()
    assert new.read_text() == 'a.mp4 3\nsub/b.mp4 1\n'
    assert f'{new}: 2 line(s), 2 left out (not prepared)' in res.stdout
    # The rewritten list reads with MMAction2's dataset on the new folder.
    from mmaction.datasets import VideoDataset
    data = VideoDataset(str(new), pipeline=[],
                        data_prefix=dict(video=str(dst)))
    assert [d['filename'] for d in data] == [str(dst / 'a.mp4'),
                                             str(dst / 'sub' / 'b.mp4')]
    # A manifest that is not ours (garbage) is data: ignored, files redone.
    (dst / 'manifest.json').write_text('{"version": 1, "files": [')
    res = call_main(TOOL, [str(listing), str(dst), '--list', '--root',
                           str(root)])
    assert res.returncode == 0, res.stderr[-3000:]
    assert sorted(res.value['done_now']) == ['a.mp4', 'sub/b.mp4']
    assert json.loads((dst / 'manifest.json').read_text())['version'] == 1
    # Bad invocations are one clear line, and write nothing.
    res = call_main(TOOL, [str(root), str(root)])
    assert res.returncode != 0 and 'DST must differ' in res.stderr
    assert not (root / 'manifest.json').exists()
    res = call_main(TOOL, [str(root), str(dst), '--ann-out', str(new)])
    assert res.returncode != 0 and '--ann-out needs --list' in res.stderr
    res = call_main(TOOL, [str(listing), str(dst)])
    assert res.returncode != 0 and 'add --list' in res.stderr


def test_sources_sharing_an_output_are_refused_before_writing(tmp_path):
    """test.mp4 and test.avi both become test.mp4: refused with both
    names, nothing written (the .avi's content used to be kept as
    test.mp4 and the real test.mp4 dropped, exit 0); a video a list names
    twice is one source, prepared once."""
    src, dst = tmp_path / 'src', tmp_path / 'dst'
    mp4 = write_video(str(src / 'test.mp4'), 64, 48, 6)
    avi = write_video(str(src / 'test.avi'), 64, 48, 6, fourcc='MJPG')
    write_video(str(src / 'sub' / 'x.webm.mp4'), 64, 48, 6)
    res = call_main(TOOL, [str(src), str(dst)])
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        'Error: 1 output name(s) shared by several sources (each becomes '
        f'NAME.mp4): test.mp4 <- {avi}, {mp4}. Rename or move one of each, '
        'or prepare them into different DST folders; nothing was written']
    assert not dst.exists()

    listing = tmp_path / 'list.txt'
    listing.write_text('test.mp4 0 3\ntest.mp4 0 2 4\n')
    res = call_main(TOOL, [str(listing), str(dst), '--list', '--root',
                           str(src), '--ann-out', str(tmp_path / 'new.txt')])
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.value['done_now'] == ['test.mp4']
    assert (tmp_path / 'new.txt').read_text() == \
        'test.mp4 0 3\ntest.mp4 0 2 4\n'
    assert probe(str(dst / 'test.mp4'))[1] == 6
