from .annotations import AnnotationError, EmptyCaptionError
from .retrieval_dataset import VideoTextRetrievalDataset
from .synthetic import CLASSES as SYNTHETIC_CLASSES
from .synthetic import (make_synthetic_dataset,
                        make_synthetic_retrieval_dataset, render_video,
                        retrieval_captions, retrieval_types, write_mp4)
from .text_transforms import OpenCLIPTokenize
from .video_dataset import BadSampleError, StanVideoDataset
from .video_decoding import VideoDecode, VideoInit

__all__ = [
    'AnnotationError', 'EmptyCaptionError', 'OpenCLIPTokenize',
    'VideoTextRetrievalDataset',
    'BadSampleError', 'SYNTHETIC_CLASSES', 'StanVideoDataset',
    'make_synthetic_dataset', 'make_synthetic_retrieval_dataset',
    'retrieval_captions', 'retrieval_types', 'render_video', 'write_mp4',
    'VideoDecode', 'VideoInit'
]
