"""The inferencer: one object that holds what inference needs (the model,
its config, the dtype and device it runs in, whether it is compiled, the
clip shape and the preprocessing), in the shape of MMAction2's
``ActionRecogInferencer`` and mmpretrain's
``ImageClassificationInferencer``. The model itself stays a plain
``nn.Module``: nothing is stored on it.

Preprocessing is the config's own test pipeline, from the decoded frames
on (``Resize``, the crop, ``FormatShape``), and the model's own data
preprocessor (normalisation); there is no second copy of either. Two things
differ from the test pipeline, both stated here and in the docs: the
*temporal* sampling is the inferencer's (one clip of ``clip_len`` frames per
window, the middle frame of each of ``clip_len`` equal segments: a long video
is read window by window with bounded memory), and multi-crop steps
(``ThreeCrop``, ``TenCrop``) become a ``CenterCrop`` of the same size: one
view per clip, as MMAction2's demos use.

Reading files is :mod:`.video_io`; batching clips of many videos through
the model with decoding in worker processes is :mod:`.video_stream`.
"""
import copy
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config

from ..utils.clip_shape import (DECODING_STEPS, SAMPLING_STEPS, TEXT_STEPS,
                                ClipShape, clip_shape, config_test_pipeline)
from ..utils.tokenizer import tokenize
from .inference import is_retrieval_model, video_embedding_forward
from .video_io import VideoReadError
from .video_stream import VideoOutput, iter_video_outputs

#: test-pipeline steps that read the file or pick frames: the inferencer's
#: own reading (:mod:`.video_io`) takes their place.
READING_STEPS = DECODING_STEPS + SAMPLING_STEPS
#: steps that make several spatial views; one centre view is taken instead.
MULTI_CROP_STEPS = ('ThreeCrop', 'TenCrop')
#: steps of the caption side, and the packing of samples for the dataset
#: (the inferencer hands the formatted array to the data preprocessor).
DROPPED_STEPS = TEXT_STEPS + ('PackActionInputs', )
TASKS = ('embed', 'predict')


def frame_pipeline(cfg) -> List[dict]:
    """The steps of ``cfg``'s test pipeline that turn decoded frames into
    the model's input array: reading, sampling, caption and packing steps
    dropped, multi-crop steps replaced by a ``CenterCrop`` of their size."""
    steps = []
    for step in config_test_pipeline(cfg):
        kind = step.get('type')
        if kind in READING_STEPS or kind in DROPPED_STEPS:
            continue
        if kind in MULTI_CROP_STEPS:
            step = dict(type='CenterCrop', crop_size=step['crop_size'])
        steps.append(copy.deepcopy(dict(step)))
    return steps


def _load_weights(model, checkpoint: str) -> None:
    """Load a runner checkpoint or its ``.safetensors`` export strictly,
    running no code from the file."""
    if checkpoint.endswith('.safetensors'):
        from safetensors.torch import load_file
        model.load_state_dict(load_file(checkpoint), strict=True)
        return
    from mmengine.runner.checkpoint import _load_checkpoint_to_model

    from ..utils.checkpoint import check_state_dict, safe_torch_load
    loaded = safe_torch_load(checkpoint, map_location='cpu')
    check_state_dict(checkpoint, loaded)
    _load_checkpoint_to_model(model, loaded, strict=True)


