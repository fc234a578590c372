"""Retrieval model, head, tokenizer and datasets."""
import json
import math
import os.path as osp
import subprocess
import sys

import pytest
import torch
from _ddp_retrieval_case import GRAD_SCALE_BATCH, authors_loss, build_case
from conftest import REPO_ROOT, subprocess_env

from stan_mmaction.datasets import (EmptyCaptionError, OpenCLIPTokenize,
                                    VideoTextRetrievalDataset)
from stan_mmaction.models import (CheckpointMismatchError, CLIPTextEncoder,
                                  VideoTextRetrievalHead)
from stan_mmaction.utils import clip_tokenizer

EOT = 49407


# -- text tower ---------------------------------------------------------------
def test_text_encoder_equals_open_clip_encode_text(tiny_clip_file):
    path, clip = tiny_clip_file
    encoder = CLIPTextEncoder('tiny', pretrained=path).eval()
    captions = ['a red square moves left, then up', 'darkness',
                'the blue square is big and goes down before going right']
    tokens = OpenCLIPTokenize(77).tokenize(captions)
    with torch.no_grad():
        ours = encoder(tokens)
        ref = clip.encode_text(tokens)
        # Cut to 32 tokens: with the causal mask, positions up to the
        # end-of-text token do not see the padding, so nothing changes.
        short = encoder(OpenCLIPTokenize(32).tokenize(captions))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(short, ref, rtol=1e-5, atol=1e-5)


def test_text_encoder_loading_errors(tmp_path, tiny_clip_file):
    path, clip = tiny_clip_file
    state = clip.state_dict()
    state['ln_final.weight'] = torch.ones(7)
    del state['text_projection']
    bad = tmp_path / 'bad.pt'
    torch.save(state, bad)
    with pytest.raises(CheckpointMismatchError) as err:
        CLIPTextEncoder('tiny', pretrained=str(bad))
    assert 'Missing keys: text_projection' in str(err.value)
    assert 'ln_final.weight: checkpoint (7,) vs model (32,)' in str(err.value)
    with pytest.raises(ValueError, match='neither a file nor an open_clip'):
        CLIPTextEncoder('tiny', pretrained='no_such_tag')
    encoder = CLIPTextEncoder('tiny')
    with pytest.raises(ValueError, match=r'text length 78 is outside'):
        encoder(torch.ones(1, 78, dtype=torch.long))


# -- tokenizer ----------------------------------------------------------------
def test_long_caption_keeps_end_of_text_last():
    words = [f'word{i % 50}' for i in range(200)]
    caption = ' '.join(words)
    tok = OpenCLIPTokenize(context_length=32)
    ids = tok.transform(dict(text=caption))['text']
    full = clip_tokenizer().encode(caption)
    assert len(full) > 200
    assert ids.shape == (1, 32) and ids.dtype == torch.long
    assert ids[0, 0] == 49406 and ids[0, -1] == EOT
    # The first 30 caption tokens are kept, in order.
    assert ids[0, 1:31].tolist() == full[:30]
    # Pooling reads the last position, the end-of-text token.
    assert ids[0].argmax() == 31
    short = tok.transform(dict(text='a cat'))['text'][0]
    assert short[:4].tolist() == [49406] + clip_tokenizer().encode(
        'a cat') + [EOT] and short[4:].eq(0).all()


def test_non_ascii_captions_tokenize():
    tok = OpenCLIPTokenize(context_length=32)
    captions = ['un carré rouge se déplace à gauche', 'ein Würfel über 🚀',
                '赤い四角が左に動く', 'квадрат движется']
    ids = tok.transform(dict(text=captions))['text']
    assert ids.shape == (4, 32)
    for row in ids:
        assert row[0] == 49406 and EOT in row.tolist()
        assert row.argmax() > 1  # some real tokens between start and end
    decoded = clip_tokenizer().decode(ids[0, 1:ids[0].argmax()].tolist())
    assert decoded.strip() == 'un carré rouge se déplace à gauche'


