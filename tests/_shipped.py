"""The override set under which every shipped config runs in the suite
(``tests/test_shipped_configs.py``), and the tiny data it runs on.

A shipped config runs as shipped, with only these swapped (documented in
docs/reliability.md, "Every shipped config, as shipped"):

- **data**: a few tiny videos and annotation files, written at the paths
  the config names (``data/kinetics400/...``, ``data/msrvtt/...``) inside a
  temporary workspace the tools run from, in that dataset's own format
  (MMAction2's video list, MSR-VTT JSON, DiDeMo's LocalizingMoments JSON,
  LSMDC's tab-separated CSV, a class-name file of ``num_classes`` lines);
- **model size**: CLIP's ``arch`` -> ``'tiny'`` in every tower, its
  ``pretrained`` -> a tiny CLIP checkpoint file (open_clip names, what
  ``pretrained=`` reads), heads' ``in_channels`` -> the tiny width, the
  STAN branch's ``num_stan_layers`` -> the same share of the tiny depth
  (4 of 12 -> 1 of 4; SSv2's 6 of 12 -> 2);
- **resolution**: every size in the pipelines (``Resize.scale``,
  ``*Crop.crop_size``) scaled by the tiny CLIP's input size over the
  shipped arch's (224 -> 32, 256 -> 37);
- **batch size** 2 in every loader, with ``num_workers=0`` (2 cores);
- **what the CPU cannot run**: ``AmpOptimWrapper`` -> ``OptimWrapper``
  (AMP autocasts for CUDA);
- **length**: one epoch, then a resume to a second one, validating after
  each (``val_interval=1`` where a demo validates every 5 epochs).

Everything else is the config's: hooks (the checkpoint hook with its
``save_best`` and ``max_keep_ckpts``), loops, evaluators, schedules,
optimizers, runners and strategies.
"""
import json
import os
import os.path as osp

#: The tiny CLIP's width, input size and depth (stan_mmaction.models.ARCHS).
TINY_WIDTH, TINY_SIZE, TINY_LAYERS = 32, 32, 4
TRAIN_VIDEOS, TEST_VIDEOS = 4, 3
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _image_size(arch) -> int:
    from stan_mmaction.models.clip import get_arch
    return get_arch(arch)['vision']['image_size']


def _depth(arch) -> int:
    from stan_mmaction.models.clip import get_arch
    return get_arch(arch)['vision']['layers']


def _scaled(value, ratio):
    if isinstance(value, (list, tuple)):
        return type(value)(_scaled(v, ratio) for v in value)
    if isinstance(value, int) and value > 0:
        return max(1, round(value * ratio))
    return value


def _fmt(value) -> str:
    """A value as ``--cfg-options`` parses it back (MMEngine's
    DictAction)."""
    if isinstance(value, tuple):
        return '(' + ','.join(_fmt(v) for v in value) + ')'
    if isinstance(value, list):
        return '[' + ','.join(_fmt(v) for v in value) + ']'
    return str(value)


def _clip_towers(model: dict):
    """``(dotted key, cfg)`` of every CLIP tower a model config builds."""
    backbone = model.get('backbone', {})
    if backbone.get('type') == 'StanCLIPBackbone':
        yield 'model.backbone', backbone
    if 'text_encoder' in model:
        yield 'model.text_encoder', model['text_encoder']
    head = model.get('cls_head', {})
    if 'text_encoder' in head:
        yield 'model.cls_head.text_encoder', head['text_encoder']


def tiny_options(cfg, clip_file: str) -> list:
    """The override set above for the loaded config ``cfg``, as
    ``--cfg-options`` arguments (``key=value`` strings)."""
    opts = {}
    model = cfg.model
    arch = model.get('backbone', {}).get('arch')
    ratio = TINY_SIZE / _image_size(arch) if arch else 1.0
    for key, tower in _clip_towers(model):
        opts[f'{key}.arch'] = 'tiny'
        opts[f'{key}.pretrained'] = clip_file
    stan_layers = model.get('backbone', {}).get('num_stan_layers')
    if arch and stan_layers:
        # The same share of the depth (K=4 of 12 -> 1 of 4, 6 of 12 -> 2).
        opts['model.backbone.num_stan_layers'] = max(1, round(
            stan_layers * TINY_LAYERS / _depth(arch)))
    if model.get('backbone', {}).get('type') == 'StanCLIPBackbone' and \
            'in_channels' in model.get('cls_head', {}):
        opts['model.cls_head.in_channels'] = TINY_WIDTH
    for loader in LOADERS:
        if cfg.get(loader) is None:
            continue
        opts[f'{loader}.batch_size'] = 2
        opts[f'{loader}.num_workers'] = 0
        opts[f'{loader}.persistent_workers'] = False
        for i, step in enumerate(cfg[loader].dataset.pipeline):
            for field in ('scale', 'crop_size'):
                if field in step and ratio != 1.0:
                    opts[f'{loader}.dataset.pipeline.{i}.{field}'] = \
                        _scaled(step[field], ratio)
    if cfg.get('optim_wrapper', {}).get('type') == 'AmpOptimWrapper':
        opts['optim_wrapper.type'] = 'OptimWrapper'
    if cfg.train_cfg.get('val_interval', 1) != 1:
        opts['train_cfg.val_interval'] = 1
    return [f'{k}={_fmt(v)}' for k, v in opts.items()]


