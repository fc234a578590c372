"""One source for a model's input shape: its config's test pipeline."""
import copy
import glob
import os.path as osp

import pytest
from conftest import REPO_ROOT
from mmengine.config import Config

from stan_mmaction.utils import (ClipShape, UnknownPipelineStepError,
                                 clip_shape, load_config)

CONFIGS = sorted(
    osp.relpath(p, REPO_ROOT)
    for p in glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'),
                       recursive=True) if '_base_' not in p)


def expected(rel):
    """(frames, num_clips, short side, crop, crops, context length) of each
    shipped config, by its dataset (the recipe: 8 frames and 4x3 views for
    K400, 2x3 for SSv2, 16 frames in the 1x1x16 configs, 12 frames / 32
    tokens for MSR-VTT and LSMDC, 64 / 77 for DiDeMo; the demos: 8 frames
    of 32x32)."""
    if rel.startswith(('configs/demo/', 'configs/compare/')):
        return (8, 1, 32, 32, 1, 32 if 'retrieval' in rel else None)
    frames = 16 if '_1x1x16_' in rel else 8
    if 'k400' in rel:
        return (frames, 4, 224, 224, 3, None)
    if 'sthv2' in rel or 'ssv2' in rel:
        return (frames, 2, 224, 224, 3, None)
    if 'didemo' in rel:
        return (64, 1, 256, 224, 1, 77)  # short side 256 (authors)
    if 'msrvtt' in rel or 'lsmdc' in rel:
        return (12, 1, 224, 224, 1, 32)
    raise AssertionError(f'no expectation for {rel}: add one')


@pytest.mark.parametrize('rel', CONFIGS)
def test_every_shipped_config_has_its_recipe_shape(rel):
    shape = clip_shape(Config.fromfile(osp.join(REPO_ROOT, rel)))
    assert (shape.frames, shape.num_clips, shape.short_side, shape.crop,
            shape.num_crops, shape.context_length) == expected(rel)
    if rel.startswith(('configs/compare/tsn', 'configs/compare/tsm')):
        # MMAction2's 2D recognizers: 8 one-frame segments, NCHW.
        assert shape.format_shape == 'NCHW'
        assert shape.input_shape(2) == (2, 8, 3, 32, 32)
        return
    assert shape.format_shape == 'NCTHW'
    assert shape.input_shape(2) == (2, 3, shape.frames, shape.crop,
                                    shape.crop)


def test_shape_equals_what_the_test_pipeline_produces(demo_workspace):
    """Run the demo's real test pipeline on one of its MP4s and compare."""
    from mmaction.registry import TRANSFORMS
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    init_default_scope('mmaction')
    root = osp.join(demo_workspace, 'data', 'synthetic')
    with open(osp.join(root, 'val_list_videos.txt')) as f:
        name = f.readline().split()[0]
    cfg = Config.fromfile(osp.join(REPO_ROOT,
                                   'configs/demo/stan_tiny_synthetic.py'))
    pipeline = Compose([TRANSFORMS.build(s) for s in
                        cfg.test_dataloader.dataset.pipeline])
    out = pipeline(dict(filename=osp.join(root, name), label=0,
                        start_index=0, modality='RGB'))
    shape = clip_shape(cfg)
    # PackActionInputs: (views, 3, T, H, W)
    assert tuple(out['inputs'].shape) == \
        (shape.num_clips * shape.num_crops, ) + shape.input_shape(1)[1:]


def test_mmaction2_configs():
    x3d = clip_shape(load_config(
        'mmaction::recognition/x3d/x3d_s_13x6x1_facebook-kinetics400-rgb.py'))
    assert (x3d.frames, x3d.num_clips, x3d.short_side, x3d.crop,
            x3d.num_crops) == (13, 10, 182, 182, 3)
    # A 2D recognizer: its segments (1 frame each) form the input.
    tsm = clip_shape(load_config(
        'mmaction::recognition/tsm/'
        'tsm_imagenet-pretrained-r50_8xb16-1x1x8-50e_kinetics400-rgb.py'))
    assert tsm.format_shape == 'NCHW'
    assert tsm.input_shape(1) == (1, 8, 3, 224, 224)
    assert tsm.short_side == 256 and tsm.num_crops == 10


def _demo_cfg():
    return Config.fromfile(osp.join(REPO_ROOT,
                                    'configs/demo/stan_tiny_synthetic.py'))


def test_unknown_step_is_an_error_naming_it():
    cfg = _demo_cfg()
    pipeline = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
    pipeline.insert(3, dict(type='MyZoom', factor=2))
    cfg.test_dataloader.dataset.pipeline = pipeline
    with pytest.raises(UnknownPipelineStepError,
                       match=r"step 3 'MyZoom' .*unknown effect"):
        clip_shape(cfg)


def test_missing_sampling_or_size_is_an_error():
    cfg = _demo_cfg()
    steps = cfg.test_dataloader.dataset.pipeline
    cfg.test_dataloader.dataset.pipeline = [
        s for s in steps if s['type'] != 'UniformSample']
    with pytest.raises(ValueError, match='no frame-sampling step'):
        clip_shape(cfg)
    cfg.test_dataloader.dataset.pipeline = [
        s for s in steps if s['type'] != 'Resize']
    with pytest.raises(ValueError, match='neither resizes nor crops'):
        clip_shape(cfg)
    cfg.test_dataloader.dataset.pipeline = [
        dict(s, scale=0.5) if s['type'] == 'Resize' else s for s in steps]
    with pytest.raises(UnknownPipelineStepError, match='scale factor'):
        clip_shape(cfg)
    with pytest.raises(ValueError, match='no test_dataloader'):
        clip_shape(dict(model=cfg.model))


def test_wrapped_dataset_and_input_shape_layouts():
    cfg = _demo_cfg()
    inner = cfg.test_dataloader.dataset
    cfg.test_dataloader.dataset = dict(type='RepeatDataset', times=2,
                                       dataset=inner)
    assert clip_shape(cfg).frames == 8
    nchw = ClipShape(frames=5, num_clips=1, short_side=40, crop=32,
                     num_crops=1, format_shape='NCHW')
    assert nchw.input_shape(3) == (3, 5, 3, 32, 32)
