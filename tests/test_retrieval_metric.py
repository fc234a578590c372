"""Retrieval metrics against hand-computed rankings: ties, several captions
per video, dual softmax (DSL), chunking."""
import math

import numpy as np
import pytest
import torch

from stan_mmaction.evaluation import (VideoTextRetrievalMetric, qb_norm_ranks,
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


def _dense_qb_reference(video, text, owner, bank, beta, k):
    """QB-Norm's dynamic inverted softmax on whole matrices, as written in
    the paper: exp(beta s) / sum over the bank, for the test queries whose
    top k (ties in) meets the set of videos some bank query has in its top
    k; raw similarity for the others. Pessimistic ties."""
    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    v, t, b = unit(video), unit(text), unit(bank)
    bank_sim = b @ v.T
    kth = np.sort(bank_sim, axis=1)[:, -k][:, None]
    active = (bank_sim >= kth).any(0)
    denominator = np.exp(beta * bank_sim).sum(0)
    sim = t @ v.T
    kth = np.sort(sim, axis=1)[:, -k][:, None]
    use = ((sim >= kth) & active[None]).any(1)
    scores = np.where(use[:, None], np.exp(beta * sim) / denominator, sim)
    return np.array([(row >= row[owner[i]]).sum()
                     for i, row in enumerate(scores)])


@pytest.mark.parametrize('k', [1, 2])
def test_qb_norm_equals_a_dense_reference(k):
    """A bank larger than the gallery, duplicated videos and duplicated
    bank rows (ties in the top k and in the ranks)."""
    rng = np.random.default_rng(5)
    video = rng.normal(size=(12, 8))
    video[7] = video[3]  # tied videos
    owner = np.concatenate([np.arange(12), rng.integers(0, 12, 18)])
    text = video[owner] + 1.2 * rng.normal(size=(30, 8))
    bank = np.concatenate([video[rng.integers(0, 12, 40)] +
                           1.2 * rng.normal(size=(40, 8)), video[:4]])
    bank[5] = bank[6]  # tied bank queries
    expected = _dense_qb_reference(video, text, owner, bank, 20.0, k)
    for chunk in (1, 7, 1024):
        ranks = qb_norm_ranks(torch.tensor(video), torch.tensor(text),
                              torch.tensor(owner), torch.tensor(bank),
                              beta=20.0, k=k, chunk_size=chunk)
        np.testing.assert_array_equal(ranks.numpy(), expected)
    plain = retrieval_ranks(torch.tensor(video), torch.tensor(text),
                            torch.tensor(owner))['t2v'].numpy()
    assert (expected != plain).any()  # the normalisation changes ranks


def test_qb_norm_demotes_a_hub_by_hand():
    # Video 0 is a hub: every bank caption's best match. Caption 1 (own
    # video 1) likes video 0 slightly more: plain rank 2. Its top-1 (video
    # 0) is in the activation set, so it is re-scored by exp(20 s) / bank
    # sum: video 0's sum is large, video 1's small -> rank 1.
    texts, videos = _pair_texts([[0.9, 0.1], [0.6, 0.55]])
    bank, _ = _pair_texts([[0.95, 0.1], [0.9, 0.2], [0.85, 0.3]])
    owner = torch.tensor([0, 1])
    plain = retrieval_ranks(videos, texts, owner)['t2v'].tolist()
    qb = qb_norm_ranks(videos, texts, owner, bank).tolist()
    assert plain == [1, 2] and qb == [1, 1]
    metric = VideoTextRetrievalMetric(dsl=False, qb_norm=dict(beta=20.0))
    results = [dict(video=videos[0].float(), text=texts[:1].float()),
               dict(video=videos[1].float(), text=texts[1:].float())]
    with pytest.raises(RuntimeError, match='no query bank: add '
                       'QueryBankHook'):
        metric.compute_metrics(results)
    metric.query_bank = bank
    out = metric.compute_metrics(results)
    assert out['t2v_R1'] == 50.0 and out['t2v_qb_R1'] == 100.0
    with pytest.raises(ValueError, match='qb_norm takes beta and k'):
        VideoTextRetrievalMetric(qb_norm=dict(scale=3))
    with pytest.raises(ValueError, match='query bank is empty'):
        qb_norm_ranks(videos, texts, owner, bank[:0])


def test_checkpoint_hook_has_a_rule_for_every_metric_key():
    """save_best='auto' on a retrieval config: MMEngine's hook cannot infer
    a rule for ``retrieval/t2v_R1`` (it raised at the first validation);
    ours has one for every key the metric emits: recalls greater, ranks
    less."""
    from mmengine.hooks import CheckpointHook

    from stan_mmaction.engine.hooks import StanCheckpointHook
    from stan_mmaction.evaluation import metric_rule, retrieval_metrics
    torch.manual_seed(0)
    video, text = torch.randn(4, 8), torch.randn(6, 8)
    owner = torch.tensor([0, 0, 1, 2, 3, 3])
    keys = list(retrieval_metrics(video, text, owner, dsl=True,
                                  query_bank=torch.randn(5, 8)))
    assert len(keys) == 5 * 5  # t2v, v2t, their DSL, QB-Norm
    for key in (f'retrieval/{k}' for k in keys):
        expected = 'less' if key.endswith(('MdR', 'MnR')) else 'greater'
        assert metric_rule(key) == expected, key
        hook = StanCheckpointHook(interval=1, save_best='auto')
        hook._init_rule(hook.rules, [key])
        assert hook.rules == [expected], key
        with pytest.raises(ValueError, match='Cannot infer the rule'):
            plain = CheckpointHook(interval=1, save_best='auto')
            plain._init_rule(plain.rules, [key])
    # Other keys: MMEngine's inference as before; a stated rule wins.
    hook = StanCheckpointHook(interval=1, save_best='auto')
    hook._init_rule(hook.rules, ['acc/top1'])
    assert hook.rules == ['greater']
    assert metric_rule('acc/top1') is None
    hook = StanCheckpointHook(interval=1, save_best='retrieval/t2v_R1',
                              rule='less')
    assert hook.rules == ['less']