@pytest.mark.parametrize('caption', ['', '   ', '\t\n'])
def test_empty_caption_rejected_naming_file_and_line(tmp_path, caption):
    ann = tmp_path / 'train.json'
    ann.write_text(json.dumps({'a.mp4': ['fine'], 'b.mp4': ['ok', caption]},
                              indent=1))
    with pytest.raises(EmptyCaptionError) as err:
        VideoTextRetrievalDataset(str(ann), [], data_prefix=dict(video=''))
    # b.mp4 opens on line 5 of the indented JSON.
    assert f'{ann}:5:' in str(err.value) and 'b.mp4' in str(err.value)
    with pytest.raises(EmptyCaptionError, match=r'x.json:7: empty caption'):
        OpenCLIPTokenize().transform(
            dict(text=['ok', caption], ann_file='x.json', ann_lines=[3, 7]))


# -- datasets -----------------------------------------------------------------
def infos(dataset):
    return [dataset.get_data_info(i) for i in range(len(dataset))]


def test_json_format_train_pairs_and_test_videos(tmp_path):
    ann = tmp_path / 'ann.json'
    ann.write_text(json.dumps({'v1.mp4': ['c1', 'c2'], 'v2.mp4': ['c3']}))
    train = VideoTextRetrievalDataset(str(ann), [],
                                      data_prefix=dict(video='vids'))
    assert [(osp.basename(d['filename']), d['text'])
            for d in infos(train)] == [
        ('v1.mp4', ['c1']), ('v1.mp4', ['c2']), ('v2.mp4', ['c3'])]
    test = VideoTextRetrievalDataset(str(ann), [], test_mode=True,
                                     data_prefix=dict(video='vids'))
    assert [(d['filename'], d['text']) for d in infos(test)] == [
        ('vids/v1.mp4', ['c1', 'c2']), ('vids/v2.mp4', ['c3'])]


def test_didemo_format_joins_a_paragraph(tmp_path):
    ann = tmp_path / 'test_data.json'
    ann.write_text(json.dumps([
        dict(video='a.mov', description='a man walks in. ', times=[[0, 1]]),
        dict(video='b.mov', description='a dog barks'),
        dict(video='a.mov', description='he sits down'),
    ]))
    ds = VideoTextRetrievalDataset(str(ann), [], ann_format='didemo',
                                   video_ext='.mp4', test_mode=True,
                                   data_prefix=dict(video='v'))
    assert [(d['filename'], d['text']) for d in infos(ds)] == [
        ('v/a.mp4', ['a man walks in. he sits down']),
        ('v/b.mp4', ['a dog barks'])]


def test_lsmdc_format(tmp_path):
    ann = tmp_path / 'LSMDC16_annos_training.csv'
    ann.write_text(
        '1001_Flight_00.00.53.430-00.00.55.725\t00.00.53.430\t00.00.55.725'
        '\t00.00.53.430\t00.00.55.725\tSOMEONE looks out.\n'
        '1002_Ghost_01.02.03.000-01.02.05.000\t0\t0\t0\t0\tA door opens.\n')
    ds = VideoTextRetrievalDataset(str(ann), [], ann_format='lsmdc',
                                   data_prefix=dict(video='v'))
    assert [(d['filename'], d['text'], d['ann_line'])
            for d in infos(ds)] == [
        ('v/1001_Flight/1001_Flight_00.00.53.430-00.00.55.725.avi',
         ['SOMEONE looks out.'], 1),
        ('v/1002_Ghost/1002_Ghost_01.02.03.000-01.02.05.000.avi',
         ['A door opens.'], 2)]
    with pytest.raises(ValueError, match="ann_format='csv'"):
        VideoTextRetrievalDataset(str(ann), [], ann_format='csv')


