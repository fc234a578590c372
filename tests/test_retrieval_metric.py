"""Retrieval metrics against hand-computed rankings: ties, several captions
per video, dual softmax (DSL), chunking."""
import math

import numpy as np
import pytest
import torch

from stan_mmaction.evaluation import (VideoTextRetrievalMetric,
                                      retrieval_metrics, retrieval_ranks)

# Three orthonormal videos; text rows are unit vectors whose cosine to video
# j is component j. Captions 0 and 1 belong to video 0, 2 to 1, 3 to 2.
VIDEOS = torch.eye(3)
TEXTS = torch.tensor([[0.9, 0.3, 0.1],    # v0 > v1 > v2: rank 1
                      [0.1, 0.8, 0.2],    # v1 > v2 > v0: rank 3
                      [0.5, 0.5, 0.1],    # v0 == v1, own v1: rank 2 (tie)
                      [0.2, 0.1, 0.9]])   # v2 first: rank 1
OWNER = torch.tensor([0, 0, 1, 2])


def _pair_texts(sims):
    """Unit text vectors with the given cosines to orthonormal videos."""
    sims = torch.tensor(sims, dtype=torch.float64)
    rest = (1 - (sims**2).sum(1, keepdim=True)).sqrt()
    return torch.cat([sims, rest], 1), torch.eye(sims.shape[1], 3,
                                                 dtype=torch.float64)


def test_hand_computed_ranks_with_ties_and_multi_caption_videos():
    ranks = retrieval_ranks(VIDEOS, TEXTS, OWNER)
    assert ranks['t2v'].tolist() == [1, 3, 2, 1]
    # Video 0: its best caption (0, cos .943) beats every other caption.
    # Video 1: caption 1 (cos .963) beats its own caption 2 (.700): rank 2.
    # Video 2: caption 3 (.971) first.
    assert ranks['v2t'].tolist() == [1, 2, 1]
    m = retrieval_metrics(VIDEOS, TEXTS, OWNER)
    assert m['t2v_R1'] == 50.0 and m['t2v_R5'] == 100.0
    assert m['t2v_MdR'] == 1.5 and m['t2v_MnR'] == 1.75
    assert m['v2t_R1'] == pytest.approx(200 / 3)
    assert m['v2t_MdR'] == 1.0 and m['v2t_MnR'] == pytest.approx(4 / 3)


def test_a_video_is_found_by_its_best_caption():
    # Cosines (caption x video). Video 0: caption 1 (.9) is first although
    # its other caption 0 (.3) ranks below caption 2: v2t rank 1. Video 1:
    # its best caption 2 (.35) is beaten by caption 0 (.4): rank 2.
    texts, videos = _pair_texts([[0.3, 0.4], [0.9, 0.1], [0.5, 0.35],
                                 [0.2, 0.15]])
    ranks = retrieval_ranks(videos, texts, torch.tensor([0, 0, 1, 1]))
    assert ranks['v2t'].tolist() == [1, 2]
    assert ranks['t2v'].tolist() == [2, 1, 2, 2]


def test_constant_model_gets_worst_ranks_not_perfect_ones():
    videos = torch.ones(4, 3)
    texts = torch.ones(4, 3)
    ranks = retrieval_ranks(videos, texts, torch.arange(4), dsl=True)
    for direction in ('t2v', 'v2t', 't2v_dsl', 'v2t_dsl'):
        assert ranks[direction].tolist() == [4, 4, 4, 4], direction


def test_dual_softmax_by_hand():
    # Video 0 is a hub: both captions prefer it. Plain t2v: caption 1
    # (own video 1) ranks it second. DSL divides by how much *every* caption
    # likes a video: column 0's softmax over captions (scale 100) gives
    # caption 1 weight 1/(1+e^30), column 1's gives it 1/(1+e^-30); so
    # caption 1 now ranks video 1 first.
    texts, videos = _pair_texts([[0.9, 0.2], [0.6, 0.5]])
    ranks = retrieval_ranks(videos.float(), texts.float(),
                            torch.tensor([0, 1]), dsl=True)
    assert ranks['t2v'].tolist() == [1, 2]
    assert ranks['t2v_dsl'].tolist() == [1, 1]
    assert ranks['v2t'].tolist() == [1, 1]
    assert ranks['v2t_dsl'].tolist() == [1, 1]
    # The DSL score itself, for caption 1 and video 1:
    expected = 0.5 / (1 + math.exp(-30))
    sim = texts.float() @ videos.float().t()
    col = torch.softmax(100 * sim, dim=0)
    assert (sim * col)[1, 1].item() == pytest.approx(expected, rel=1e-5)


