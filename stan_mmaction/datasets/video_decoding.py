"""Opening and decoding videos in the data pipelines, with decord (the
default) or PyAV, chosen by the config (``VideoInit(backend=...)``).

MMAction2 has a pair of steps per library (``DecordInit`` /
``DecordDecode``, ``PyAVInit`` / ``PyAVDecode``); these two take the
library as an argument, so a config switches with one key
(``--cfg-options train_dataloader.dataset.pipeline.0.backend=pyav``), and
read each needed frame once: the sampled indices are sorted and made
unique, read in one pass, and put back in sampling order. PyAV seeks to
the keyframe before each needed frame when it is far ahead and a keyframe
lies between, and decodes forward otherwise (dense sampling, or a file
with few keyframes, reads sequentially); decord's
``get_batch`` does the same internally. MMAction2's ``PyAVDecode``
instead decodes every frame from the start to the last one needed.
"""
from typing import Dict, List, Optional

import numpy as np
from mmaction.registry import TRANSFORMS
from mmcv.transforms import BaseTransform

BACKENDS = ('decord', 'pyav')
#: Frames PyAV decodes forward before it seeks instead, when a keyframe
#: lies between (a seek lands on the keyframe at or before the target: with
#: keyframes every 8 frames, as tools/data/prepare_videos.py writes them,
#: at most 7 frames are decoded for nothing).
SEEK_GAP = 16


class DecordReader:
    """A video through decord: ``total``, ``fps``, ``read(sorted unique
    indices) -> (N, H, W, 3) uint8 RGB``."""

    def __init__(self, file_obj, num_threads: int = 1):
        import decord
        self.container = decord.VideoReader(file_obj,
                                            num_threads=num_threads)
        self.total = len(self.container)
        self.fps = float(self.container.get_avg_fps())

    def read(self, indices: List[int]) -> np.ndarray:
        return self.container.get_batch(indices).asnumpy()

    def close(self) -> None:
        self.container = None


class PyAVReader:
    """A video through PyAV (FFmpeg), the same interface as
    :class:`DecordReader`; ``decoded`` counts the frames decoded so far
    (the cost of the reads)."""

    def __init__(self, file_obj, num_threads: int = 1):
        import av
        self.container = av.open(file_obj)
        if not self.container.streams.video:
            raise ValueError('no video stream')
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = 'AUTO'
        self.stream.codec_context.thread_count = num_threads
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.fps = float(rate) if rate else 0.0
        self.total, self.keyframes = self._scan()
        self.decoded = 0

    def _scan(self):
        """(frames, sorted keyframe indices) from the packets (nothing
        decoded; milliseconds for a clip of seconds), then back to the
        start. The keyframes decide whether seeking saves anything."""
        n, keys = 0, []
        for packet in self.container.demux(self.stream):
            if not packet.size:
                continue
            n += 1
            if packet.is_keyframe:
                index = self._index(packet)
                if index is not None:
                    keys.append(index)
        self.container.seek(0, stream=self.stream)
        return self.stream.frames or n, sorted(keys) or [0]

    def _index(self, frame) -> Optional[int]:
        if frame.pts is None or not self.fps:
            return None
        start = self.stream.start_time or 0
        return int(round(float((frame.pts - start) * self.stream.time_base)
                         * self.fps))

    def _frames_from(self, target: int):
        """Decoded frames with their index, from the keyframe at or before
        ``target`` (by timestamp; a stream without timestamps or frame rate
        is decoded from its start, counting frames)."""
        if self.fps and self.stream.time_base:
            start = self.stream.start_time or 0
            pts = start + int(target / self.fps / self.stream.time_base)
            self.container.seek(pts, stream=self.stream, backward=True)
            count = None
        else:
            self.container.seek(0, stream=self.stream)
            count = 0
        for frame in self.container.decode(self.stream):
            self.decoded += 1
            index = self._index(frame) if count is None else count
            if count is not None:
                count += 1
            yield index, frame

    def _keyframe_before(self, target: int) -> int:
        import bisect
        i = bisect.bisect_right(self.keyframes, target)
        return self.keyframes[i - 1] if i else 0

    def read(self, indices: List[int]) -> np.ndarray:
        out, frames, cur = [], None, None  # cur: (index, frame) last decoded
        for target in indices:
            # Decode forward when the target is near, or when no keyframe
            # lies between here and it (a seek would land behind us).
            near = cur is not None and cur[0] is not None and (
                target - cur[0] <= SEEK_GAP or
                self._keyframe_before(target) <= cur[0])
            if not (near and cur[0] >= target):
                if not near:
                    frames = self._frames_from(target)
                for cur in frames:
                    if cur[0] is not None and cur[0] >= target:
                        break
                else:
                    raise ValueError(f'frame {target} is past the end '
                                     f'({self.total} frames)')
            out.append(cur[1].to_ndarray(format='rgb24'))
        return np.stack(out)

    def close(self) -> None:
        self.container.close()


