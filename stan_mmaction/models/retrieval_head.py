"""The retrieval head: cosine similarity, temperature, symmetric InfoNCE.

Across processes the head all-gathers both modalities **with gradients**
(:func:`all_gather_with_grad`), so N processes compute the same loss and the
same parameter gradients (after DDP's averaging) as one process holding the
whole batch.

Gradient scale. The authors' code sums the two directions' cross entropies
over the gathered batch, and its gather's backward keeps only the local
rows' gradient; DDP then divides by the number of GPUs W. Every process
computes the same summed loss, so their gradient is ``d(CE_t2v + CE_v2t) /
dtheta / W``: it shrinks as GPUs are added, at the same global batch, and
their ``clip_grad`` threshold of 5 was tuned at W = 8. ``reference_gpus``
reproduces that scale exactly with our exact gather (see the head's
docstring); the default (``None``) is the world-size independent mean of
the two directions, W / 2 times theirs.
"""
import math
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from mmaction.registry import MODELS
from mmengine.model import BaseModule

from ..utils.checks import check_float


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

    The logits are ``cos(video, text) / temperature``. The loss weighs the
    text-to-video and video-to-text cross entropies over the whole
    (all-gathered) batch: their mean by default, their sum divided by
    ``reference_gpus`` when set (the authors' gradient scale). Pair i of the
    batch is the positive of row i.

    Args:
        temperature (float): initial temperature (0.01 for B/32, 0.02 for
            B/16 in the recipe, docs/architecture.md). Defaults to 0.01.
        learnable_temperature (bool): learn ``log(1/temperature)`` (CLIP's
            ``logit_scale``). Defaults to False.
        temperature_range (tuple): a learnable temperature is clamped to
            this interval. Defaults to (0.001, 1.0).
        gather (bool): gather features across processes (with gradients)
            before the loss. Defaults to True.
        reference_gpus (int | str | None): the gradient scale.
            ``None``: the loss is the mean of the two directions (what one
            process holding the whole batch computes; independent of the
            world size). An int ``N``: the loss is ``(CE_t2v + CE_v2t) /
            N``, which is the gradient the authors' code produces on ``N``
            GPUs at the same global batch (see the module docstring), at any
            world size here; the shipped retrieval configs use 8, their
            setup, so ``clip_grad=dict(max_norm=5)`` clips where theirs did.
            ``'world_size'``: ``N`` is this run's world size (their rule on
            however many processes run, including its dependence on that
            number). Defaults to None.
        loss_weight (float): a further scale of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 temperature: float = 0.01,
                 learnable_temperature: bool = False,
                 temperature_range: Sequence[float] = (0.001, 1.0),
                 gather: bool = True,
                 reference_gpus: Optional[Union[int, str]] = None,
                 loss_weight: float = 1.0,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        temperature = check_float('temperature', temperature)
        low, high = (check_float('temperature_range', t)
                     for t in temperature_range)
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
        if not (reference_gpus is None or reference_gpus == 'world_size' or
                (isinstance(reference_gpus, int)
                 and not isinstance(reference_gpus, bool)
                 and reference_gpus >= 1)):
            raise ValueError('reference_gpus must be None, a positive int or '
                             f"'world_size', got {reference_gpus!r}")
        self.reference_gpus = reference_gpus
        self.loss_weight = loss_weight

    def direction_weight(self) -> float:
        """The weight of each direction's cross entropy in the loss."""
        if self.reference_gpus is None:
            return 0.5 * self.loss_weight
        gpus = (_world()[1] if self.reference_gpus == 'world_size' else
                self.reference_gpus)
        return self.loss_weight / gpus

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

        Returns ``loss_t2v`` and ``loss_v2t`` (each direction's cross
        entropy times :meth:`direction_weight`: half of it by default, so
        their sum is the symmetric loss) and the current ``temperature``.
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
        weight = self.direction_weight()
        return dict(
            loss_t2v=weight * F.cross_entropy(logits, target),
            loss_v2t=weight * F.cross_entropy(logits.t(), target),
            temperature=self.temperature.detach())
