"""What every caller of a built model needs to know about it, and nothing
it must remember: which kind of model it is and which forward runs one view
per video. The model with its config, dtype and preprocessing is
:class:`.inferencer.StanInferencer`."""
from typing import Callable

import torch


def is_retrieval_model(model) -> bool:
    """True for video-text models (a video tower and a text tower:
    ``encode_video`` and ``encode_text``)."""
    return callable(getattr(model, 'encode_video', None)) and \
        callable(getattr(model, 'encode_text', None))


def video_forward(model) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model's forward on one view per video, for timing and counting.

    Input: ``ClipShape.input_shape(batch)``, i.e. ``(B, 3, T, H, W)``, or
    ``(B, T, 3, H, W)`` for 2D (NCHW) recognizers. Retrieval models: the
    video tower (the text side runs once per caption, not per clip).
    Recognizers: MMAction2's ``mode='tensor'`` forward (the backbone's
    features, through the recognizer's own input handling).
    """
    if is_retrieval_model(model):
        return model.encode_video
    fmt = getattr(model.data_preprocessor, 'format_shape', 'NCTHW')
    if fmt == 'NCHW':
        return lambda x: model(x, mode='tensor')
    return lambda x: model(x[:, None], mode='tensor')


def video_embedding_forward(model) -> Callable[[torch.Tensor], torch.Tensor]:
    """``(B, 3, T, H, W)`` -> ``(B, E)`` video embeddings: a retrieval
    model's video tower, or a recognizer's backbone."""
    return model.encode_video if is_retrieval_model(model) else \
        model.backbone
