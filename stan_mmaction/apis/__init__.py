from .inference import (VIDEO_EXTS, VideoReadError, clip_geometry,
                        embed_clip, embed_texts, embed_video, init_model,
                        iter_clips, list_videos, recognize_clip)

__all__ = [
    'VIDEO_EXTS', 'VideoReadError', 'clip_geometry', 'embed_clip',
    'embed_texts', 'embed_video', 'init_model', 'iter_clips', 'list_videos',
    'recognize_clip'
]
