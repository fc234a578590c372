from .inference import (VIDEO_EXTS, VideoReadError, embed_clip, embed_texts,
                        embed_video, init_model, is_retrieval_model,
                        iter_clips, list_videos, open_video, recognize_clip,
                        video_embedding_forward, video_forward)

__all__ = [
    'VIDEO_EXTS', 'VideoReadError', 'embed_clip', 'embed_texts',
    'embed_video', 'init_model', 'is_retrieval_model', 'iter_clips',
    'list_videos', 'open_video', 'recognize_clip', 'video_embedding_forward',
    'video_forward'
]