def _dense_reference(video, text, owner, dsl):
    """Whole-matrix numpy ranks (CLIP4Clip-style), pessimistic ties."""
    v = video / np.linalg.norm(video, axis=1, keepdims=True)
    t = text / np.linalg.norm(text, axis=1, keepdims=True)
    sim = t @ v.T
    t2v_sim, v2t_sim = sim, sim.T
    if dsl:
        e = np.exp(100 * sim - (100 * sim).max())
        t2v_sim = sim * e / e.sum(0, keepdims=True)
        e = np.exp(100 * sim - (100 * sim).max(1, keepdims=True))
        v2t_sim = (sim * e / e.sum(1, keepdims=True)).T
    t2v = [(row >= row[owner[i]]).sum() for i, row in enumerate(t2v_sim)]
    v2t = []
    for j, row in enumerate(v2t_sim):
        own = owner == j
        best = row[own].max()
        v2t.append(1 + (row[~own] >= best).sum())
    return np.array(t2v), np.array(v2t)


@pytest.mark.parametrize('dsl', [False, True])
def test_chunked_equals_dense_reference(dsl):
    rng = np.random.default_rng(0)
    video = rng.normal(size=(37, 16))
    owner = np.concatenate([np.arange(37), rng.integers(0, 37, 40)])
    # Captions near their video, so ranks spread over 1..37.
    text = video[owner] + 3.0 * rng.normal(size=(77, 16))
    t2v, v2t = _dense_reference(video, text, owner, dsl)
    for chunk in (1, 5, 1024):
        ranks = retrieval_ranks(torch.tensor(video), torch.tensor(text),
                                torch.tensor(owner), dsl=dsl,
                                chunk_size=chunk)
        key = '_dsl' if dsl else ''
        np.testing.assert_array_equal(ranks['t2v' + key].numpy(), t2v)
        np.testing.assert_array_equal(ranks['v2t' + key].numpy(), v2t)
    assert 1 < t2v.mean() < 19 and v2t.max() > 1  # a non-trivial case


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match='every video needs at least one'):
        retrieval_ranks(torch.eye(3), torch.eye(3)[:2], torch.tensor([0, 1]))
    with pytest.raises(ValueError, match='outside the 3 videos'):
        retrieval_ranks(torch.eye(3), torch.eye(3), torch.tensor([0, 1, 3]))
    with pytest.raises(ValueError, match='2 captions but 3'):
        retrieval_ranks(torch.eye(3), torch.eye(3)[:2],
                        torch.tensor([0, 1, 2]))


def test_metric_reads_predicted_samples():
    metric = VideoTextRetrievalMetric(dsl=True)
    samples = [
        dict(video_feature=VIDEOS[0], text_feature=TEXTS[:2]),
        dict(video_feature=VIDEOS[1], text_feature=TEXTS[2:3]),
        dict(video_feature=VIDEOS[2], text_feature=TEXTS[3:]),
    ]
    metric.process(None, samples[:2])
    metric.process(None, samples[2:])
    out = metric.evaluate(3)
    assert out['retrieval/t2v_R1'] == 50.0
    assert out['retrieval/v2t_R1'] == pytest.approx(200 / 3)
    assert 'retrieval/t2v_dsl_R1' in out and 'retrieval/v2t_dsl_MnR' in out


def test_dsl_on_a_diffuse_matrix_equals_a_float64_reference():
    """Random directions in few dimensions: cosines spread over [-1, 1], so
    DSL's factors exp(100 * s - lse) span ~200 e-folds. In float32 a few
    percent of them underflow to exactly 0 and tie; the metric works in
    float64 and equals the float64 dense reference."""
    rng = np.random.default_rng(3)
    video = rng.normal(size=(150, 4)).astype(np.float32)
    owner = np.concatenate([np.arange(150), rng.integers(0, 150, 150)])
    text = (video[owner] + 1.5 * rng.normal(size=(300, 4))).astype(
        np.float32)
    # The reference sees the same float32 embeddings, widened.
    video, text = video.astype(np.float64), text.astype(np.float64)
    v = video / np.linalg.norm(video, axis=1, keepdims=True)
    t = text / np.linalg.norm(text, axis=1, keepdims=True)
    sim32 = torch.tensor(t @ v.T, dtype=torch.float32)
    dsl32 = sim32 * torch.softmax(100 * sim32, dim=0)
    assert (dsl32 == 0).float().mean() > 0.02  # the float32 failure
    t2v, v2t = _dense_reference(video, text, owner, dsl=True)
    # The float32 reference ranks differently: the case discriminates.
    t2v32, _ = _dense_reference(video.astype(np.float32),
                                text.astype(np.float32), owner, dsl=True)
    assert (t2v32 != t2v).any()
    for chunk in (7, 1024):
        ranks = retrieval_ranks(torch.tensor(video, dtype=torch.float32),
                                torch.tensor(text, dtype=torch.float32),
                                torch.tensor(owner), dsl=True,
                                chunk_size=chunk)
        np.testing.assert_array_equal(ranks['t2v_dsl'].numpy(), t2v)
        np.testing.assert_array_equal(ranks['v2t_dsl'].numpy(), v2t)