# -- head ---------------------------------------------------------------------
def test_loss_is_symmetric_infonce_by_hand():
    torch.manual_seed(0)
    video, text = torch.randn(4, 8), torch.randn(4, 8)
    head = VideoTextRetrievalHead(temperature=0.05)
    out = head.loss(video, text)
    v = video / video.norm(dim=1, keepdim=True)
    t = text / text.norm(dim=1, keepdim=True)
    logits = (t @ v.t()) / 0.05
    t2v = -torch.log_softmax(logits, 1).diag().mean()
    v2t = -torch.log_softmax(logits, 0).diag().mean()
    assert out['loss_t2v'].item() == pytest.approx(0.5 * t2v.item(), 1e-5)
    assert out['loss_v2t'].item() == pytest.approx(0.5 * v2t.item(), 1e-5)
    assert out['temperature'].item() == pytest.approx(0.05)
    assert not any(p.requires_grad for p in head.parameters())


def test_learnable_temperature_is_clamped_and_learns():
    head = VideoTextRetrievalHead(temperature=0.05,
                                  learnable_temperature=True,
                                  temperature_range=(0.01, 0.1))
    video = torch.randn(6, 8, requires_grad=True)
    out = head.loss(video, video.detach() + 0.1 * torch.randn(6, 8))
    (out['loss_t2v'] + out['loss_v2t']).backward()
    assert head.logit_scale.grad is not None and head.logit_scale.grad != 0
    with torch.no_grad():
        head.logit_scale.fill_(math.log(1 / 0.0001))
    assert head.temperature.item() == pytest.approx(0.01)
    with pytest.raises(ValueError, match='must lie in temperature_range'):
        VideoTextRetrievalHead(temperature=0.5, temperature_range=(0.01, 0.1))


def test_model_modes_and_caption_counts():
    model, videos, tokens = build_case()
    model.eval()
    from mmaction.structures import ActionDataSample
    samples = [ActionDataSample() for _ in range(2)]
    for s, n in zip(samples, (2, 3)):
        s.num_texts = n
    out = model(dict(imgs=videos[:2], text=tokens), samples, mode='predict')
    assert out[0].text_feature.shape == (2, 32)
    assert out[1].text_feature.shape == (3, 32)
    torch.testing.assert_close(out[0].video_feature.norm(), torch.tensor(1.))
    v, t = model(dict(imgs=videos, text=tokens), mode='tensor')
    assert v.shape == t.shape == (5, 32)
    with pytest.raises(ValueError, match='one caption per video'):
        model(dict(imgs=videos[:2], text=tokens), mode='loss')
    with pytest.raises(ValueError, match=r'dict\(imgs=..., text=...\)'):
        model(videos, mode='loss')


# -- the 2-process gloo run equals one process with the whole batch ----------
def _ddp_cases(out, world):
    """One gloo launch of ``world`` processes computing every case of
    tests/_ddp_retrieval_case.py for that world size; ``[rank0, rank1,
    ...]`` results, each a dict by case."""
    cases = ['grad_scale'] + (['gather:3,2', 'gather:4,1']
                              if world == 2 else [])
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--standalone',
         '--nproc_per_node', str(world),
         osp.join(REPO_ROOT, 'tests', '_ddp_retrieval_case.py'), '--out',
         str(out), '--cases', *cases],
        cwd=REPO_ROOT, env=subprocess_env({'OMP_NUM_THREADS': '1'}),
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [torch.load(out / f'rank{r}.pt', weights_only=True)
            for r in range(world)]


@pytest.fixture(scope='module')
def ddp_results(tmp_path_factory):
    """The gloo launches, once each for the module: {world: ranks}."""
    cache = {}

    def get(world):
        if world not in cache:
            cache[world] = _ddp_cases(
                tmp_path_factory.mktemp(f'ddp{world}'), world)
        return cache[world]

    return get


@pytest.mark.parametrize('split', ['3,2', '4,1'])
@pytest.mark.slow
def test_two_process_gather_equals_whole_batch(ddp_results, split):
    ranks = [r[f'gather:{split}'] for r in ddp_results(2)]

    model, videos, tokens = build_case()
    losses = model(dict(imgs=videos, text=tokens), mode='loss')
    loss = losses['loss_t2v'] + losses['loss_v2t']
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and g.abs().sum() > 0 for g in grads.values())
    for result in ranks:
        torch.testing.assert_close(result['loss'], loss.detach(), rtol=1e-5,
                                   atol=1e-6)
        assert set(result['grads']) == set(grads)
        for name, grad in grads.items():
            # float32 sums in another order: tolerance scaled to the grad.
            torch.testing.assert_close(
                result['grads'][name], grad, rtol=1e-4,
                atol=1e-5 * grad.abs().max().item(), msg=name)


