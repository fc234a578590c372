"""The input shape of a model, read from its config's test pipeline.

The pipeline is the one source of a clip's shape: how many frames are
sampled (``clip_len``), the short side they are resized to, the crop, and
the layout ``FormatShape`` packs them in. The backbone accepts any frame
count (up to its ``max_frames``), so it does not store one. Every tool that
needs an input shape (inference, demo, search, feature extraction, FLOP
counting, the benchmark) calls :func:`clip_shape`.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

#: pipeline steps that set the frame count (their ``clip_len``).
SAMPLING_STEPS = ('UniformSample', 'SampleFrames', 'UniformSampleFrames',
                  'DenseSampleFrames')
#: steps that crop to a square of ``crop_size``, and the views they make.
CROP_STEPS = {'CenterCrop': 1, 'ThreeCrop': 3, 'TenCrop': 10}
#: steps that open a video or decode its sampled frames.
DECODING_STEPS = ('DecordInit', 'DecordDecode', 'PyAVInit', 'PyAVDecode',
                  'VideoInit', 'VideoDecode', 'OpenCVInit', 'OpenCVDecode',
                  'RawFrameDecode', 'LoadRGBFromFile')
#: steps of the caption side of retrieval pipelines.
TEXT_STEPS = ('OpenCLIPTokenize', 'CLIPTokenize')
#: steps that do not change the shape of a test clip.
NEUTRAL_STEPS = DECODING_STEPS + TEXT_STEPS + (
    'PyAVDecodeMotionVector', 'FormatShape', 'PackActionInputs', 'Flip',
    'ColorJitter')


class UnknownPipelineStepError(ValueError):
    """A test pipeline step whose effect on the clip shape is unknown."""


@dataclass(frozen=True)
class ClipShape:
    """One test view of a model, as its test pipeline makes it.

    Attributes:
        frames (int): frames per clip (``clip_len``).
        num_clips (int): temporal views per video.
        short_side (int): the short side frames are resized to (at least
            ``crop``).
        crop (int): height and width of the square crop fed to the model.
        num_crops (int): spatial views per clip (1, 3 or 10).
        format_shape (str): ``FormatShape``'s layout (``'NCTHW'``,
            ``'NCHW'``, ...).
        context_length (int, optional): tokens per caption for retrieval
            configs (``OpenCLIPTokenize``), else None.
    """
    frames: int
    num_clips: int
    short_side: int
    crop: int
    num_crops: int
    format_shape: str
    context_length: Optional[int] = None

    def input_shape(self, batch: int = 1) -> Tuple[int, ...]:
        """The input of one view per video for ``batch`` videos:
        ``(B, 3, T, H, W)`` (NCTHW) or ``(B, T, 3, H, W)`` (NCHW: frames as
        MMAction2's 2D recognizers take them)."""
        if self.format_shape == 'NCHW':
            return (batch, self.frames, 3, self.crop, self.crop)
        return (batch, 3, self.frames, self.crop, self.crop)


def config_test_pipeline(cfg) -> list:
    """The steps of ``cfg``'s test (or validation) pipeline, through dataset
    wrappers."""
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    dataset = loader.get('dataset') if loader else None
    while isinstance(dataset, dict) and 'pipeline' not in dataset and \
            isinstance(dataset.get('dataset'), dict):
        dataset = dataset['dataset']  # RepeatDataset and other wrappers
    if not isinstance(dataset, dict) or not dataset.get('pipeline'):
        raise ValueError('the config has no test_dataloader.dataset.pipeline '
                         'to read the input shape from')
    return list(dataset['pipeline'])


def _short_side(step: dict) -> int:
    scale = step.get('scale')
    if isinstance(scale, (int, float)) and not isinstance(scale, bool):
        raise UnknownPipelineStepError(
            f'Resize with a scale factor {scale!r}: the output size depends '
            'on the video; give scale=(-1, SHORT_SIDE) or (W, H)')
    if not isinstance(scale, (tuple, list)) or len(scale) != 2:
        raise UnknownPipelineStepError(f'Resize without a (w, h) scale: '
                                       f'{step}')
    if -1 in scale:
        return int(max(scale))
    return int(min(scale))


def clip_shape(cfg) -> ClipShape:
    """Read :class:`ClipShape` from ``cfg``'s test pipeline.

    Args:
        cfg (mmengine.Config | dict): a full config (``test_dataloader``, or
            ``val_dataloader`` when there is no test loader).

    Raises:
        UnknownPipelineStepError: a step this function does not know, named
            with its position; nothing is guessed.
        ValueError: no pipeline, or no sampling step.
    """
    frames = num_clips = short = crop = context_length = None
    num_crops, fmt = 1, 'NCTHW'
    for i, step in enumerate(config_test_pipeline(cfg)):
        kind = step.get('type')
        if kind in SAMPLING_STEPS:
            frames = int(step.get('clip_len', 1))
            num_clips = int(step.get('num_clips', 1))
        elif kind == 'Resize':
            short = _short_side(step)
        elif kind in CROP_STEPS:
            size = step.get('crop_size')
            crop = int(size if isinstance(size, int) else min(size))
            num_crops = CROP_STEPS[kind]
        elif kind == 'FormatShape':
            fmt = step.get('input_format', fmt)
        elif kind == 'OpenCLIPTokenize':
            context_length = int(step.get('context_length', 77))
        elif kind not in NEUTRAL_STEPS:
            raise UnknownPipelineStepError(
                f'test pipeline step {i} {kind!r} ({step}) has an unknown '
                'effect on the input shape; known steps: '
                f'{sorted(SAMPLING_STEPS + tuple(CROP_STEPS) + NEUTRAL_STEPS)}'
                ' and Resize')
    if frames is None:
        raise ValueError('the test pipeline has no frame-sampling step (one '
                         f'of {SAMPLING_STEPS}) giving clip_len')
    if short is None and crop is None:
        raise ValueError('the test pipeline neither resizes nor crops: the '
                         'input size is unknown')
    crop = crop if crop is not None else short
    short = max(short if short is not None else crop, crop)
    if fmt == 'NCHW' and num_clips > 1 and frames == 1:
        # TSN-style: num_clips segments of one frame each form the input.
        frames, num_clips = num_clips, 1
    return ClipShape(frames=frames, num_clips=num_clips, short_side=short,
                     crop=crop, num_crops=num_crops, format_shape=fmt,
                     context_length=context_length)
