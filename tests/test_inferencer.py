"""The inferencer (stan_mmaction.apis.StanInferencer): its preprocessing is
the config's test pipeline and the model's data preprocessor, nothing is
stored on the model, and its call returns what the batched video path
computes. Tiny models, videos written here."""
import os.path as osp

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, save_random_checkpoint, write_videos

from stan_mmaction.apis import (StanInferencer, VideoReadError, embed_video,
                                frame_pipeline, iter_clips, open_video)
from stan_mmaction.utils import load_config

RETRIEVAL_CFG = osp.join(REPO_ROOT, 'configs', 'demo',
                         'stan_tiny_synthetic_retrieval.py')
RECOGNITION_CFG = osp.join(REPO_ROOT, 'configs', 'demo',
                           'stan_tiny_synthetic.py')
TSN_CFG = osp.join(REPO_ROOT, 'configs', 'compare',
                   'tsn_r18_tiny_synthetic.py')
K400_CFG = osp.join(REPO_ROOT, 'configs', 'recognition', 'stan',
                    'stan-attn_vit-base-p16-res224-clip-pre_1x1x8_k400-'
                    'rgb.py')
MSRVTT_CFG = osp.join(REPO_ROOT, 'configs', 'retrieval', 'stan',
                      'stan-attn_vit-base-p32-res224-clip-pre_1x1x12_'
                      'msrvtt-9k-rgb.py')


def three_crop_config():
    """The tiny recognizer tested as the K400 configs are (short side
    resized to the crop, then ThreeCrop), at its own size of 32."""
    cfg = load_config(RECOGNITION_CFG)
    cfg.test_dataloader.dataset.pipeline = [
        dict(type='DecordInit'),
        dict(type='UniformSample', clip_len=8, num_clips=1, test_mode=True),
        dict(type='DecordDecode'),
        dict(type='Resize', scale=(-1, 32)),
        dict(type='ThreeCrop', crop_size=32),
        dict(type='FormatShape', input_format='NCTHW'),
        dict(type='PackActionInputs')]
    return cfg


def landscape_video(path, frames=20, h=48, w=80, seed=0):
    """An MP4 of smooth random content, wider than high."""
    import cv2

    from stan_mmaction.datasets import write_mp4
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (frames, h // 8, w // 8, 3), np.uint8)
    video = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR)
                      for f in small])
    write_mp4(path, video)
    return path


def test_frame_pipeline_is_the_configs_after_decoding():
    """Reading, sampling, caption and packing steps dropped; ThreeCrop
    becomes a centre crop of its size; the rest as the config says."""
    k400 = frame_pipeline(load_config(K400_CFG))
    assert k400 == [dict(type='Resize', scale=(-1, 224)),
                    dict(type='CenterCrop', crop_size=224),
                    dict(type='FormatShape', input_format='NCTHW')]
    msrvtt = frame_pipeline(load_config(MSRVTT_CFG))
    assert [s['type'] for s in msrvtt] == ['Resize', 'CenterCrop',
                                           'FormatShape']
    tsn = frame_pipeline(load_config(TSN_CFG))
    assert tsn[-1] == dict(type='FormatShape', input_format='NCHW')


def test_preprocessing_equals_the_test_pipeline_and_data_preprocessor(
        tmp_path):
    """The config's own test pipeline (MMAction2's transforms reading the
    file, ThreeCrop) and the model's data preprocessor give, for their
    centre view, exactly the inferencer's input on the same frames."""
    from mmaction.registry import TRANSFORMS
    from mmengine.dataset import Compose
    cfg = three_crop_config()
    inferencer = StanInferencer(cfg, random_weights=True)
    path = landscape_video(str(tmp_path / 'wide.mp4'))

    steps = [TRANSFORMS.build(s)
             for s in cfg.test_dataloader.dataset.pipeline]
    decoded = Compose(steps[:3])(dict(filename=path, start_index=0,
                                      modality='RGB'))
    inds = list(decoded['frame_inds'])
    packed = Compose(steps[3:])(decoded)
    assert packed['inputs'].shape == (3, 3, 8, 32, 32)  # three views
    ref, _ = inferencer.model.data_preprocessor.preprocess(
        [packed['inputs']], None)

    reader, _ = open_video(path)  # full size: the pipeline's Resize scales
    frames = reader.get_batch(inds).asnumpy()
    clip = inferencer.preprocess(frames)
    assert clip.dtype == np.uint8 and clip.shape == (1, 3, 8, 32, 32)
    ours = inferencer.collate([clip])
    assert ours.shape == inferencer.batch_shape(1) == (1, 1, 3, 8, 32, 32)
    # ThreeCrop gives left, right, middle.
    torch.testing.assert_close(ours[:, 0], ref[:, 2], atol=0, rtol=0)


