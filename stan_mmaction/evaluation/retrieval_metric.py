"""Video-text retrieval metrics with bounded memory.

:func:`retrieval_ranks` ranks every caption's video among all videos
(text-to-video) and every video's captions among all captions
(video-to-text), optionally after dual-softmax re-scoring (DSL), computing
the similarity matrix in chunks of rows: peak extra memory is a few
``chunk_size x N`` blocks, never the whole ``N_text x N_video`` matrix.

Conventions:

- Several captions per video: each caption is a text query with its own
  video as the only positive; a video query is a hit at rank r if the best
  of its captions is at rank r among all captions, the video's other
  captions not counted.
- Ties are ranked pessimistically: a positive scored equal to k negatives
  ranks after all of them. (Optimistic ties would give a constant model a
  perfect score.) Video-to-text DSL scores within a relative 1e-9 of the
  positive count as ties (see :data:`DSL_TIE_RTOL`).
- All of it in float64: with DSL's scale of 100, a float32 ``exp`` of a
  diffuse similarity matrix underflows to exactly 0 for scores more than
  ~0.9 below the best (several percent of a random matrix), and those zeros
  then tie. In float64 the smallest factor, ``exp(-200 - log N)``, is far
  above the underflow threshold.
- DSL (the dual softmax of CAMoE, Cheng et al. 2021, "Improving Video-Text
  Retrieval by Multi-Stream Corpus Alignment and Dual Softmax Loss"):
  text-to-video scores
  ``s(i, j) * softmax_i(scale * s(:, j))`` (the prior normalises over the
  queries of the other side), video-to-text ``s(i, j) *
  softmax_j(scale * s(i, :))``; ``scale`` 100 as in CAMoE's code.
"""
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmaction.registry import METRICS
from mmengine.evaluator import BaseMetric

RECALLS = (1, 5, 10)


def _blocks(text, video, chunk_size):
    """(start, end, sim block) over blocks of text rows. Both passes below
    compute the same blocks with the same shapes, so a value compared in
    pass 2 is bit-identical to the one recorded in pass 1."""
    for s in range(0, text.shape[0], chunk_size):
        yield s, min(s + chunk_size, text.shape[0]), \
            text[s:s + chunk_size] @ video.t()


def _dsl(sim, lse, scale):
    """DSL scores ``sim * exp(scale * sim - lse)`` (lse broadcast over the
    block), in two fused in-place steps."""
    return torch.add(-lse, sim, alpha=scale).exp_().mul_(sim)


def _count(mask, dim):
    """Number of True along ``dim`` (as bytes: a bool sum would first copy
    the mask to int64)."""
    return mask.view(torch.uint8).sum(dim, dtype=torch.int32).long()


#: DSL v2t thresholds come from gathered values and are compared with
#: values computed over whole blocks; scores within this relative distance
#: count as ties (a few-ulp float64 difference between the two paths must
#: not turn a tie into a win).
DSL_TIE_RTOL = 1e-9


def _rank_passes(text, video, owner, chunk_size, scale=None):
    """All ranks in two passes over text-row blocks (one matmul each)."""
    nt, nv = text.shape[0], video.shape[0]
    dsl = scale is not None
    t2v = torch.empty(nt, dtype=torch.long)
    floats = dict(dtype=text.dtype)
    best = torch.full((nv, ), -float('inf'), **floats)  # per video
    if dsl:
        col_lse = torch.full((nv, ), -float('inf'), **floats)
        row_lse = torch.empty(nt, **floats)
        best_dsl = torch.full((nv, ), -float('inf'), **floats)
    # Pass 1: t2v ranks; the best own-caption score of every video; the
    # log-sum-exps DSL needs (over videos per text, over texts per video).
    for s, e, sim in _blocks(text, video, chunk_size):
        own = owner[s:e]
        pos = sim.gather(1, own[:, None])
        t2v[s:e] = _count(sim >= pos, 1)
        best.scatter_reduce_(0, own, pos[:, 0], 'amax')
        if dsl:
            scaled = sim.mul_(scale)  # sim is not needed after this
            row_lse[s:e] = torch.logsumexp(scaled, 1)
            col_lse = torch.logaddexp(col_lse, torch.logsumexp(scaled, 0))
            p = pos[:, 0]
            best_dsl.scatter_reduce_(
                0, own, p * torch.exp(scale * p - row_lse[s:e]), 'amax')
    if dsl:
        best_dsl -= DSL_TIE_RTOL * best_dsl.abs()
    # Pass 2: per video, the captions at or above its best own caption
    # (own captions counted, then taken out); t2v after DSL.
    above = torch.zeros(nv, dtype=torch.long)
    own_above = torch.zeros(nv, dtype=torch.long)
    if dsl:
        t2v_dsl = torch.empty(nt, dtype=torch.long)
        dsl_above = torch.zeros(nv, dtype=torch.long)
        own_dsl_above = torch.zeros(nv, dtype=torch.long)
    for s, e, sim in _blocks(text, video, chunk_size):
        own = owner[s:e]
        above += _count(sim >= best, 0)
        own_above += torch.bincount(
            own[sim.gather(1, own[:, None])[:, 0] >= best[own]],
            minlength=nv)
        if dsl:
            d = _dsl(sim, row_lse[s:e, None], scale)
            dsl_above += _count(d >= best_dsl, 0)
            own_dsl_above += torch.bincount(
                own[d.gather(1, own[:, None])[:, 0] >= best_dsl[own]],
                minlength=nv)
            d = _dsl(sim, col_lse, scale)
            t2v_dsl[s:e] = _count(d >= d.gather(1, own[:, None]), 1)
            del d
    out = dict(t2v=t2v, v2t=1 + above - own_above)
    if dsl:
        out['t2v_dsl'] = t2v_dsl
        out['v2t_dsl'] = 1 + dsl_above - own_dsl_above
    return out


