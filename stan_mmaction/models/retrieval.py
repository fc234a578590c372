"""Video-text retrieval: the head (similarity, temperature, loss) and the
model (STAN video backbone + CLIP text tower + head).

Across processes the head all-gathers both modalities **with gradients**, so
N processes compute the same loss and the same parameter gradients (after
DDP's averaging) as one process holding the whole batch.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from mmaction.registry import MODELS
from mmaction.models import ActionDataPreprocessor
from mmengine.model import BaseDataPreprocessor, BaseModel, BaseModule


def _world() -> Tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _GatherWithGrad(torch.autograd.Function):
    """All-gather rows of ``x`` (sizes may differ between ranks); the
    backward sums every rank's gradient of the gathered tensor and returns
    this rank's rows of it (a reduce-scatter)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        rank, world = _world()
        size = torch.tensor([x.shape[0]], device=x.device)
        sizes = [torch.zeros_like(size) for _ in range(world)]
        dist.all_gather(sizes, size)
        sizes = [int(s.item()) for s in sizes]
        longest = max(sizes)
        padded = x.new_zeros((longest, ) + x.shape[1:])
        padded[:x.shape[0]] = x
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded.contiguous())
        ctx.rank, ctx.sizes = rank, sizes
        return torch.cat([p[:n] for p, n in zip(parts, sizes)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        start = sum(ctx.sizes[:ctx.rank])
        return grad[start:start + ctx.sizes[ctx.rank]]


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` of every process in rank order, keeping gradients.

    A no-op outside distributed runs.
    """
    if _world()[1] == 1:
        return x
    return _GatherWithGrad.apply(x)


@MODELS.register_module()
class VideoTextRetrievalHead(BaseModule):
    """Cosine similarity, temperature and symmetric InfoNCE loss.

    The logits are ``cos(video, text) / temperature``. The loss is the mean
    of the text-to-video and video-to-text cross entropies over the whole
    (all-gathered) batch; pair i of the batch is the positive of row i.

    Args:
        temperature (float): initial temperature (0.01 for B/32, 0.02 for
            B/16 in the spec). Defaults to 0.01.
        learnable_temperature (bool): learn ``log(1/temperature)`` (CLIP's
            ``logit_scale``). Defaults to False.
        temperature_range (tuple): a learnable temperature is clamped to
            this interval. Defaults to (0.001, 1.0).
        gather (bool): gather features across processes (with gradients)
            before the loss. Defaults to True.
        loss_weight (float): scale of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 temperature: float = 0.01,
                 learnable_temperature: bool = False,
                 temperature_range: Sequence[float] = (0.001, 1.0),
                 gather: bool = True,
                 loss_weight: float = 1.0,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        low, high = temperature_range
        if not 0 < low <= temperature <= high:
            raise ValueError(
                f'temperature={temperature} must lie in temperature_range '
                f'{tuple(temperature_range)} with a positive lower end')
        scale = torch.tensor(math.log(1.0 / temperature))
        if learnable_temperature:
            self.logit_scale = nn.Parameter(scale)
        else:
            self.register_buffer('logit_scale', scale)
        self.scale_range = (math.log(1.0 / high), math.log(1.0 / low))
        self.gather = gather
        self.loss_weight = loss_weight

    @property
    def temperature(self) -> torch.Tensor:
        return 1.0 / self.scale()

    def scale(self) -> torch.Tensor:
        """``1 / temperature`` (clamped)."""
        return self.logit_scale.clamp(*self.scale_range).exp()

    def similarity(self, video: torch.Tensor,
                   text: torch.Tensor) -> torch.Tensor:
        """Cosine similarity ``(N_text, N_video)``."""
        return F.normalize(text, dim=-1) @ F.normalize(video, dim=-1).t()

    def loss(self, video: torch.Tensor,
             text: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Symmetric InfoNCE of paired ``(B, E)`` video and text embeddings.

        Returns ``loss_t2v`` and ``loss_v2t`` (each half of the symmetric
        loss, so their sum is it) and the current ``temperature``.
        """
        if video.shape != text.shape:
            raise ValueError('paired video and text embeddings must have the '
                             f'same shape, got {tuple(video.shape)} and '
                             f'{tuple(text.shape)}')
        video = F.normalize(video, dim=-1)
        text = F.normalize(text, dim=-1)
        if self.gather:
            video = all_gather_with_grad(video)
            text = all_gather_with_grad(text)
        logits = self.scale() * text @ video.t()
        target = torch.arange(logits.shape[0], device=logits.device)
        # Every process computes the whole batch's loss L. The gather's
        # backward sums the processes' gradients of their rows (N x dL/df)
        # and DDP averages parameter gradients (/ N): exactly dL/dtheta.
        weight = 0.5 * self.loss_weight
        return dict(
            loss_t2v=weight * F.cross_entropy(logits, target),
            loss_v2t=weight * F.cross_entropy(logits.t(), target),
            temperature=self.temperature.detach())


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
        if getattr(self.backbone, 'out_dim', None) != self.text_encoder.out_dim:
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
        return self.text_encoder(tokens)

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


#: CLIP's pixel mean and std on 0-255 RGB.
CLIP_MEAN = (122.771, 116.746, 104.093)
CLIP_STD = (68.500, 66.632, 70.323)


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