def test_nothing_is_stored_on_the_model():
    """A bf16, compiled inferencer's model has the attributes of the same
    model built by MMAction2's registry: no config, dtype or compiled flag
    hung on it; the inferencer holds them."""
    from mmaction.registry import MODELS

    from stan_mmaction.utils import strip_pretrained
    from stan_mmaction.utils.precision import model_dtype
    inferencer = StanInferencer(RECOGNITION_CFG, dtype='bf16', compile=True)
    plain = MODELS.build(strip_pretrained(load_config(RECOGNITION_CFG).model))
    assert set(vars(inferencer.model)) == set(vars(plain))
    assert set(vars(inferencer.model.backbone)) - set(
        vars(plain.backbone)) <= {'_compiled_call_impl'}  # torch's own
    assert (inferencer.dtype, inferencer.compiled) == ('bf16', True)
    assert model_dtype(inferencer.model) == torch.bfloat16
    assert inferencer.cfg.model.cls_head.num_classes == 8
    # Cast back to fp32: the input/output hooks go with the dtype.
    from stan_mmaction.utils.precision import cast_model
    cast_model(inferencer.model, 'fp32')
    assert not inferencer.model._forward_pre_hooks
    assert not inferencer.model._forward_hooks


def test_call_gives_the_window_forwards(tmp_path):
    """A recognizer's call: per video in input order, a row of scores per
    window equal to predict() on that window's clip, and their mean; a
    retrieval model's call: the embedding of embed_video. An unreadable
    video is a VideoReadError."""
    ckpt = str(tmp_path / 'rec.pth')
    save_random_checkpoint(RECOGNITION_CFG, ckpt, seed=3)
    videos = write_videos(tmp_path / 'v', [1, 4], frames=24)
    inferencer = StanInferencer(RECOGNITION_CFG, ckpt)
    preds = inferencer(videos, window=8, batch_size=5,
                       workers=2)['predictions']
    assert len(preds) == 2
    shape = inferencer.shape
    for video, pred in zip(videos, preds):
        by_hand = torch.cat([
            inferencer.predict(inferencer.collate([inferencer.preprocess(c)]))
            for c, _, _ in iter_clips(video, shape.frames, shape.short_side,
                                      shape.crop, window=8)])
        assert pred['spans'] == [(0, 8), (8, 16), (16, 24)]
        np.testing.assert_allclose(pred['window_scores'], by_hand.numpy(),
                                   atol=1e-6)
        np.testing.assert_allclose(pred['pred_scores'],
                                   by_hand.mean(0).numpy(), atol=1e-6)
        assert pred['pred_label'] == int(by_hand.mean(0).argmax())

    retrieval = StanInferencer(RETRIEVAL_CFG, random_weights=True)
    emb = retrieval(videos[1])['predictions'][0]['embedding']
    np.testing.assert_allclose(emb, embed_video(retrieval, videos[1]),
                               atol=1e-6)
    bad = tmp_path / 'bad.mp4'
    bad.write_bytes(b'\x00' * 64)
    with pytest.raises(VideoReadError, match='cannot open as a video'):
        inferencer([videos[0], str(bad)])
    with pytest.raises(ValueError, match='a retrieval model has no classes'):
        retrieval.predict(retrieval.collate(
            [retrieval.preprocess(np.zeros((8, 32, 32, 3), np.uint8))]))
    with pytest.raises(ValueError, match='no text tower'):
        inferencer.embed_texts(['a square'])
    with pytest.raises(ValueError, match="task 'classify'"):
        inferencer.iter_videos(videos, 'classify')


def test_a_2d_recognizer_predicts_and_refuses_embeddings(tmp_path):
    """MMAction2's TSN (NCHW: the frames as views): predictions through its
    own predict; embeddings need an NCTHW model, said so."""
    inferencer = StanInferencer(TSN_CFG, random_weights=True)
    video = write_videos(tmp_path, [2])[0]
    pred = inferencer(video)['predictions'][0]
    assert len(pred['pred_scores']) == 8
    assert sum(pred['pred_scores']) == pytest.approx(1, abs=1e-5)
    assert inferencer.batch_shape(2) == (2, 8, 3, 32, 32)
    with pytest.raises(ValueError, match='embeddings need NCTHW clips'):
        embed_video(inferencer, video)
    with pytest.raises(ValueError, match=r'frames of shape \(8, 32, 32\)'):
        inferencer.preprocess(np.zeros((8, 32, 32), np.uint8))
