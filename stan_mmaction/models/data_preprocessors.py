"""Data preprocessors (where MMAction2 keeps its own:
``mmaction.models.data_preprocessors``)."""
from typing import Sequence

import torch
from mmaction.models import ActionDataPreprocessor
from mmaction.registry import MODELS
from mmengine.model import BaseDataPreprocessor

from .clip import CLIP_MEAN, CLIP_STD


@MODELS.register_module()
class RetrievalDataPreprocessor(BaseDataPreprocessor):
    """Batches ``dict(imgs=..., text=...)`` inputs of retrieval samples.

    Videos go through MMAction2's ``ActionDataPreprocessor`` (stack,
    normalise). Each sample's text is ``(n_i, L)`` token ids (n_i captions:
    1 in training, all of the video's in testing); they are concatenated to
    ``(sum n_i, L)`` and ``data_samples[i].num_texts = n_i`` records the
    split, so videos with different caption counts batch together.
    """

    def __init__(self,
                 mean: Sequence[float] = CLIP_MEAN,
                 std: Sequence[float] = CLIP_STD,
                 format_shape: str = 'NCTHW'):
        super().__init__()
        self.video = ActionDataPreprocessor(mean=list(mean), std=list(std),
                                            format_shape=format_shape)

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        inputs, samples = data['inputs'], data.get('data_samples')
        imgs, samples = self.video.preprocess(inputs['imgs'], samples,
                                              training)
        texts = inputs['text']
        if isinstance(texts, torch.Tensor):
            texts = list(texts)
        texts = [t.view(1, -1) if t.dim() == 1 else t for t in texts]
        if samples is not None:
            for sample, t in zip(samples, texts):
                sample.num_texts = t.shape[0]
        return dict(inputs=dict(imgs=imgs, text=torch.cat(texts)),
                    data_samples=samples)