# -- gradient scale: the authors' rule, reproduced --------------------------
def _run_grad_scale_case(ddp_results, world):
    ranks = [r['grad_scale'] for r in ddp_results(world)]
    for other in ranks[1:]:  # DDP: every rank holds the same gradients
        for rule, grads in other.items():
            for name, g in grads.items():
                torch.testing.assert_close(g, ranks[0][rule][name])
    return ranks[0]


def _authors_on_virtual_gpus(gpus):
    """The authors' rule on ``gpus`` ranks simulated in one process: every
    rank computes the summed loss over the whole batch with only its own
    rows carrying gradients; DDP averages the ranks' gradients."""
    model, videos, tokens = build_case(
        GRAD_SCALE_BATCH, learnable_temperature=False)
    per = GRAD_SCALE_BATCH // gpus
    for rank in range(gpus):
        video, text = model(dict(imgs=videos, text=tokens), mode='tensor')
        mine = torch.zeros(GRAD_SCALE_BATCH, 1)
        mine[rank * per:(rank + 1) * per] = 1

        def gather(x):  # this rank's rows keep their gradient, no others
            return x * mine + x.detach() * (1 - mine)

        (authors_loss(video, text, model.head.temperature, gather) /
         gpus).backward()
    return {n: p.grad for n, p in model.named_parameters()}


def _flat(grads):
    return torch.cat([g.flatten() for g in grads.values()])


def _clipped(grads, max_norm):
    """The gradient AdamW receives after ``clip_grad_norm_``."""
    model, _, _ = build_case(GRAD_SCALE_BATCH, learnable_temperature=False)
    for name, p in model.named_parameters():
        p.grad = grads[name].clone()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    return norm, _flat({n: p.grad for n, p in model.named_parameters()})


@pytest.mark.parametrize('world', [2, 4])
@pytest.mark.slow
def test_gradient_scale_reproduces_the_authors_rule(ddp_results, world):
    """``reference_gpus='world_size'`` equals the authors' summed loss with
    their local-slice gather and DDP's averaging on the same processes;
    ``reference_gpus=8`` (the configs) equals their rule on 8 GPUs at any
    world size; the default mean is W/2 times theirs. Clipping at the
    configs' threshold (and below and above the gradient's norm) then hands
    AdamW the same gradient as the authors' 8-GPU run."""
    got = _run_grad_scale_case(ddp_results, world)
    authors = _flat(got['authors'])
    assert authors.norm() > 0
    tol = dict(rtol=1e-4, atol=1e-6 * authors.abs().max().item())
    torch.testing.assert_close(_flat(got['ours_world_size']), authors, **tol)
    ratio = _flat(got['ours_mean']).norm() / authors.norm()
    assert ratio.item() == pytest.approx(world / 2, rel=1e-4)
    authors8 = _authors_on_virtual_gpus(8)
    torch.testing.assert_close(_flat(got['ours_8']), _flat(authors8), **tol)
    norm8 = _flat(authors8).norm().item()
    for max_norm in (5.0, 0.5 * norm8, 2.0 * norm8):
        norm_theirs, theirs = _clipped(authors8, max_norm)
        norm_ours, ours = _clipped(got['ours_8'], max_norm)
        assert norm_ours.item() == pytest.approx(norm_theirs.item(), 1e-4)
        torch.testing.assert_close(ours, theirs, **tol)
    # Without the scale (the mean, 4x their 8-GPU gradient), a threshold
    # between the two norms clips ours and not theirs.
    norm_mean, mean_clipped = _clipped(got['ours_mean'], 2.0 * norm8)
    assert norm_mean.item() == pytest.approx(4 * norm8, rel=1e-4)
    assert not torch.allclose(mean_clipped, _clipped(authors8, 2.0 * norm8)[1],
                              **tol)


