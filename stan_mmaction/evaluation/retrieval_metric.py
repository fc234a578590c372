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
  perfect score.)
- DSL (CLIP4Clip's dual softmax, Cheng et al. 2021): text-to-video scores
  ``s(i, j) * softmax_i(scale * s(:, j))`` (the prior normalises over the
  queries of the other side), video-to-text ``s(i, j) *
  softmax_j(scale * s(i, :))``; ``scale`` 100 as in CLIP4Clip.
"""
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmaction.registry import METRICS
from mmengine.evaluator import BaseMetric

RECALLS = (1, 5, 10)


def _t2v_ranks(text, video, owner, chunk_size, col_lse=None, scale=None):
    ranks = torch.empty(text.shape[0], dtype=torch.long)
    for s in range(0, text.shape[0], chunk_size):
        sim = text[s:s + chunk_size] @ video.t()
        if col_lse is not None:
            sim = sim * torch.exp(scale * sim - col_lse)
        pos = sim.gather(1, owner[s:s + chunk_size, None])
        ranks[s:s + chunk_size] = (sim >= pos).sum(1)
    return ranks


def _lse(text, video, chunk_size, scale):
    """log-sum-exp of ``scale * sim`` over texts (per video) and over videos
    (per text)."""
    col = torch.full((video.shape[0], ), -float('inf'))
    row = torch.empty(text.shape[0])
    for s in range(0, text.shape[0], chunk_size):
        scaled = scale * (text[s:s + chunk_size] @ video.t())
        col = torch.logaddexp(col, torch.logsumexp(scaled, 0))
        row[s:s + chunk_size] = torch.logsumexp(scaled, 1)
    return col, row


def _v2t_ranks(text, video, owner, chunk_size, row_lse=None, scale=None):
    ranks = torch.empty(video.shape[0], dtype=torch.long)
    for s in range(0, video.shape[0], chunk_size):
        sim = video[s:s + chunk_size] @ text.t()
        if row_lse is not None:
            sim = sim * torch.exp(scale * sim - row_lse)
        own = owner[None, :] == torch.arange(
            s, s + sim.shape[0])[:, None]
        best = sim.masked_fill(~own, -float('inf')).amax(1, keepdim=True)
        ranks[s:s + chunk_size] = 1 + ((sim >= best) & ~own).sum(1)
    return ranks


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
            L2-normalised here).
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
        torch.as_tensor(video).float(), dim=-1)
    text = torch.nn.functional.normalize(
        torch.as_tensor(text).float(), dim=-1)
    owner = torch.as_tensor(text_to_video).long()
    if text.shape[0] != owner.shape[0]:
        raise ValueError(f'{text.shape[0]} captions but {owner.shape[0]} '
                         'text_to_video entries')
    if owner.numel() and (owner.min() < 0 or owner.max() >= video.shape[0]):
        raise ValueError('text_to_video holds indices outside the '
                         f'{video.shape[0]} videos')
    if torch.bincount(owner, minlength=video.shape[0]).min() == 0:
        raise ValueError('every video needs at least one caption')
    out = dict(t2v=_t2v_ranks(text, video, owner, chunk_size),
               v2t=_v2t_ranks(text, video, owner, chunk_size))
    if dsl:
        col_lse, row_lse = _lse(text, video, chunk_size, dsl_scale)
        out['t2v_dsl'] = _t2v_ranks(text, video, owner, chunk_size, col_lse,
                                    dsl_scale)
        out['v2t_dsl'] = _v2t_ranks(text, video, owner, chunk_size,
                                    row_lse[None, :], dsl_scale)
    return out


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
