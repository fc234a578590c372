"""A synthetic video dataset in which temporal order matters.

Classes come in time-reversed pairs (a square moving right vs left, down vs
up, growing vs shrinking, a scene getting brighter vs darker). Within a
pair the two classes draw their frames from the same distribution; only the
order differs, so a frame-order-blind model (mean pooling over frames)
cannot do better than chance within each pair.

Videos are real MP4 files (OpenCV ``mp4v``), listed in MMAction2's
``VideoDataset`` format (``relative/path.mp4 label`` per line).
"""
import os
import os.path as osp
from typing import Dict, List

import numpy as np

#: class index -> name; classes 2i and 2i+1 are time reverses of each other.
CLASSES = ('move_right', 'move_left', 'move_down', 'move_up', 'grow',
           'shrink', 'brighten', 'darken')


def _trajectory(label: int, rng: np.random.Generator, num_frames: int,
                size: int) -> List[dict]:
    """Per-frame (x, y, side, brightness) of one video of class ``label``."""
    pair, reverse = divmod(label, 2)
    t = np.linspace(0.0, 1.0, num_frames)
    if reverse:
        t = t[::-1]
    side0 = int(rng.integers(size // 5, size // 3))
    cx, cy = rng.uniform(0.3, 0.7, size=2) * size
    lo, hi = 0.15 * size, 0.85 * size
    x = np.full(num_frames, cx)
    y = np.full(num_frames, cy)
    side = np.full(num_frames, float(side0))
    bright = np.full(num_frames, rng.uniform(0.6, 1.0))
    if pair == 0:
        x = lo + (hi - lo) * t
    elif pair == 1:
        y = lo + (hi - lo) * t
    elif pair == 2:
        side = size * (0.12 + 0.5 * t)
    else:
        bright = 0.25 + 0.75 * t
    return [dict(x=x[i], y=y[i], side=side[i], bright=bright[i])
            for i in range(num_frames)]


def render_video(label: int, rng: np.random.Generator, num_frames: int = 16,
                 size: int = 32) -> np.ndarray:
    """Frames ``(T, size, size, 3)`` uint8 (BGR) of one video of ``label``."""
    color = rng.uniform(120, 255, size=3)
    background = rng.uniform(0, 60, size=3)
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    yy, xx = np.mgrid[0:size, 0:size]
    for i, s in enumerate(_trajectory(label, rng, num_frames, size)):
        half = s['side'] / 2
        inside = (np.abs(xx - s['x']) <= half) & (np.abs(yy - s['y']) <= half)
        img = np.broadcast_to(background, (size, size, 3)).copy()
        img[inside] = color
        img = img * s['bright'] + rng.normal(0, 4, size=img.shape)
        frames[i] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def write_mp4(path: str, frames: np.ndarray, fps: int = 8) -> None:
    """Write BGR uint8 frames ``(T, H, W, 3)`` to an MP4 file."""
    import cv2
    t, h, w, _ = frames.shape
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), fps,
                             (w, h))
    if not writer.isOpened():
        raise RuntimeError(f'OpenCV cannot write MP4 files ({path})')
    for frame in frames:
        writer.write(frame)
    writer.release()


def make_synthetic_dataset(root: str,
                           splits: Dict[str, int] = None,
                           num_frames: int = 16,
                           size: int = 32,
                           seed: int = 0) -> Dict[str, str]:
    """Write videos and MMAction2 annotation files under ``root``.

    Args:
        root (str): output folder.
        splits (dict): split name -> videos per class. Defaults to
            ``{'train': 24, 'val': 8}``.
        num_frames (int): frames per video. Defaults to 16.
        size (int): frame height and width. Defaults to 32.
        seed (int): random seed; the same seed writes the same videos.

    Returns:
        dict: split name -> annotation file path (``videos/...mp4 label``).
    """
    splits = dict(train=24, val=8) if splits is None else splits
    rng = np.random.default_rng(seed)
    ann_files = {}
    for split, per_class in splits.items():
        os.makedirs(osp.join(root, 'videos', split), exist_ok=True)
        lines = []
        for label, name in enumerate(CLASSES):
            for i in range(per_class):
                rel = f'videos/{split}/{name}_{i:03d}.mp4'
                write_mp4(osp.join(root, rel),
                          render_video(label, rng, num_frames, size))
                lines.append(f'{rel} {label}')
        ann = osp.join(root, f'{split}_list_videos.txt')
        with open(ann, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        ann_files[split] = ann
    return ann_files
