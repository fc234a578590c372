from .synthetic import CLASSES as SYNTHETIC_CLASSES
from .synthetic import make_synthetic_dataset, render_video, write_mp4
from .video_dataset import BadSampleError, StanVideoDataset

__all__ = [
    'BadSampleError', 'SYNTHETIC_CLASSES', 'StanVideoDataset',
    'make_synthetic_dataset', 'render_video', 'write_mp4'
]