@torch.no_grad()
def retrieval_ranks(video: torch.Tensor,
                    text: torch.Tensor,
                    text_to_video: torch.Tensor,
                    dsl: bool = False,
                    dsl_scale: float = 100.0,
                    chunk_size: int = 1024) -> Dict[str, torch.Tensor]:
    """1-based ranks of the positives.

    Args:
        video (Tensor): ``(N_video, E)`` embeddings (cosine is used: they are
            L2-normalised here, in float64 like everything after).
        text (Tensor): ``(N_text, E)`` caption embeddings.
        text_to_video (Tensor): ``(N_text, )`` index of each caption's video;
            every video needs at least one caption.
        dsl (bool): also rank after dual-softmax re-scoring.
        dsl_scale (float): DSL's softmax scale. Defaults to 100.
        chunk_size (int): rows per similarity block.

    Returns:
        dict: ``t2v`` ``(N_text, )`` and ``v2t`` ``(N_video, )`` ranks, and
        ``t2v_dsl`` / ``v2t_dsl`` when ``dsl``.
    """
    video = torch.nn.functional.normalize(
        torch.as_tensor(video).double(), dim=-1)
    text = torch.nn.functional.normalize(
        torch.as_tensor(text).double(), dim=-1)
    owner = torch.as_tensor(text_to_video).long()
    if text.shape[0] != owner.shape[0]:
        raise ValueError(f'{text.shape[0]} captions but {owner.shape[0]} '
                         'text_to_video entries')
    if owner.numel() and (owner.min() < 0 or owner.max() >= video.shape[0]):
        raise ValueError('text_to_video holds indices outside the '
                         f'{video.shape[0]} videos')
    if torch.bincount(owner, minlength=video.shape[0]).min() == 0:
        raise ValueError('every video needs at least one caption')
    return _rank_passes(text, video, owner, chunk_size,
                        dsl_scale if dsl else None)


def summarize_ranks(ranks: torch.Tensor,
                    recalls: Sequence[int] = RECALLS) -> Dict[str, float]:
    """R@K (percent), median rank and mean rank of 1-based ``ranks``."""
    r = ranks.double().numpy()
    out = OrderedDict((f'R{k}', float(100.0 * np.mean(r <= k)))
                      for k in recalls)
    out['MdR'] = float(np.median(r))
    out['MnR'] = float(np.mean(r))
    return out


def retrieval_metrics(video, text, text_to_video, dsl: bool = False,
                      dsl_scale: float = 100.0,
                      chunk_size: int = 1024) -> Dict[str, float]:
    """``t2v_R1``, ..., ``v2t_MnR`` (and ``t2v_dsl_*``, ``v2t_dsl_*``)."""
    ranks = retrieval_ranks(video, text, text_to_video, dsl, dsl_scale,
                            chunk_size)
    out = OrderedDict()
    for direction, r in ranks.items():
        for name, value in summarize_ranks(r).items():
            out[f'{direction}_{name}'] = value
    return out


@METRICS.register_module()
class VideoTextRetrievalMetric(BaseMetric):
    """Text-to-video and video-to-text R@1/5/10, MdR, MnR (and with DSL).

    Reads ``video_feature`` ``(E, )`` and ``text_feature`` ``(n, E)`` (all
    captions of the video) from each predicted data sample, as
    ``StanVideoTextRetriever`` writes them. Keys: ``t2v_R1`` ... ``t2v_MnR``,
    ``v2t_*``, and ``t2v_dsl_*`` / ``v2t_dsl_*`` when ``dsl``; logged as
    ``retrieval/t2v_R1`` etc.

    Args:
        dsl (bool): also report dual-softmax re-scored results.
            Defaults to True.
        dsl_scale (float): defaults to 100.
        chunk_size (int): similarity rows per block. Defaults to 1024.
    """

    default_prefix = 'retrieval'

    def __init__(self,
                 dsl: bool = True,
                 dsl_scale: float = 100.0,
                 chunk_size: int = 1024,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.dsl = dsl
        self.dsl_scale = dsl_scale
        self.chunk_size = chunk_size

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            text = torch.as_tensor(sample['text_feature']).detach().cpu()
            self.results.append(dict(
                video=torch.as_tensor(
                    sample['video_feature']).detach().cpu().float(),
                text=text.reshape(-1, text.shape[-1]).float()))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        video = torch.stack([r['video'] for r in results])
        text = torch.cat([r['text'] for r in results])
        owner = torch.repeat_interleave(
            torch.arange(len(results)),
            torch.tensor([r['text'].shape[0] for r in results]))
        return retrieval_metrics(video, text, owner, dsl=self.dsl,
                                 dsl_scale=self.dsl_scale,
                                 chunk_size=self.chunk_size)
