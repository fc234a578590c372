"""Many videos through a model at the hardware's speed: decoding in
DataLoader workers (overlapped with the model's compute), clips of one video
and of consecutive videos batched together, per-video results as soon as a
video is complete.

Memory stays bounded: a worker decodes one window at a time (the sampled
frames only, at the model's size: :func:`.video_io.iter_clips`) and
preprocesses it (the inferencer's test pipeline), and at most
``batch_size`` clips per worker wait for the model.

The functions here take a :class:`.inferencer.StanInferencer` (its clip
shape, preprocessing, batching and whether the model is compiled).
"""
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from .video_io import VideoReadError, iter_clips


@dataclass
class VideoOutput:
    """What the model made of one video.

    ``outputs``: ``(num_clips, D)`` fp32, one row per window (clip) in time
    order, with the frame ``spans`` of the windows and the video's frame
    count ``total``; ``error`` instead when the video could not be read.
    """
    index: int
    path: str
    outputs: Optional[torch.Tensor] = None
    spans: List[Tuple[int, int]] = field(default_factory=list)
    total: int = 0
    error: Optional[str] = None

    @property
    def embedding(self) -> torch.Tensor:
        """Mean of the (normalised) clip embeddings, normalised ``(E,)``."""
        return F.normalize(self.outputs.mean(0), dim=-1)


class _ClipStream(IterableDataset):
    """Yields ``(kind, video index, payload, span, total)``: ``clip`` items
    (payload: the clip as ``preprocess`` formats it, uint8) in time order,
    then ``done`` (payload: the clip count) or ``error`` (payload: the
    message). Worker ``k`` of ``n`` reads videos ``k, k + n, ...``."""

    def __init__(self, paths: Sequence[str], frames: int, short: int,
                 crop: int, window: Optional[int],
                 preprocess: Callable[[np.ndarray], np.ndarray]):
        self.paths = list(paths)
        self.frames, self.short, self.crop = frames, short, crop
        self.window, self.preprocess = window, preprocess

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        for i in range(worker, len(self.paths), workers):
            count = 0
            try:
                for clip, span, total in iter_clips(
                        self.paths[i], self.frames, self.short, self.crop,
                        self.window):
                    yield 'clip', i, self.preprocess(clip), span, total
                    count += 1
            except VideoReadError as err:
                yield 'error', i, str(err), None, None
                continue
            yield 'done', i, count, None, None


def _as_is(item):
    return item


#: The most clips one decoding worker prepares ahead of the model.
MAX_PREFETCH = 16


def iter_video_outputs(inferencer, paths: Sequence[str],
                       forward: Callable[[torch.Tensor], torch.Tensor],
                       window: Optional[int] = None, batch_size: int = 8,
                       workers: int = 1) -> Iterator[VideoOutput]:
    """Run ``forward`` over the clips of every video; yield one
    :class:`VideoOutput` per video, in the order they complete (unreadable
    videos as soon as the error is found).

    Args:
        inferencer (StanInferencer): the model, its clip shape and
            preprocessing.
        paths: video files.
        forward: a batch of ``inferencer.collate`` -> ``(B, D)`` fp32
            (e.g. ``inferencer.embed``).
        window (int, optional): frames per window (one clip each);
            ``None``: one clip per video.
        batch_size (int): clips per forward call, across videos. A compiled
            model (``inferencer.compiled``) always gets this batch size
            (the last batch is padded), so it compiles once.
        workers (int): decoding processes; 0 decodes in this process (no
            overlap).
    """
    if batch_size < 1 or workers < 0:
        raise ValueError(f'batch_size must be >= 1 and workers >= 0, got '
                         f'{batch_size}, {workers}')
    shape = inferencer.shape
    stream = _ClipStream(paths, shape.frames, shape.short_side, shape.crop,
                         window, inferencer.preprocess)
    # Clips waiting per worker: a batch's worth, bounded (the DataLoader
    # queues that many requests per worker up front: --batch-size 10**8
    # hung before its first clip).
    loader = DataLoader(stream, batch_size=None, num_workers=workers,
                        collate_fn=_as_is,
                        prefetch_factor=min(batch_size, MAX_PREFETCH)
                        if workers else None)
    pad = inferencer.compiled
    videos, pending = {}, []

    def run_batch():
        x = inferencer.collate([c for _, c, _ in pending])
        n = x.shape[0]
        if pad and n < batch_size:
            x = torch.cat([x, x.new_zeros(batch_size - n, *x.shape[1:])])
        with torch.no_grad():
            out = forward(x)[:n].float().cpu()
        for (i, _, span), row in zip(pending, out):
            video = videos[i]
            video['pending'] -= 1
            if video['out'].error is None:
                video['rows'].append(row)
                video['out'].spans.append(span)
        pending.clear()

    def finished():
        for i in [i for i, v in videos.items()
                  if v['state'] and not v['pending']]:
            video = videos.pop(i)
            if video['state'] == 'done':
                video['out'].outputs = torch.stack(video['rows'])
                yield video['out']

    for kind, i, payload, span, total in loader:
        video = videos.setdefault(i, dict(
            out=VideoOutput(i, paths[i]), rows=[], pending=0, state=None))
        if kind == 'clip':
            video['out'].total = total
            video['pending'] += 1
            pending.append((i, payload, span))
            if len(pending) == batch_size:
                run_batch()
        elif kind == 'error':
            video['state'] = 'error'
            video['out'].error = payload
            yield video['out']
        else:
            video['state'] = 'done'
        yield from finished()
    if pending:
        run_batch()
    yield from finished()


class VideoProgress:
    """Progress of a run over videos on ``file`` (stderr): done/total,
    videos/s, elapsed and ETA, counted from the first video (start-up and
    warm-up apart); ``line()`` is the summary the tools print last (and the
    benchmark reads)."""

    def __init__(self, total: int, startup: float = 0.0,
                 warmup: float = 0.0, file=None):
        import sys
        self.total, self.startup, self.warmup = total, startup, warmup
        self.file = sys.stderr if file is None else file
        self.start = time.perf_counter()
        self.videos = 0

    def update(self, n: int = 1) -> None:
        self.videos += n
        rate = self.rate
        eta = (self.total - self.videos) / rate if rate > 0 else 0.0
        self.file.write(f'\r[{self.videos}/{self.total}] {rate:.2f} '
                        f'videos/s, elapsed {self.seconds:.0f} s, ETA '
                        f'{eta:.0f} s ')
        self.file.flush()

    def finish(self) -> None:
        if self.videos:
            self.file.write('\n')
            self.file.flush()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    @property
    def rate(self) -> float:
        return self.videos / max(self.seconds, 1e-9)

    def stats(self, dtype: str, compiled: bool) -> dict:
        """The run's numbers (what ``--stats-json`` writes)."""
        return dict(videos=self.videos, seconds=self.seconds,
                    videos_per_s=self.rate, startup_s=self.startup,
                    warmup_s=self.warmup, dtype=dtype,
                    compiled=bool(compiled))

    def line(self, dtype: str, compiled: bool) -> str:
        s = self.stats(dtype, compiled)
        return (f"Throughput: {s['videos']} video(s) in {s['seconds']:.2f} s "
                f"= {s['videos_per_s']:.3f} videos/s (start-up "
                f"{s['startup_s']:.2f} s, warm-up {s['warmup_s']:.2f} s; "
                f"{dtype}{', compiled' if compiled else ''})")
