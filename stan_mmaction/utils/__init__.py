from .clip_shape import ClipShape, UnknownPipelineStepError, clip_shape
from .config import build_model_without_weights, load_config, strip_pretrained
from .tokenizer import clip_tokenizer, tokenize

__all__ = [
    'ClipShape', 'UnknownPipelineStepError', 'build_model_without_weights',
    'clip_shape', 'load_config',
    'clip_tokenizer', 'strip_pretrained', 'tokenize'
]
