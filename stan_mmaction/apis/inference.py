"""Using a trained (or zero-shot) model on video files: build it, decode
clips with bounded memory, embed videos and captions, score labels."""
import os.path as osp
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmaction.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

VIDEO_EXTS = ('.mp4', '.avi', '.mkv', '.mov', '.webm', '.m4v', '.mpg',
              '.mpeg')


class VideoReadError(RuntimeError):
    """A video file cannot be opened or decoded."""


def init_model(config, checkpoint: Optional[str] = None,
               device: str = 'cpu'):
    """Build the model of ``config`` (path or Config) and load
    ``checkpoint`` (a runner checkpoint; ``None`` keeps the weights the
    config's ``pretrained`` gives, e.g. CLIP weights for zero-shot)."""
    from ..utils import load_config
    cfg = load_config(config) if isinstance(config, str) else config
    init_default_scope(cfg.get('default_scope', 'mmaction'))
    model = MODELS.build(cfg.model)
    if checkpoint is not None:
        from mmengine.runner import load_checkpoint
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    model.cfg = cfg
    return model.to(device).eval()


def clip_geometry(cfg: Config) -> Tuple[int, int, int]:
    """(frames, short side, crop) of one test view, from the config's test
    pipeline."""
    frames, short, crop = 8, 224, 224
    for step in cfg.test_dataloader.dataset.pipeline:
        kind = step.get('type')
        if kind in ('UniformSample', 'SampleFrames'):
            frames = step.get('clip_len', frames)
        elif kind == 'Resize':
            scale = step.get('scale')
            if isinstance(scale, (tuple, list)):
                short = max(scale[1], 0) if scale[0] == -1 else min(scale)
        elif kind in ('CenterCrop', 'ThreeCrop', 'TenCrop'):
            crop = step.get('crop_size', crop)
    crop = crop if isinstance(crop, int) else crop[0]
    return frames, max(short, crop), crop


def _open(path: str):
    import decord
    if not osp.isfile(path):
        raise VideoReadError(f'{path}: no such file')
    try:
        reader = decord.VideoReader(path, num_threads=1)
        count = len(reader)
    except Exception as err:  # noqa: BLE001  (decord raises many types)
        raise VideoReadError(f'{path}: cannot open as a video ({err})')
    if count == 0:
        raise VideoReadError(f'{path}: no frames')
    return reader, count


def _resize_crop(frames: np.ndarray, short: int, crop: int) -> np.ndarray:
    """(T, H, W, 3) uint8 -> short side ``short``, center crop ``crop``."""
    import cv2
    t, h, w, _ = frames.shape
    scale = short / min(h, w)
    nh, nw = max(crop, round(h * scale)), max(crop, round(w * scale))
    out = np.stack([cv2.resize(f, (nw, nh), interpolation=cv2.INTER_LINEAR)
                    for f in frames])
    top, left = (nh - crop) // 2, (nw - crop) // 2
    return out[:, top:top + crop, left:left + crop]


def iter_clips(path: str, frames: int, short: int, crop: int,
               window: Optional[int] = None
               ) -> Iterator[Tuple[np.ndarray, Tuple[int, int], int]]:
    """Yield ``(clip (T, crop, crop, 3) uint8 RGB, (start, end), total)``.

    ``window=None``: one clip over the whole video (uniform segments, the
    middle frame of each, as MMAction2's test-mode ``UniformSample``).
    ``window=W``: consecutive windows of W frames, one clip each; only the
    sampled frames of one window are decoded at a time, so memory does not
    grow with the video's length.
    """
    reader, total = _open(path)
    window = total if not window else window
    for start in range(0, total, window):
        end = min(total, start + window)
        seg = (end - start) / frames
        idx = [min(end - 1, start + int(seg * i + seg / 2))
               for i in range(frames)]
        try:
            batch = reader.get_batch(idx).asnumpy()
        except Exception as err:  # noqa: BLE001
            raise VideoReadError(f'{path}: cannot decode frames {idx[0]}.. '
                                 f'{idx[-1]} ({err})')
        if batch.ndim != 4 or batch.shape[-1] != 3:
            raise VideoReadError(f'{path}: frames of shape {batch.shape} '
                                 'are not RGB')
        yield _resize_crop(batch, short, crop), (start, end), total


def _normaliser(model):
    pre = model.data_preprocessor
    pre = getattr(pre, 'video', pre)
    return pre.mean.flatten().float(), pre.std.flatten().float()


def clip_tensor(model, clip: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> normalised ``(1, 3, T, H, W)`` on the model's
    device."""
    mean, std = _normaliser(model)
    x = torch.from_numpy(np.ascontiguousarray(clip)).float()
    x = (x - mean) / std
    device = next(model.parameters()).device
    return x.permute(3, 0, 1, 2)[None].to(device)


@torch.no_grad()
def embed_clip(model, clip: np.ndarray) -> torch.Tensor:
    """L2-normalised video embedding ``(E,)`` of one clip (a retrieval
    model's video tower, or a recognizer's backbone)."""
    x = clip_tensor(model, clip)
    if hasattr(model, 'encode_video'):
        emb = model.encode_video(x)
    else:
        emb = model.backbone(x)
    return F.normalize(emb.float().flatten(1), dim=-1)[0].cpu()


@torch.no_grad()
def embed_video(model, path: str, window: Optional[int] = None
                ) -> torch.Tensor:
    """Mean of the clip embeddings of a video, normalised (E,)."""
    frames, short, crop = clip_geometry(model.cfg)
    embs = [embed_clip(model, clip)
            for clip, _, _ in iter_clips(path, frames, short, crop, window)]
    return F.normalize(torch.stack(embs).mean(0), dim=-1)


@torch.no_grad()
def embed_texts(model, texts: Sequence[str]) -> torch.Tensor:
    """L2-normalised caption embeddings ``(N, E)`` of a retrieval model."""
    from ..datasets.text_transforms import OpenCLIPTokenize
    if not hasattr(model, 'encode_text'):
        raise ValueError('this model has no text tower; use a retrieval '
                         'config (e.g. configs/stan_vitb32_msrvtt.py)')
    length = 77
    for step in model.cfg.test_dataloader.dataset.pipeline:
        if step.get('type') == 'OpenCLIPTokenize':
            length = step.get('context_length', 77)
    tokens = OpenCLIPTokenize(length).tokenize(list(texts))
    device = next(model.parameters()).device
    return F.normalize(model.encode_text(tokens.to(device)).float(),
                       dim=-1).cpu()


@torch.no_grad()
def recognize_clip(model, clip: np.ndarray) -> torch.Tensor:
    """Class probabilities ``(num_classes,)`` of one clip (a recognizer)."""
    from mmaction.structures import ActionDataSample
    x = clip_tensor(model, clip)
    fmt = getattr(model.data_preprocessor, 'format_shape', 'NCTHW')
    if fmt == 'NCHW':  # 2D recognizers: frames as the batch
        x = x[0].permute(1, 0, 2, 3)
    # (1 video, 1 view, ...): MMAction2's recognizers average the views.
    sample = model.predict(x[None], [ActionDataSample()])[0]
    return sample.pred_score.float().cpu()


def list_videos(folder: str) -> List[str]:
    """Video files under ``folder`` (recursively), sorted."""
    import os
    found = []
    for root, _, files in os.walk(folder):
        for name in files:
            if name.lower().endswith(VIDEO_EXTS):
                found.append(osp.join(root, name))
    return sorted(found)
