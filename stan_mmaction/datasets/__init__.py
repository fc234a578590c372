from .synthetic import CLASSES as SYNTHETIC_CLASSES
from .synthetic import make_synthetic_dataset, render_video, write_mp4

__all__ = [
    'SYNTHETIC_CLASSES', 'make_synthetic_dataset', 'render_video', 'write_mp4'
]