class StanInferencer:
    """A model ready for inference, with its config, dtype and device.

    Args:
        config (str | Config): a config file (``mmaction::`` paths work) or
            a loaded config (copied, not changed).
        checkpoint (str, optional): a runner checkpoint (or its
            ``.safetensors`` export by ``tools/convert_checkpoint.py``) to
            load strictly, with no code run from it; ``None`` keeps the
            weights the config's ``pretrained`` gives (e.g. CLIP weights for
            zero-shot).
        device (str): where the model runs. Defaults to ``'cpu'``.
        dtype (str): ``auto``, ``fp32``, ``bf16`` or ``fp16``: the model is
            cast to it (:mod:`stan_mmaction.utils.precision`; ``auto``: bf16
            on GPUs and on CPUs with native bf16, fp32 elsewhere). Defaults
            to ``'fp32'``.
        compile (bool): ``torch.compile`` the video tower; call
            :meth:`warm_up` before timing anything. A compiled model gets
            full batches only (the last one padded), so it compiles once.
        cfg_options (dict, optional): overrides merged into the config
            (``--cfg-options`` of the tools).
        random_weights (bool): strip every weight source of the config and
            build with random weights: nothing is downloaded (FLOP
            counting, benchmarks). Defaults to False.

    Attributes:
        model (nn.Module): the model, in eval mode, cast to ``dtype``.
        cfg (Config): the config it was built from (options merged).
        device (str), dtype (str): where and in which precision it runs
            (``dtype`` resolved: never ``auto``).
        compiled (bool): whether the video tower is compiled.
        shape (ClipShape): the clip shape the test pipeline gives.
        pipeline (Compose): :func:`frame_pipeline` built.

    Example:
        >>> inferencer = StanInferencer(CONFIG, CHECKPOINT, dtype='auto')
        >>> inferencer(['a.mp4', 'b.mp4'])['predictions'][0]['pred_label']
    """

    def __init__(self, config: Union[str, Config],
                 checkpoint: Optional[str] = None, device: str = 'cpu',
                 dtype: str = 'fp32', compile: bool = False,
                 cfg_options: Optional[dict] = None,
                 random_weights: bool = False):
        from mmaction.registry import MODELS, TRANSFORMS
        from mmengine.dataset import Compose
        from mmengine.registry import init_default_scope

        from ..utils import load_config, strip_pretrained
        from ..utils.precision import cast_model, compile_model, resolve_dtype
        self.device = str(device)
        self.dtype = resolve_dtype(dtype, self.device)
        cfg = load_config(config) if isinstance(config, str) else \
            copy.deepcopy(config)
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        self.cfg = cfg
        self.shape: ClipShape = clip_shape(cfg)
        init_default_scope(cfg.get('default_scope', 'mmaction'))
        model = MODELS.build(strip_pretrained(cfg.model) if random_weights
                             else cfg.model)
        if checkpoint is not None:
            _load_weights(model, checkpoint)
        self.model = cast_model(model.to(self.device).eval(), self.dtype)
        self.compiled = bool(compile)
        if compile:
            compile_model(self.model)
        self.pipeline = Compose([TRANSFORMS.build(step)
                                 for step in frame_pipeline(cfg)])
        pre = self.model.data_preprocessor
        # A retrieval model's preprocessor batches captions too; its video
        # half is MMAction2's ActionDataPreprocessor.
        self._video_preprocessor = getattr(pre, 'video', pre)

    @property
    def is_retrieval(self) -> bool:
        """A video-text model (video and text towers)."""
        return is_retrieval_model(self.model)

    @property
    def torch_dtype(self) -> torch.dtype:
        from ..utils.precision import TORCH_DTYPES
        return TORCH_DTYPES[self.dtype]

    # -- preprocessing ---------------------------------------------------
    def preprocess(self, frames: np.ndarray) -> np.ndarray:
        """Decoded frames ``(T, H, W, 3)`` uint8 RGB -> the clip as the
        test pipeline formats it (uint8; ``(1, 3, T, crop, crop)`` for
        NCTHW models, ``(T, 3, crop, crop)`` for NCHW ones). Runs in the
        decoding workers."""
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f'frames of shape {frames.shape}: expected '
                             '(T, H, W, 3) RGB')
        h, w = frames.shape[1:3]
        results = self.pipeline(dict(
            imgs=list(frames), img_shape=(h, w), original_shape=(h, w),
            modality='RGB', num_clips=1, clip_len=frames.shape[0],
            start_index=0))
        return np.ascontiguousarray(results['imgs'])

    def collate(self, clips: Sequence[np.ndarray]) -> torch.Tensor:
        """Clips from :meth:`preprocess` -> the model's normalised input
        batch (the model's data preprocessor), in its dtype, on its
        device: ``(B, 1, 3, T, H, W)`` (NCTHW) or ``(B, T, 3, H, W)``."""
        pre = self._video_preprocessor
        data = pre.cast_data([torch.from_numpy(np.asarray(c))
                              for c in clips])
        batch, _ = pre.preprocess(data, None)
        # Contiguous: a compiled model guards on strides.
        return batch.to(self.device, self.torch_dtype).contiguous()

    def batch_shape(self, batch_size: int) -> tuple:
        """The shape :meth:`collate` gives for ``batch_size`` clips."""
        s = self.shape
        if s.format_shape == 'NCHW':
            return (batch_size, s.frames, 3, s.crop, s.crop)
        return (batch_size, 1, 3, s.frames, s.crop, s.crop)

    # -- forwards ----------------------------------------------------------
    @torch.no_grad()
    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        """A :meth:`collate` batch -> L2-normalised fp32 video embeddings
        ``(B, E)`` (a retrieval model's video tower, or a recognizer's
        backbone)."""
        if batch.dim() != 6:
            raise ValueError(f'embeddings need NCTHW clips (B, 1, 3, T, H, '
                             f'W); got {tuple(batch.shape)} from a '
                             f'{self.shape.format_shape} config')
        feats = video_embedding_forward(self.model)(batch[:, 0])
        return F.normalize(feats.float().flatten(1), dim=-1)

    @torch.no_grad()
    def predict(self, batch: torch.Tensor) -> torch.Tensor:
        """A :meth:`collate` batch -> fp32 class probabilities ``(B, C)``
        of a recognizer (MMAction2's ``predict``)."""
        from mmaction.structures import ActionDataSample
        if self.is_retrieval:
            raise ValueError('a retrieval model has no classes; use embed '
                             '(or a recognition config)')
        samples = self.model.predict(
            batch, [ActionDataSample() for _ in range(batch.shape[0])])
        return torch.stack([s.pred_score.float() for s in samples])

    def forward(self, task: str):
        """:meth:`embed` or :meth:`predict` by name."""
        if task not in TASKS:
            raise ValueError(f'task {task!r}: use one of {", ".join(TASKS)}')
        return self.embed if task == 'embed' else self.predict

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """L2-normalised caption embeddings ``(N, E)`` of a retrieval
        model, on the CPU."""
        if not self.is_retrieval:
            raise ValueError('this model has no text tower; use a retrieval '
                             'config (e.g. configs/retrieval/stan/stan-attn_'
                             'vit-base-p32-res224-clip-pre_1x1x12_msrvtt-9k-'
                             'rgb.py)')
        tokens = tokenize(list(texts), self.shape.context_length or 77)
        out = self.model.encode_text(tokens.to(self.device))
        return F.normalize(out.float(), dim=-1).cpu()

    def warm_up(self, task: str, batch_size: int) -> float:
        """Seconds of one forward on a zero batch of the clip shape: a
        compiled model compiles here, so the time is reported as the
        warm-up and not hidden in the first video's."""
        from ..utils.precision import warm_up
        return warm_up(self.forward(task), self.batch_shape(batch_size),
                       self.torch_dtype, self.device)

    # -- videos --------------------------------------------------------------
    def iter_videos(self, paths: Sequence[str], task: str = 'embed',
                    window: Optional[int] = None, batch_size: int = 8,
                    workers: int = 1):
        """One :class:`.video_stream.VideoOutput` per video, in the order
        they complete (unreadable ones with ``error``): ``outputs`` holds a
        row per window (``window=None``: one clip per video) of
        :meth:`embed` or :meth:`predict`. Decoding runs in ``workers``
        processes (0: this one) while the model runs."""
        return iter_video_outputs(self, paths, self.forward(task), window,
                                  batch_size, workers)

    def __call__(self, videos: Union[str, Sequence[str]],
                 window: Optional[int] = None, batch_size: int = 8,
                 workers: int = 0) -> Dict[str, list]:
        """MMAction2's inferencer call: ``{'predictions': [...]}``, one
        dict per video in input order. Recognizers: ``pred_scores`` (mean
        over the windows), ``pred_label``, ``window_scores``; retrieval
        models: ``embedding`` (the normalised mean of the window
        embeddings). ``spans`` gives each window's frames.

        Raises:
            VideoReadError: a video cannot be read (the first one found).
        """
        paths = [videos] if isinstance(videos, str) else list(videos)
        task = 'embed' if self.is_retrieval else 'predict'
        done: Dict[int, VideoOutput] = {}
        for out in self.iter_videos(paths, task, window, batch_size,
                                    workers):
            if out.error:
                raise VideoReadError(out.error)
            done[out.index] = out
        predictions = []
        for i in range(len(paths)):
            out = done[i]
            if task == 'embed':
                pred = dict(embedding=out.embedding.tolist())
            else:
                scores = out.outputs.mean(0)
                pred = dict(pred_scores=scores.tolist(),
                            pred_label=int(scores.argmax()),
                            window_scores=out.outputs.tolist())
            predictions.append(dict(pred, spans=list(out.spans)))
        return dict(predictions=predictions)


def init_model(config: Union[str, Config],
               checkpoint: Optional[str] = None,
               device: str = 'cpu',
               cfg_options: Optional[dict] = None,
               random_weights: bool = False,
               dtype: str = 'fp32',
               compile: bool = False):
    """The model of a config, built for inference (MMAction2's
    ``init_recognizer`` shape): :class:`StanInferencer`'s ``model``, a plain
    ``nn.Module`` in eval mode. Arguments as :class:`StanInferencer`'s."""
    return StanInferencer(config, checkpoint, device, dtype, compile,
                          cfg_options, random_weights).model


def embed_video(inferencer: StanInferencer, path: str,
                window: Optional[int] = None,
                batch_size: int = 8) -> torch.Tensor:
    """The normalised mean of the clip embeddings of one video ``(E,)``.

    Raises:
        VideoReadError: the file cannot be decoded.
    """
    out = next(inferencer.iter_videos([path], 'embed', window, batch_size,
                                      workers=0))
    if out.error:
        raise VideoReadError(out.error)
    return out.embedding
