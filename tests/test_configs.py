"""Every config loads and builds offline; the recipe details hold."""
import glob
import os.path as osp

import pytest
from conftest import REPO_ROOT
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from stan_mmaction.utils import build_model_without_weights

CONFIGS = sorted(
    osp.relpath(p, REPO_ROOT)
    for p in glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'),
                       recursive=True) if '_base_' not in p)


def load(rel):
    return Config.fromfile(osp.join(REPO_ROOT, rel))


@pytest.mark.parametrize('rel', CONFIGS)
def test_config_loads_and_model_builds(rel):
    cfg = load(rel)
    assert cfg.default_scope == 'mmaction'
    assert 'stan_mmaction' in cfg.custom_imports.imports
    init_default_scope('mmaction')
    model = build_model_without_weights(cfg.model)
    backbone = cfg.model.backbone
    default_k = 2 if 'demo/stan' in rel else 4
    assert model.backbone.num_stan_layers == backbone.get(
        'num_stan_layers', default_k)
    if cfg.model.type == 'StanVideoTextRetriever':
        assert model.text_encoder.out_dim == model.backbone.out_dim
        assert cfg.val_evaluator.type == 'VideoTextRetrievalMetric'
        return
    if cfg.model.cls_head.type == 'TextClassifierHead':
        assert model.cls_head.weight.shape == (model.cls_head.num_classes,
                                               model.backbone.out_dim)
    else:
        assert model.cls_head.fc_cls.in_features == model.backbone.out_dim
    assert model.cls_head.num_classes == (
        174 if 'ssv2' in rel else 400 if 'k400' in rel else 8)


def test_leaf_configs_say_only_what_differs():
    for rel in CONFIGS:
        code = [line for line in open(osp.join(REPO_ROOT, rel))
                if line.strip() and not line.lstrip().startswith('#')]
        if rel.startswith('configs/demo/stan_tiny'):
            continue  # the demo's base, with its own data and schedule
        assert len(code) <= 10, f'{rel} has {len(code)} lines of code'


def pipeline_types(pipeline):
    return [step['type'] for step in pipeline]


def test_ssv2_never_flips_and_k400_does():
    for rel in CONFIGS:
        cfg = load(rel)
        train = pipeline_types(cfg.train_dataloader.dataset.pipeline)
        if 'ssv2' in rel or 'demo' in rel:
            assert 'Flip' not in train, rel
        if 'k400' in rel:
            assert 'Flip' in train, rel


def test_recipe_frames_views_and_schedule():
    cfg = load('configs/stan_vitb16_k400.py')
    assert 'num_frames' not in cfg.model.backbone  # the pipeline's clip_len
    assert cfg.model.backbone.pretrained == 'openai'
    sample = cfg.test_dataloader.dataset.pipeline[1]
    assert sample == dict(type='UniformSample', clip_len=8, num_clips=4,
                          test_mode=True)
    assert 'ThreeCrop' in pipeline_types(cfg.test_dataloader.dataset.pipeline)
    assert cfg.model.data_preprocessor.mean == [122.771, 116.746, 104.093]
    assert cfg.model.data_preprocessor.std == [68.500, 66.632, 70.323]
    warmup, cosine = cfg.param_scheduler
    # Warm-up ends long before the run does; cosine covers the rest.
    assert warmup.end < cfg.train_cfg.max_epochs
    assert cosine.begin == warmup.end and cosine.end == \
        cfg.train_cfg.max_epochs
    assert cosine.T_max == cosine.end - cosine.begin and cosine.eta_min == 0
    assert cfg.optim_wrapper.clip_grad.max_norm == 5
    assert cfg.optim_wrapper.optimizer.betas == (0.9, 0.98)


def test_branch_gets_ten_times_clip_lr():
    cfg = load('configs/stan_vitb16_k400.py')
    init_default_scope('mmaction')
    cfg.model.backbone.arch = 'tiny'
    cfg.model.cls_head.in_channels = 32
    model = build_model_without_weights(cfg.model)
    optim_cfg = cfg.optim_wrapper
    optim_cfg.type = 'OptimWrapper'  # no AMP on CPU
    wrapper = build_optim_wrapper(model, optim_cfg)
    names = {id(p): n for n, p in model.named_parameters()}
    base = cfg.optim_wrapper.optimizer.lr
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            name = names[id(p)]
            expected = base * (10 if ('stan_branch' in name
                                      or 'cls_head' in name) else 1)
            assert group['lr'] == pytest.approx(expected), name
            if name.endswith('.bias') or '.ln_' in name or \
                    'embedding' in name:
                assert group['weight_decay'] == 0.0, name


