"""The video-text retrieval model: STAN video backbone + CLIP text tower +
retrieval head (``retrieval_head.py``)."""
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from mmaction.registry import MODELS
from mmengine.model import BaseModel


@MODELS.register_module()
class StanVideoTextRetriever(BaseModel):
    """STAN video encoder + CLIP text encoder + retrieval head.

    ``inputs`` is ``dict(imgs=..., text=...)`` as packed by
    ``PackActionInputs(collect_keys=('imgs', 'text'))`` and batched by
    :class:`RetrievalDataPreprocessor`: ``imgs`` ``(B, V, 3, T, H, W)`` (V
    views, averaged) and ``text`` ``(N, L)`` token ids, where
    ``data_samples[i].num_texts`` of them belong to video i (one in
    training; all captions of the video in testing).

    Args:
        backbone (dict): a ``StanCLIPBackbone`` config (``out='proj'``).
        text_encoder (dict): a ``CLIPTextEncoder`` config.
        head (dict): a ``VideoTextRetrievalHead`` config.
        data_preprocessor (dict): defaults to
            :class:`RetrievalDataPreprocessor` with CLIP's mean and std.
    """

    def __init__(self,
                 backbone: dict,
                 text_encoder: dict,
                 head: dict = dict(type='VideoTextRetrievalHead'),
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='RetrievalDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            # Built from MMAction2's registry whatever the default scope.
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.text_encoder = MODELS.build(text_encoder)
        self.head = MODELS.build(head)
        video_dim = getattr(self.backbone, 'out_dim', None)
        if video_dim != self.text_encoder.out_dim:
            raise ValueError(
                f'video embedding width {self.backbone.out_dim} != text '
                f'embedding width {self.text_encoder.out_dim}; use the same '
                "arch for both and the backbone's out='proj'")

    def encode_video(self, imgs: torch.Tensor) -> torch.Tensor:
        """``(B, V, 3, T, H, W)`` or ``(B, 3, T, H, W)`` -> ``(B, E)``
        (mean over the V views)."""
        if imgs.dim() == 5:
            return self.backbone(imgs)
        if imgs.dim() != 6:
            raise ValueError('video input must be (B, V, 3, T, H, W) or '
                             f'(B, 3, T, H, W), got {tuple(imgs.shape)}')
        b, v = imgs.shape[:2]
        emb = self.backbone(imgs.flatten(0, 1))
        return emb.view(b, v, -1).mean(1)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(N, L)`` token ids -> ``(N, E)`` caption embeddings."""
        return self.text_encoder(tokens)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Gradient checkpointing of both towers."""
        self.backbone.set_grad_checkpointing(enable)
        self.text_encoder.set_grad_checkpointing(enable)

    def extract_feat(self, inputs: Dict[str, torch.Tensor]):
        return self.encode_video(inputs['imgs']), self.encode_text(
            inputs['text'])

    def forward(self,
                inputs: Dict[str, torch.Tensor],
                data_samples: Optional[List] = None,
                mode: str = 'tensor'):
        if not isinstance(inputs, dict) or not {'imgs', 'text'} <= set(inputs):
            raise ValueError("inputs must be dict(imgs=..., text=...); pack "
                             "with PackActionInputs(collect_keys=('imgs', "
                             "'text'))")
        video, text = self.extract_feat(inputs)
        if mode == 'tensor':
            return video, text
        if mode == 'loss':
            if text.shape[0] != video.shape[0]:
                raise ValueError(
                    f'training needs one caption per video, got '
                    f'{text.shape[0]} captions for {video.shape[0]} videos')
            return self.head.loss(video, text)
        if mode == 'predict':
            counts = _counts(data_samples, video.shape[0], text.shape[0])
            video = F.normalize(video, dim=-1)
            text = F.normalize(text, dim=-1)
            for sample, v, t in zip(data_samples, video,
                                    text.split(counts)):
                sample.video_feature = v
                sample.text_feature = t
            return data_samples
        raise RuntimeError(f'Invalid mode "{mode}"; use loss, predict or '
                           'tensor')


def _counts(data_samples, num_videos: int, num_texts: int) -> List[int]:
    if data_samples is None:
        counts = [1] * num_videos
    else:
        counts = [int(getattr(s, 'num_texts', 1)) for s in data_samples]
    if len(counts) != num_videos or sum(counts) != num_texts:
        raise ValueError(f'{num_texts} captions do not split as {counts} '
                         f'over {num_videos} videos')
    return counts
