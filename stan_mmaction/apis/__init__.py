from ..utils.precision import (DTYPE_CHOICES, cast_model, compile_model,
                               model_dtype, resolve_dtype)
from .inference import (is_retrieval_model, video_embedding_forward,
                        video_forward)
from .inferencer import StanInferencer, embed_video, frame_pipeline, init_model
from .video_io import (VIDEO_EXTS, VideoReadError, iter_clips, list_videos,
                       open_video)
from .video_stream import VideoOutput, VideoProgress, iter_video_outputs

__all__ = [
    'StanInferencer', 'VIDEO_EXTS', 'VideoReadError', 'embed_video',
    'frame_pipeline', 'init_model', 'is_retrieval_model', 'iter_clips',
    'list_videos', 'open_video', 'video_embedding_forward', 'video_forward',
    'DTYPE_CHOICES', 'cast_model', 'compile_model', 'model_dtype',
    'resolve_dtype', 'VideoOutput', 'VideoProgress', 'iter_video_outputs'
]
