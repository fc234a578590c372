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
- QB-Norm (query-bank normalisation, Bogolin et al. 2022), text-to-video,
  dynamic inverted softmax: with a bank of caption embeddings (the
  training captions), each video j gets ``lse_j = log sum_b exp(beta *
  s(b, j))`` over the bank, and the *activation set* holds the videos that
  are among the top ``k`` of some bank caption. A test caption whose own
  top ``k`` meets the activation set is ranked by ``beta * s(i, j) -
  lse_j`` (the log of the inverted softmax ``exp(beta s) / sum_b exp(beta
  s_b)``: same order, no underflow); the others keep ``s(i, j)``. "Top
  k" counts ties: every video scoring at least the k-th best score.
  ``beta`` 20, ``k`` 1 as in the QB-Norm paper.
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


def _top_k_mask(sim: torch.Tensor, k: int) -> torch.Tensor:
    """True where a score is at least the row's k-th largest (ties in)."""
    kth = sim.topk(min(k, sim.shape[1]), dim=1).values[:, -1:]
    return sim >= kth


@torch.no_grad()
def query_bank_stats(bank: torch.Tensor, video: torch.Tensor,
                     beta: float = 20.0, k: int = 1,
                     chunk_size: int = 1024):
    """QB-Norm's per-video ``lse`` ``(N_video,)`` and activation set (bool
    ``(N_video,)``) from a bank of caption embeddings, in blocks of bank
    rows (float64; no bank x video matrix)."""
    bank = torch.nn.functional.normalize(
        torch.as_tensor(bank).double(), dim=-1)
    video = torch.nn.functional.normalize(
        torch.as_tensor(video).double(), dim=-1)
    lse = torch.full((video.shape[0], ), -float('inf'), dtype=video.dtype)
    active = torch.zeros(video.shape[0], dtype=torch.bool)
    for s in range(0, bank.shape[0], chunk_size):
        sim = bank[s:s + chunk_size] @ video.t()
        active |= _top_k_mask(sim, k).any(0)
        lse = torch.logaddexp(lse, torch.logsumexp(beta * sim, 0))
    return lse, active


@torch.no_grad()
def qb_norm_ranks(video: torch.Tensor, text: torch.Tensor,
                  text_to_video: torch.Tensor, bank: torch.Tensor,
                  beta: float = 20.0, k: int = 1,
                  chunk_size: int = 1024) -> torch.Tensor:
    """1-based text-to-video ranks after QB-Norm (dynamic inverted softmax,
    see the module docs), pessimistic ties; blocks of text rows."""
    if torch.as_tensor(bank).shape[0] == 0:
        raise ValueError('the QB-Norm query bank is empty')
    lse, active = query_bank_stats(bank, video, beta, k, chunk_size)
    video = torch.nn.functional.normalize(
        torch.as_tensor(video).double(), dim=-1)
    text = torch.nn.functional.normalize(
        torch.as_tensor(text).double(), dim=-1)
    owner = torch.as_tensor(text_to_video).long()
    ranks = torch.empty(text.shape[0], dtype=torch.long)
    for s, e, sim in _blocks(text, video, chunk_size):
        use = (_top_k_mask(sim, k) & active).any(1, keepdim=True)
        scores = torch.where(use, beta * sim - lse, sim)
        pos = scores.gather(1, owner[s:e, None])
        ranks[s:e] = _count(scores >= pos, 1)
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


#: How each statistic of :func:`summarize_ranks` compares: recalls are
#: better higher, ranks lower. MMEngine's checkpoint hook infers a rule
#: only from substrings it knows (``acc``, ``top``, ``loss``, ...) and
#: refuses ``retrieval/t2v_R1``; ``StanCheckpointHook`` asks
#: :func:`metric_rule` first.
STAT_RULES = dict({f'R{k}': 'greater' for k in RECALLS},
                  MdR='less', MnR='less')


def metric_rule(key: str) -> Optional[str]:
    """``'greater'`` or ``'less'`` for a key of
    :class:`VideoTextRetrievalMetric` (``retrieval/t2v_R1``,
    ``v2t_dsl_MdR``, with or without a prefix); None for other keys."""
    return STAT_RULES.get(key.rsplit('/', 1)[-1].rsplit('_', 1)[-1])


def retrieval_metrics(video, text, text_to_video, dsl: bool = False,
                      dsl_scale: float = 100.0, chunk_size: int = 1024,
                      query_bank: Optional[torch.Tensor] = None,
                      qb_beta: float = 20.0,
                      qb_k: int = 1) -> Dict[str, float]:
    """``t2v_R1``, ..., ``v2t_MnR`` (and ``t2v_dsl_*``, ``v2t_dsl_*``; with
    a ``query_bank``, ``t2v_qb_*``)."""
    ranks = retrieval_ranks(video, text, text_to_video, dsl, dsl_scale,
                            chunk_size)
    if query_bank is not None:
        ranks['t2v_qb'] = qb_norm_ranks(video, text, text_to_video,
                                        query_bank, qb_beta, qb_k,
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
        qb_norm (dict, optional): also report QB-Norm text-to-video results
            (``t2v_qb_*``), with ``beta`` (20) and ``k`` (1). The query bank
            (caption embeddings of the training set) is put in
            ``query_bank`` by :class:`~stan_mmaction.engine.QueryBankHook`
            before testing (``tools/test.py ... --qb-norm`` adds it).
            Defaults to None.
    """

    default_prefix = 'retrieval'

    def __init__(self,
                 dsl: bool = True,
                 dsl_scale: float = 100.0,
                 chunk_size: int = 1024,
                 qb_norm: Optional[dict] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.dsl = dsl
        self.dsl_scale = dsl_scale
        self.chunk_size = chunk_size
        qb_norm = dict(qb_norm or {}) if qb_norm is not None else None
        if qb_norm is not None:
            unknown = set(qb_norm) - {'beta', 'k'}
            if unknown:
                raise ValueError(f'qb_norm takes beta and k, got '
                                 f'{sorted(unknown)}')
        self.qb_norm = qb_norm
        self.query_bank: Optional[torch.Tensor] = None

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
        bank = None
        if self.qb_norm is not None:
            if self.query_bank is None:
                raise RuntimeError(
                    'VideoTextRetrievalMetric(qb_norm=...) has no query '
                    'bank: add QueryBankHook to custom_hooks (tools/test.py '
                    '--qb-norm does)')
            bank = self.query_bank
        return retrieval_metrics(
            video, text, owner, dsl=self.dsl, dsl_scale=self.dsl_scale,
            chunk_size=self.chunk_size, query_bank=bank,
            qb_beta=(self.qb_norm or {}).get('beta', 20.0),
            qb_k=(self.qb_norm or {}).get('k', 1))
