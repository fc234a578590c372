"""Bad and odd video files through the demo's real pipeline."""
import os.path as osp

import cv2
import numpy as np
import pytest
from conftest import REPO_ROOT
from mmaction.registry import DATASETS
from mmengine.config import Config
from mmengine.registry import init_default_scope

from stan_mmaction.datasets import BadSampleError, render_video, write_mp4

CFG = osp.join(REPO_ROOT, 'configs', 'demo', 'stan_tiny_synthetic.py')


def write_gray_mp4(path, frames=16, size=32):
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), 8,
                             (size, size), isColor=False)
    for i in range(frames):
        writer.write(np.full((size, size), 15 * i, np.uint8))
    writer.release()


@pytest.fixture
def videos(tmp_path):
    rng = np.random.default_rng(0)
    good = tmp_path / 'good.mp4'
    write_mp4(str(good), render_video(0, rng))
    (tmp_path / 'empty.mp4').write_bytes(b'')
    (tmp_path / 'text.mp4').write_text('this is not a video\n')
    data = good.read_bytes()
    (tmp_path / 'truncated.mp4').write_bytes(data[:len(data) // 3])
    write_mp4(str(tmp_path / 'short.mp4'),
              render_video(1, rng, num_frames=3))
    write_gray_mp4(str(tmp_path / 'gray.mp4'))
    odd = np.stack([np.full((37, 50, 3), 15 * i, np.uint8)
                    for i in range(16)])
    write_mp4(str(tmp_path / 'odd.mp4'), odd)
    return tmp_path


def build(root, names, test_mode=False, skip=False):
    ann = root / 'list.txt'
    ann.write_text(''.join(f'{n} {i % 8}\n' for i, n in enumerate(names)))
    cfg = Config.fromfile(CFG)
    init_default_scope('mmaction')
    key = 'val_dataloader' if test_mode else 'train_dataloader'
    ds_cfg = cfg[key].dataset
    ds_cfg.update(ann_file=str(ann), data_prefix=dict(video=str(root)),
                  skip_bad_samples=skip)
    return DATASETS.build(ds_cfg)


@pytest.mark.parametrize('name', ['missing.mp4', 'empty.mp4', 'text.mp4',
                                  'truncated.mp4'])
def test_broken_file_error_names_file_and_line(videos, name):
    ds = build(videos, ['good.mp4', name])
    assert ds[0]['inputs'].shape == (1, 3, 8, 32, 32)
    with pytest.raises(BadSampleError) as err:
        ds[1]
    msg = str(err.value)
    assert f'{osp.join(str(videos), name)} ({videos}/list.txt, line 2)' in msg
    assert 'skip_bad_samples=True' in msg


@pytest.mark.parametrize('name', ['short.mp4', 'gray.mp4', 'odd.mp4'])
def test_odd_but_valid_videos_load(videos, name):
    ds = build(videos, [name])
    sample = ds[0]
    # 3-frame videos repeat frames; gray decodes to 3 channels; any size is
    # resized to the model's 32x32.
    assert sample['inputs'].shape == (1, 3, 8, 32, 32)
    if name == 'gray.mp4':
        x = sample['inputs'][0].float()
        assert (x[0] - x[1]).abs().max() <= 2 and (x[1] - x[2]).abs().max() \
            <= 2


def test_skip_bad_samples_logs_once_and_counts(videos, caplog):
    ds = build(videos, ['good.mp4', 'empty.mp4', 'text.mp4'], skip=True)
    for _ in range(3):
        out = ds[1]
        assert out['inputs'].shape == (1, 3, 8, 32, 32)
    ds[2]
    assert ds.bad_samples >= {1, 2}
    assert ds.prepare_data(1) is None


def test_skip_never_applies_in_test_mode(videos):
    ds = build(videos, ['good.mp4', 'empty.mp4'], test_mode=True, skip=True)
    with pytest.raises(BadSampleError, match='line 2'):
        ds[1]