READERS = dict(decord=DecordReader, pyav=PyAVReader)


@TRANSFORMS.register_module()
class VideoInit(BaseTransform):
    """Open ``results['filename']`` with ``backend`` (``'decord'`` or
    ``'pyav'``); sets ``video_reader``, ``total_frames`` and ``avg_fps``
    (what MMAction2's ``DecordInit`` sets, so its sampling steps follow).

    Args:
        backend (str): ``'decord'`` (default) or ``'pyav'``.
        io_backend (str): MMEngine file backend (``'disk'``, as
            MMAction2's configs name the local one, or a backend of
            ``mmengine.fileio``: ``'petrel'``, ``'http'``, ...).
            Defaults to ``'disk'``.
        num_threads (int): decoding threads. Defaults to 1.
    """

    def __init__(self, backend: str = 'decord', io_backend: str = 'disk',
                 num_threads: int = 1, **kwargs):
        if backend not in BACKENDS:
            raise ValueError(f'VideoInit: backend {backend!r}, use one of '
                             f'{", ".join(BACKENDS)}')
        self.backend, self.io_backend = backend, io_backend
        self.num_threads, self.kwargs = num_threads, kwargs
        self.file_backend = None

    def transform(self, results: Dict) -> Dict:
        import io

        # mmengine.fileio's backends (its FileClient, which MMAction2's
        # DecordInit still uses, logs two deprecation warnings per run).
        from mmengine.fileio import get_file_backend
        if self.file_backend is None:
            name = 'local' if self.io_backend == 'disk' else self.io_backend
            self.file_backend = get_file_backend(
                results['filename'], backend_args=dict(backend=name,
                                                       **self.kwargs))
        file_obj = io.BytesIO(self.file_backend.get(results['filename']))
        reader = READERS[self.backend](file_obj, self.num_threads)
        results['video_reader'] = reader
        results['total_frames'] = reader.total
        results['avg_fps'] = reader.fps
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(backend={self.backend!r}, '
                f'io_backend={self.io_backend!r}, '
                f'num_threads={self.num_threads})')


@TRANSFORMS.register_module()
class VideoDecode(BaseTransform):
    """Decode ``results['frame_inds']`` with the reader ``VideoInit``
    opened: each distinct frame once, in increasing order, then in the
    sampling order (repeats included); sets ``imgs`` (RGB, H x W x 3),
    ``original_shape`` and ``img_shape`` as MMAction2's decoders do."""

    def transform(self, results: Dict) -> Dict:
        reader = results['video_reader']
        inds = np.asarray(results['frame_inds']).reshape(-1)
        unique, where = np.unique(inds, return_inverse=True)
        try:
            frames = reader.read([int(i) for i in unique])
        finally:
            reader.close()
            results['video_reader'] = None
        imgs = [frames[i] for i in where.reshape(-1)]
        results['imgs'] = imgs
        results['original_shape'] = imgs[0].shape[:2]
        results['img_shape'] = imgs[0].shape[:2]
        return results