def test_lr_mult_keys_validated():
    from stan_mmaction.engine import StanOptimWrapperConstructor
    with pytest.raises(TypeError, match='lr_mult_keys'):
        StanOptimWrapperConstructor(
            dict(optimizer=dict(type='AdamW', lr=1e-3)),
            dict(lr_mult_keys={'stan_branch': 'ten'}))


def test_retrieval_recipe():
    """Recipe (docs/architecture.md): 12 frames / 32 tokens (MSR-VTT,
    LSMDC), 64 / 77 with gradient checkpointing (DiDeMo); temperature 0.01
    (B/32), 0.02 (B/16); warm-up that ends, then cosine to 0 at the end of
    the run; grad clip; AMP."""
    expected = {
        'configs/stan_vitb32_msrvtt.py': (12, 32, 0.01, 4, False),
        'configs/stan_vitb16_msrvtt.py': (12, 32, 0.02, 4, False),
        'configs/clip_meanp_vitb32_msrvtt.py': (12, 32, 0.01, 0, False),
        'configs/stan_vitb32_didemo.py': (64, 77, 0.01, 4, True),
        'configs/stan_vitb32_lsmdc.py': (12, 32, 0.01, 4, False),
    }
    for rel, (frames, context, temp, k, ckpt) in expected.items():
        cfg = load(rel)
        model = cfg.model
        assert model.backbone.get('num_stan_layers', 4) == k, rel
        assert model.backbone.get('grad_checkpointing', False) == ckpt, rel
        assert model.text_encoder.get('grad_checkpointing', False) == ckpt
        assert model.text_encoder.arch == model.backbone.arch, rel
        assert model.text_encoder.pretrained == model.backbone.pretrained
        assert model.head.temperature == temp, rel
        for loader in (cfg.train_dataloader, cfg.test_dataloader):
            steps = {s['type']: s for s in loader.dataset.pipeline}
            assert steps['UniformSample']['clip_len'] == frames, rel
            assert steps['OpenCLIPTokenize']['context_length'] == context
            assert 'Flip' not in steps, rel
        warmup, cosine = cfg.param_scheduler
        assert 0 < warmup.end < cfg.train_cfg.max_epochs
        assert cosine.begin == warmup.end and cosine.end == \
            cfg.train_cfg.max_epochs and cosine.eta_min == 0
        assert cosine.T_max == cosine.end - cosine.begin
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
        assert cfg.optim_wrapper.clip_grad.max_norm == 5
        assert cfg.optim_wrapper.paramwise_cfg.lr_mult_keys == {
            'stan_branch': 10.0}


def test_metafile_lists_existing_configs_with_demo_results():
    import yaml
    with open(osp.join(REPO_ROOT, 'configs', 'metafile.yml')) as f:
        meta = yaml.safe_load(f)
    assert meta['Collections'][0]['Name'] == 'STAN'
    listed = [m['Config'] for m in meta['Models']]
    for path in listed:
        assert osp.isfile(osp.join(REPO_ROOT, path)), path
    assert len(set(listed)) == len(listed)
    # The demo results in the metafile are the README's measured ones.
    readme = open(osp.join(REPO_ROOT, 'README.md')).read()
    for model in meta['Models']:
        if model['Name'].endswith('_synthetic'):
            top1 = model['Results'][0]['Metrics']['Top 1 Accuracy']
            assert f'| {top1:.1f}% |' in readme, model['Name']


@pytest.mark.parametrize('rel', CONFIGS)
def test_clip_normalisation_is_the_one_of_the_clip_code(rel):
    """Configs are data and repeat CLIP's mean/std; they must equal
    stan_mmaction.models.CLIP_MEAN / CLIP_STD (the default of the retrieval
    data preprocessor)."""
    from stan_mmaction.models import CLIP_MEAN, CLIP_STD
    pre = load(rel).model.data_preprocessor
    if pre.type == 'RetrievalDataPreprocessor':
        init_default_scope('mmaction')
        from mmaction.registry import MODELS
        built = MODELS.build(pre).video
        mean, std = built.mean.flatten().tolist(), built.std.flatten().tolist()
    else:
        mean, std = pre.mean, pre.std
    assert mean == pytest.approx(CLIP_MEAN) and std == pytest.approx(CLIP_STD)