def test_reference_gpus_validated():
    for bad in (0, -8, 2.5, 'eight', True):
        with pytest.raises(ValueError, match='reference_gpus'):
            VideoTextRetrievalHead(reference_gpus=bad)
    video, text = torch.randn(4, 8), torch.randn(4, 8)
    half = VideoTextRetrievalHead(temperature=0.05).loss(video, text)
    eighth = VideoTextRetrievalHead(temperature=0.05,
                                    reference_gpus=8).loss(video, text)
    # single process: 'world_size' is 1, the plain sum
    summed = VideoTextRetrievalHead(
        temperature=0.05, reference_gpus='world_size').loss(video, text)
    for key in ('loss_t2v', 'loss_v2t'):
        assert eighth[key].item() == pytest.approx(half[key].item() / 4)
        assert summed[key].item() == pytest.approx(half[key].item() * 2)


# -- tools end to end on synthetic captions -----------------------------------
RETRIEVAL_DEMO = osp.join(REPO_ROOT, 'configs', 'demo',
                          'stan_tiny_synthetic_retrieval.py')


@pytest.mark.slow
def test_train_and_test_tools_on_synthetic_captions(tmp_path):
    from conftest import call_main

    from stan_mmaction.datasets import make_synthetic_retrieval_dataset
    make_synthetic_retrieval_dataset(
        str(tmp_path / 'data' / 'synthetic_retrieval'),
        dict(train=1, test=1), seed=0)
    work = str(tmp_path / 'work')
    # 64 videos x 2 captions = 128 training pairs, 4 batches of 32.
    options = ['train_cfg.max_epochs=1', 'train_dataloader.batch_size=32']
    train = call_main('tools/train.py', [RETRIEVAL_DEMO, '--work-dir', work,
                                         '--cfg-options', *options],
                      cwd=str(tmp_path))
    assert train.returncode == 0, train.stderr[-3000:]
    log = train.stdout + train.stderr
    assert 'Epoch(train) [1][4/4]' in log and 'loss_t2v:' in log
    test = call_main('tools/test.py', [RETRIEVAL_DEMO, f'{work}/epoch_1.pth',
                                       '--work-dir', work], cwd=str(tmp_path))
    assert test.returncode == 0, test.stderr[-3000:]
    with open(osp.join(work, 'test_metrics.json')) as f:
        metrics = json.load(f)
    for direction in ('t2v', 'v2t', 't2v_dsl', 'v2t_dsl'):
        for name in ('R1', 'R5', 'R10', 'MdR', 'MnR'):
            assert f'retrieval/{direction}_{name}' in metrics
    # 64 test videos, 128 caption queries: ranks lie in 1..64 (v2t: 1..127).
    assert 1 <= metrics['retrieval/t2v_MdR'] <= 64
    assert 0 <= metrics['retrieval/t2v_R1'] <= metrics['retrieval/t2v_R5'] \
        <= metrics['retrieval/t2v_R10'] <= 100
    assert not any('_qb_' in key for key in metrics)
    # --qb-norm: the training captions as QB-Norm's query bank.
    qb = call_main('tools/test.py', [RETRIEVAL_DEMO, f'{work}/epoch_1.pth',
                                     '--work-dir', work, '--qb-norm'],
                   cwd=str(tmp_path))
    assert qb.returncode == 0, qb.stderr[-3000:]
    assert 'QB-Norm query bank: 128 captions of' in qb.stdout + qb.stderr
    with open(osp.join(work, 'test_metrics.json')) as f:
        with_qb = json.load(f)
    for name in ('R1', 'R5', 'R10', 'MdR', 'MnR'):
        assert f'retrieval/t2v_qb_{name}' in with_qb
        assert with_qb[f'retrieval/t2v_{name}'] == metrics[
            f'retrieval/t2v_{name}']


def test_head_temperature_type_is_checked():
    with pytest.raises(TypeError, match="temperature must be a number, got "
                       "str '0.01'"):
        VideoTextRetrievalHead(temperature='0.01')
