"""Using a trained (or zero-shot) model: build it, turn clips into its
input tensors, embed clips and captions, score labels. Reading the video
files is :mod:`.video_io`; batching over many videos :mod:`.video_stream`."""
import copy
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmaction.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

from ..utils.clip_shape import clip_shape
from ..utils.tokenizer import tokenize


def init_model(config: Union[str, Config],
               checkpoint: Optional[str] = None,
               device: str = 'cpu',
               cfg_options: Optional[dict] = None,
               random_weights: bool = False,
               dtype: str = 'fp32',
               compile: bool = False):
    """Build the model of a config for inference (MMAction2's
    ``init_recognizer`` / MMDetection's ``init_detector`` shape).

    Args:
        config (str | Config): a config file (``mmaction::`` paths work) or
            a loaded config.
        checkpoint (str, optional): a runner checkpoint (or its
            ``.safetensors`` export by ``tools/convert_checkpoint.py``) to
            load strictly, with no code run from it; ``None`` keeps the
            weights the config's ``pretrained`` gives (e.g. CLIP weights for
            zero-shot).
        device (str): where the model goes. Defaults to ``'cpu'``.
        cfg_options (dict, optional): overrides merged into the config
            (``--cfg-options`` of the tools).
        random_weights (bool): strip every weight source of the config
            (``pretrained`` keys, ``Pretrained`` init_cfg) and build with
            random weights: nothing is downloaded (FLOP counting,
            benchmarks). Defaults to False.
        dtype (str): ``auto``, ``fp32``, ``bf16`` or ``fp16``: the model is
            cast to it (:mod:`.precision`; ``auto``: bf16 on GPUs and on
            CPUs with native bf16, fp32 elsewhere). Defaults to ``'fp32'``.
        compile (bool): ``torch.compile`` the video tower; run
            :func:`warm_up_video` before timing anything. Defaults to False.

    Returns:
        nn.Module: the model in eval mode, with the config as ``model.cfg``
        and the dtype it runs in as ``model.stan_dtype``.
    """
    from ..utils.precision import cast_model, compile_model, resolve_dtype
    dtype = resolve_dtype(dtype, device)
    from ..utils import load_config, strip_pretrained
    cfg = load_config(config) if isinstance(config, str) else \
        copy.deepcopy(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmaction'))
    model_cfg = strip_pretrained(cfg.model) if random_weights else cfg.model
    model = MODELS.build(model_cfg)
    if checkpoint is not None and checkpoint.endswith('.safetensors'):
        from safetensors.torch import load_file
        model.load_state_dict(load_file(checkpoint), strict=True)
    elif checkpoint is not None:
        from mmengine.runner.checkpoint import _load_checkpoint_to_model

        from ..utils.checkpoint import check_state_dict, safe_torch_load
        loaded = safe_torch_load(checkpoint, map_location='cpu')
        check_state_dict(checkpoint, loaded)
        _load_checkpoint_to_model(model, loaded, strict=True)
    model.cfg = cfg
    model = cast_model(model.to(device).eval(), dtype)
    return compile_model(model) if compile else model


def is_retrieval_model(model) -> bool:
    """True for video-text models (a video tower and a text tower:
    ``encode_video`` and ``encode_text``)."""
    return callable(getattr(model, 'encode_video', None)) and \
        callable(getattr(model, 'encode_text', None))


def video_forward(model) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model's forward on one view per video, for timing and counting.

    Input: ``ClipShape.input_shape(batch)``, i.e. ``(B, 3, T, H, W)``, or
    ``(B, T, 3, H, W)`` for 2D (NCHW) recognizers. Retrieval models: the
    video tower (the text side runs once per caption, not per clip).
    Recognizers: MMAction2's ``mode='tensor'`` forward (the backbone's
    features, through the recognizer's own input handling).
    """
    if is_retrieval_model(model):
        return model.encode_video
    fmt = getattr(model.data_preprocessor, 'format_shape', 'NCTHW')
    if fmt == 'NCHW':
        return lambda x: model(x, mode='tensor')
    return lambda x: model(x[:, None], mode='tensor')


def video_embedding_forward(model) -> Callable[[torch.Tensor], torch.Tensor]:
    """``(B, 3, T, H, W)`` -> ``(B, E)`` video embeddings: a retrieval
    model's video tower, or a recognizer's backbone."""
    return model.encode_video if is_retrieval_model(model) else \
        model.backbone


def _normaliser(model):
    pre = model.data_preprocessor
    pre = getattr(pre, 'video', pre)
    return pre.mean.flatten().float(), pre.std.flatten().float()


def clips_tensor(model, clips: np.ndarray) -> torch.Tensor:
    """(B, T, H, W, 3) uint8 -> normalised ``(B, 3, T, H, W)`` on the
    model's device, in the model's dtype."""
    from ..utils.precision import model_dtype
    mean, std = _normaliser(model)
    x = torch.from_numpy(np.ascontiguousarray(clips)).float()
    x = (x - mean) / std
    device = next(model.parameters()).device
    # Contiguous: a compiled model guards on strides, and a permuted view
    # recompiled it (and ran slower) on the first real batch.
    return x.permute(0, 4, 1, 2, 3).to(device, model_dtype(model)) \
        .contiguous()


def clip_tensor(model, clip: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> normalised ``(1, 3, T, H, W)`` on the model's
    device, in the model's dtype."""
    return clips_tensor(model, clip[None])


def embedding_batch_forward(model) -> Callable[[torch.Tensor], torch.Tensor]:
    """``(B, 3, T, H, W)`` -> L2-normalised fp32 embeddings ``(B, E)``."""
    forward = video_embedding_forward(model)
    return lambda x: F.normalize(forward(x).float().flatten(1), dim=-1)


def recognition_batch_forward(model
                              ) -> Callable[[torch.Tensor], torch.Tensor]:
    """``(B, 3, T, H, W)`` -> fp32 class probabilities ``(B, C)`` of a
    recognizer, one view per clip."""
    from mmaction.structures import ActionDataSample
    fmt = getattr(model.data_preprocessor, 'format_shape', 'NCTHW')

    def forward(x):
        # (B videos, 1 view, ...): MMAction2's recognizers average views;
        # 2D recognizers take (B, T, 3, H, W), the frames as views.
        x = x.transpose(1, 2) if fmt == 'NCHW' else x[:, None]
        samples = model.predict(x, [ActionDataSample()
                                    for _ in range(x.shape[0])])
        return torch.stack([s.pred_score.float() for s in samples])
    return forward


@torch.no_grad()
def embed_clip(model, clip: np.ndarray) -> torch.Tensor:
    """L2-normalised video embedding ``(E,)`` of one clip (a retrieval
    model's video tower, or a recognizer's backbone)."""
    return embedding_batch_forward(model)(clip_tensor(model, clip))[0].cpu()


@torch.no_grad()
def embed_texts(model, texts: Sequence[str]) -> torch.Tensor:
    """L2-normalised caption embeddings ``(N, E)`` of a retrieval model."""
    if not is_retrieval_model(model):
        raise ValueError('this model has no text tower; use a retrieval '
                         'config (e.g. configs/retrieval/stan/stan-attn_'
                         'vit-base-p32-res224-clip-pre_1x1x12_msrvtt-9k-'
                         'rgb.py)')
    length = clip_shape(model.cfg).context_length or 77
    tokens = tokenize(list(texts), length)
    device = next(model.parameters()).device
    return F.normalize(model.encode_text(tokens.to(device)).float(),
                       dim=-1).cpu()


@torch.no_grad()
def recognize_clip(model, clip: np.ndarray) -> torch.Tensor:
    """Class probabilities ``(num_classes,)`` of one clip (a recognizer)."""
    return recognition_batch_forward(model)(clip_tensor(model, clip))[0].cpu()
