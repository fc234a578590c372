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


# ---------------------------------------------------------------------------
# Synthetic video-text retrieval: a square that moves one way, then another.
#: colour name -> BGR.
COLORS = {'red': (40, 40, 230), 'green': (40, 200, 40),
          'blue': (230, 80, 40), 'yellow': (40, 220, 230)}
SIZES = {'small': 6, 'big': 10}
#: direction -> (dx, dy) in image coordinates.
DIRECTIONS = {'left': (-1, 0), 'right': (1, 0), 'up': (0, -1),
              'down': (0, 1)}


def retrieval_types() -> List[tuple]:
    """Every (size, colour, first direction, second direction) with the two
    directions perpendicular: 2 x 4 x 8 = 64 video types, each its own
    caption. ``(d1, d2)`` played backwards is ``(opposite d2, opposite
    d1)``: the same frames in reverse order, so a frame-order-blind model
    cannot tell those two captions apart; ``(d2, d1)`` has the same words
    in the other order."""
    out = []
    for size in SIZES:
        for color in COLORS:
            for d1, v1 in DIRECTIONS.items():
                for d2, v2 in DIRECTIONS.items():
                    if v1[0] * v2[0] + v1[1] * v2[1] == 0 and d1 != d2:
                        out.append((size, color, d1, d2))
    return out


def retrieval_captions(size: str, color: str, d1: str, d2: str) -> List[str]:
    """Two phrasings of one video type."""
    return [f'a {size} {color} square moves {d1}, then {d2}',
            f'the {color} square is {size} and goes {d1} before going {d2}']


def render_two_moves(size: str, color: str, d1: str, d2: str,
                     rng: np.random.Generator, num_frames: int = 16,
                     frame_size: int = 32) -> np.ndarray:
    """Frames ``(T, S, S, 3)`` uint8 BGR: the square moves ``d1`` for the
    first half of the clip, then ``d2``."""
    side = SIZES[size] + rng.uniform(-1, 1)
    step = 0.32 * frame_size
    v1, v2 = np.array(DIRECTIONS[d1]), np.array(DIRECTIONS[d2])
    # A start point from which the whole L-shaped path stays in the frame.
    margin = side / 2 + 1
    lo = np.array([margin, margin]) - np.minimum(0, step * (v1 + v2))
    hi = np.array([frame_size - margin] * 2) - np.maximum(0, step *
                                                          (v1 + v2))
    start = rng.uniform(lo, hi)
    half = num_frames // 2
    t = np.linspace(0, 1, half)
    path = np.concatenate([start + step * t[:, None] * v1,
                           start + step * v1 + step * t[:, None] * v2])
    background = rng.uniform(0, 50, size=3)
    color_bgr = np.array(COLORS[color]) + rng.uniform(-15, 15, size=3)
    yy, xx = np.mgrid[0:frame_size, 0:frame_size]
    frames = np.empty((num_frames, frame_size, frame_size, 3), np.uint8)
    for i, (x, y) in enumerate(path[:num_frames]):
        inside = (np.abs(xx - x) <= side / 2) & (np.abs(yy - y) <= side / 2)
        img = np.broadcast_to(background, frames.shape[1:]).copy()
        img[inside] = color_bgr
        img = img + rng.normal(0, 4, size=img.shape)
        frames[i] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def make_synthetic_retrieval_dataset(root: str,
                                     splits: Dict[str, int] = None,
                                     num_frames: int = 16,
                                     size: int = 32,
                                     seed: int = 0) -> Dict[str, str]:
    """Write videos and MMAction2 ``VideoTextDataset`` JSON files
    (``{"videos/split/x.mp4": [caption, caption]}``) under ``root``.

    Args:
        splits (dict): split name -> videos per type (64 types). Defaults to
            ``{'train': 6, 'test': 1}``.

    Returns:
        dict: split name -> annotation file (``{split}_captions.json``).
    """
    import json
    splits = dict(train=6, test=1) if splits is None else splits
    rng = np.random.default_rng(seed)
    ann_files = {}
    for split, per_type in splits.items():
        folder = osp.join(root, 'videos', split)
        os.makedirs(folder, exist_ok=True)
        ann = {}
        for kind in retrieval_types():
            for i in range(per_type):
                rel = f'videos/{split}/{"_".join(kind)}_{i:03d}.mp4'
                write_mp4(osp.join(root, rel),
                          render_two_moves(*kind, rng, num_frames, size))
                ann[rel] = retrieval_captions(*kind)
        path = osp.join(root, f'{split}_captions.json')
        with open(path, 'w') as f:
            json.dump(ann, f, indent=1)
        ann_files[split] = path
    return ann_files