def _write_video(path: str, seed: int, frames: int = 16) -> None:
    # 64x48: decord 0.6.0 failed on OpenCV's 48x40 mp4v files
    # ("DECORDArrayCopyFromTo: The size must exactly match", 7680 vs 5760).
    import cv2
    import numpy as np
    os.makedirs(osp.dirname(path), exist_ok=True)
    fourcc = 'MJPG' if path.endswith('.avi') else 'mp4v'
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), 25,
                             (64, 48))
    assert writer.isOpened(), path
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (5, 6, 3), np.uint8)
    for t in range(frames):
        writer.write(cv2.resize(np.roll(base, t, 1), (64, 48)))
    writer.release()


def _captions(i: int) -> list:
    colour = ('red', 'green', 'blue', 'white')[i % 4]
    return [f'a {colour} square moves', f'the {colour} video number {i}']


def _write_dataset(dataset: dict, root: str, count: int, seed: int) -> None:
    """``count`` videos and the annotation file of ``dataset`` (a dataset
    config) in its format, at its paths under ``root``."""
    ann = osp.join(root, dataset['ann_file'])
    prefix = osp.join(root, dataset.get('data_prefix', {}).get('video', ''))
    os.makedirs(osp.dirname(ann), exist_ok=True)
    kind = dataset['type']
    fmt = dataset.get('ann_format', 'json')
    num_classes = dataset.get('num_classes') or 8
    if kind == 'VideoTextRetrievalDataset' and fmt == 'lsmdc':
        lines = []
        for i in range(count):
            clip = f'100{i}_Movie_00.00.0{i}.000-00.00.0{i + 1}.000'
            _write_video(osp.join(prefix, f'100{i}_Movie', f'{clip}.avi'),
                         seed + i)
            lines.append('\t'.join([clip, '00.00.00.000', '00.00.01.000',
                                    '00.00.00.000', '00.00.01.000',
                                    _captions(i)[0]]))
        text = '\n'.join(lines) + '\n'
    elif kind == 'VideoTextRetrievalDataset' and fmt == 'didemo':
        entries = []
        ext = dataset.get('video_ext')
        for i in range(count):
            name = f'{1000 + i}_video.mov'
            on_disk = osp.splitext(name)[0] + ext if ext else name
            _write_video(osp.join(prefix, on_disk), seed + i)
            entries.append(dict(video=name, description=_captions(i),
                                times=[[0, 0], [1, 1]]))
        text = json.dumps(entries)
    elif kind == 'VideoTextRetrievalDataset':
        videos = {}
        for i in range(count):
            _write_video(osp.join(prefix, f'video{7000 + i}.mp4'), seed + i)
            videos[f'video{7000 + i}.mp4'] = _captions(i)
        text = json.dumps(videos, indent=1)
    else:  # MMAction2's video list: "path label"
        lines = []
        for i in range(count):
            name = f'class_{i}/clip_{seed + i}.mp4'
            _write_video(osp.join(prefix, name), seed + i)
            lines.append(f'{name} {(i * 37) % num_classes}')
        text = '\n'.join(lines) + '\n'
    with open(ann, 'w', encoding='utf-8') as f:
        f.write(text)


def write_tiny_data(cfg, root: str) -> None:
    """The tiny data of every loader of ``cfg`` (and the class-name file
    of a text-classifier head), at the config's paths under ``root``."""
    written = set()
    for index, loader in enumerate(LOADERS):
        if cfg.get(loader) is None:
            continue
        dataset = cfg[loader].dataset
        if dataset['ann_file'] in written:
            continue
        written.add(dataset['ann_file'])
        train = loader == 'train_dataloader'
        _write_dataset(dataset, root, TRAIN_VIDEOS if train else TEST_VIDEOS,
                       seed=100 * index)
    head = cfg.model.get('cls_head', {})
    names = head.get('class_names')
    if isinstance(names, str):
        path = osp.join(root, names)
        os.makedirs(osp.dirname(path), exist_ok=True)
        with open(path, 'w', encoding='utf-8') as f:
            f.write(''.join(f'class {i}\n'
                            for i in range(head['num_classes'])))
