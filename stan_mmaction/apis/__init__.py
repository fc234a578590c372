from ..utils.precision import (DTYPE_CHOICES, cast_model, compile_model,
                               model_dtype, resolve_dtype)
from .inference import (clip_tensor, clips_tensor, embed_clip, embed_texts,
                        embedding_batch_forward, init_model,
                        is_retrieval_model, recognition_batch_forward,
                        recognize_clip, video_embedding_forward, video_forward)
from .video_io import (VIDEO_EXTS, VideoReadError, iter_clips, list_videos,
                       open_video)
from .video_stream import (VideoOutput, VideoProgress, embed_video,
                           embed_videos, iter_video_outputs, warm_up_video)

__all__ = [
    'VIDEO_EXTS', 'VideoReadError', 'clip_tensor', 'clips_tensor',
    'embed_clip', 'embed_texts', 'embed_video', 'embedding_batch_forward',
    'init_model', 'is_retrieval_model', 'iter_clips', 'list_videos',
    'open_video', 'recognition_batch_forward', 'recognize_clip',
    'video_embedding_forward', 'video_forward', 'DTYPE_CHOICES',
    'cast_model', 'compile_model', 'model_dtype', 'resolve_dtype',
    'VideoOutput', 'VideoProgress', 'embed_videos', 'iter_video_outputs',
    'warm_up_video'
]
