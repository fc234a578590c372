"""Reading videos: opening a file (decoded near the size the model uses),
sampling the frames of a clip window by window with bounded memory, listing
video files. The model-free half of inference: resizing, cropping and
normalising are the config's test pipeline, applied by
:class:`.inferencer.StanInferencer`."""
import os.path as osp
from typing import Iterator, List, Optional, Tuple

import numpy as np

VIDEO_EXTS = ('.mp4', '.avi', '.mkv', '.mov', '.webm', '.m4v', '.mpg',
              '.mpeg')


class VideoReadError(RuntimeError):
    """A video file cannot be opened or decoded."""


def _scaled_size(h: int, w: int, short: int, crop: int) -> Tuple[int, int]:
    """(height, width) with the short side ``short`` (at least ``crop``),
    rounded as MMCV's ``rescale_size`` (the test pipeline's ``Resize``)
    rounds, so that step has nothing left to do."""
    scale = short / min(h, w)
    return max(crop, int(h * scale + 0.5)), max(crop, int(w * scale + 0.5))


def _stored_size(path: str) -> Optional[Tuple[int, int]]:
    """(height, width) from the container's header (OpenCV, nothing
    decoded); None when it does not say."""
    import cv2
    cap = cv2.VideoCapture(path)
    try:
        h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
    finally:
        cap.release()
    return (h, w) if h > 0 and w > 0 else None


def open_video(path: str, short: Optional[int] = None,
               crop: Optional[int] = None):
    """``(decord reader, frame count)``.

    With ``short`` (and ``crop``), a video larger than needed is decoded at
    the size the model uses (short side ``short``, by the decoder's own
    scaler; the stored size is read from the container's header), so a 4K
    file costs little more than a small one: only the decoder's own frame
    buffers are full size. Smaller videos are decoded as they are and
    scaled up afterwards.
    """
    import decord
    if not osp.isfile(path):
        raise VideoReadError(f'{path}: no such file')
    try:
        size = _stored_size(path) if short else None
        if size:
            nh, nw = _scaled_size(*size, short, crop or short)
            if nh < size[0] and nw < size[1]:
                reader = decord.VideoReader(path, num_threads=1, width=nw,
                                            height=nh)
            else:
                size = None
        if not size:
            reader = decord.VideoReader(path, num_threads=1)
        count = len(reader)
    except Exception as err:  # noqa: BLE001  (decord raises many types)
        raise VideoReadError(f'{path}: cannot open as a video ({err})')
    if count == 0:
        raise VideoReadError(f'{path}: no frames')
    return reader, count


def iter_clips(path: str, frames: int, short: Optional[int] = None,
               crop: Optional[int] = None, window: Optional[int] = None
               ) -> Iterator[Tuple[np.ndarray, Tuple[int, int], int]]:
    """Yield ``(frames (T, H, W, 3) uint8 RGB, (start, end), total)``: the
    decoded frames of each clip, before the test pipeline's resizing and
    cropping (:meth:`.inferencer.StanInferencer.preprocess`).

    ``window=None``: one clip over the whole video (uniform segments, the
    middle frame of each, as MMAction2's test-mode ``UniformSample``).
    ``window=W``: consecutive windows of W frames, one clip each; only the
    sampled frames of one window are decoded at a time, so memory does not
    grow with the video's length; with ``short`` (and ``crop``) frames are
    decoded at the model's size (:func:`open_video`), so it does not grow
    with the resolution either.
    """
    reader, total = open_video(path, short, crop)
    window = total if not window else window
    for start in range(0, total, window):
        end = min(total, start + window)
        seg = (end - start) / frames
        idx = [min(end - 1, start + int(seg * i + seg / 2))
               for i in range(frames)]
        try:
            batch = reader.get_batch(idx).asnumpy()
        except Exception as err:  # noqa: BLE001
            raise VideoReadError(f'{path}: cannot decode frames {idx[0]}.. '
                                 f'{idx[-1]} ({err})')
        if batch.ndim != 4 or batch.shape[-1] != 3:
            raise VideoReadError(f'{path}: frames of shape {batch.shape} '
                                 'are not RGB')
        yield batch, (start, end), total


def list_videos(folder: str) -> List[str]:
    """Video files under ``folder`` (recursively), sorted."""
    import os
    found = []
    for root, _, files in os.walk(folder):
        for name in files:
            if name.lower().endswith(VIDEO_EXTS):
                found.append(osp.join(root, name))
    return sorted(found)
