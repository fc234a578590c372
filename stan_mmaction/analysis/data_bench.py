"""How fast the training pipelines turn video files into clips, and how
many CPU cores a GPU needs (``tools/analysis_tools/benchmark_data.py``).

A pipeline is a config's ``train_pipeline`` (reading, sampling, decoding,
augmentation, formatting; the caption steps of retrieval pipelines left
out: they cost microseconds), run over a list of files in a
``DataLoader`` with 0, 1 or more worker processes; clips/s is counted
after a warm-up of one clip per worker. "Per core": clips/s divided by the
processes that decode (the main process with 0 workers, else the
workers), each with OpenCV single-threaded as MMEngine's runner sets it.
"""
import copy
import math
import time
from typing import Dict, List, Sequence

from ..utils.clip_shape import TEXT_STEPS


def train_pipeline(cfg, backend: str) -> List[dict]:
    """``cfg``'s training pipeline with the reader ``backend`` and without
    caption steps (``PackActionInputs`` then packs the video alone)."""
    steps = []
    for step in copy.deepcopy(list(cfg.train_dataloader.dataset.pipeline)):
        kind = step.get('type')
        if kind in TEXT_STEPS:
            continue
        if kind == 'VideoInit':
            step['backend'] = backend
        elif kind in ('DecordInit', 'PyAVInit'):
            raise ValueError(f'{kind} in the training pipeline: the '
                             'benchmark switches readers through '
                             'VideoInit(backend=...)')
        if kind == 'PackActionInputs':
            step = dict(type='PackActionInputs')
        steps.append(step)
    return steps


class _Clips:
    """``n`` clips, cycling over ``paths``, through ``pipeline``."""

    def __init__(self, paths: Sequence[str], steps: List[dict], n: int):
        self.paths, self.steps, self.n = list(paths), steps, n
        self.pipeline = None

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if self.pipeline is None:  # built in the process that runs it
            # as MMEngine's runner sets up training (setup_env): OpenCV
            # single-threaded, so each decoding process uses one core
            import cv2
            cv2.setNumThreads(0)
            from mmaction.registry import TRANSFORMS
            from mmengine.dataset import Compose
            from mmengine.registry import init_default_scope
            init_default_scope('mmaction')
            self.pipeline = Compose([TRANSFORMS.build(s)
                                     for s in self.steps])
        out = self.pipeline(dict(filename=self.paths[i % len(self.paths)],
                                 start_index=0, modality='RGB', label=0))
        return tuple(out['inputs'].shape)


def _first(batch):
    return batch[0]


def clips_per_second(paths: Sequence[str], steps: List[dict], workers: int,
                     clips: int) -> Dict[str, float]:
    """clips/s of ``steps`` over ``paths`` with ``workers`` processes
    (0: this one), ``clips`` clips after one warm-up clip per process."""
    from torch.utils.data import DataLoader
    warm = max(1, workers)
    data = _Clips(paths, steps, clips + warm)
    loader = DataLoader(data, batch_size=1, num_workers=workers,
                        collate_fn=_first,
                        prefetch_factor=2 if workers else None)
    shape, start = None, None
    for i, shape in enumerate(loader):
        if i == warm - 1:
            start = time.perf_counter()
    seconds = time.perf_counter() - start
    rate = clips / seconds
    return dict(clips=clips, seconds=seconds, clips_per_s=rate,
                per_core=rate / max(1, workers), shape=list(shape))


def geometric_mean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def cores_per_gpu(gpu_clips_per_s: float, core_clips_per_s: float) -> float:
    """CPU cores that keep one GPU fed: what it consumes over what one
    core decodes."""
    return gpu_clips_per_s / core_clips_per_s


def gpu_rates(measured: Dict[str, float], flops: Dict[str, Dict[int, float]]
              ) -> Dict[str, Dict[int, float]]:
    """Training clips/s of a GPU per model and frame count, from one
    measured rate per model at 8 frames and the models' FLOPs per clip at
    each frame count (the training step's cost grows with them)."""
    return {model: {t: measured[model] * flops[model][8] / f
                    for t, f in per.items()}
            for model, per in flops.items()}
