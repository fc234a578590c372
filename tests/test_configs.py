"""Every config loads and builds offline; the recipe details hold."""
import glob
import os.path as osp

import pytest
import torch
from conftest import REPO_ROOT
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from stan_mmaction.utils import build_model_without_weights, clip_shape

# Our model configs; configs/compare/ holds MMAction2's own models
# (tests/test_compare.py).
CONFIGS = sorted(
    osp.relpath(p, REPO_ROOT)
    for p in glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'),
                       recursive=True)
    if '_base_' not in p and '/compare/' not in p)

K400_B16 = ('configs/recognition/stan/'
            'stan-attn_vit-base-p16-res224-clip-pre_1x1x8_k400-rgb.py')


#: The short names beside the folders (the design card's
#: configs/stan_vitb16_k400.py): each inherits one config unchanged.
SHORT_NAMES = sorted(rel for rel in CONFIGS if osp.dirname(rel) == 'configs')


def load(rel):
    return Config.fromfile(osp.join(REPO_ROOT, rel))


def test_short_names_are_their_configs_unchanged():
    assert SHORT_NAMES == ['configs/stan_vitb16_k400.py',
                           'configs/stan_vitb16_ssv2.py',
                           'configs/stan_vitb32_msrvtt.py']
    for rel in SHORT_NAMES:
        cfg = load(rel)
        (base, ) = Config._get_base_files(osp.join(REPO_ROOT, rel))
        target = load(osp.join('configs', base))
        assert cfg.to_dict() == target.to_dict(), rel


@pytest.mark.parametrize('rel', [
    pytest.param(rel, marks=pytest.mark.slow) if 'vit-large' in rel else rel
    for rel in CONFIGS])  # ViT-L/14 builds take seconds: not in test-quick
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
        174 if 'sthv2' in rel or 'ssv2' in rel else
        400 if 'k400' in rel else 8)


def test_leaf_configs_say_only_what_differs():
    for rel in CONFIGS:
        code = [line for line in open(osp.join(REPO_ROOT, rel))
                if line.strip() and not line.lstrip().startswith('#')]
        if rel.startswith('configs/demo/stan_tiny'):
            continue  # the demo's base, with its own data and schedule
        assert len(code) <= 10, f'{rel} has {len(code)} lines of code'


def pipeline_types(pipeline):
    return [step['type'] for step in pipeline]


def test_recognition_datasets_check_labels_against_the_head():
    """Every recognition dataset knows num_classes (labels outside [0,
    num_classes) stop loading), and it is the head's."""
    for rel in CONFIGS:
        cfg = load(rel)
        if cfg.model.type == 'StanVideoTextRetriever':
            continue
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader'):
            dataset = cfg[loader].dataset
            assert dataset.num_classes == cfg.model.cls_head.num_classes, \
                (rel, loader)


def test_ssv2_never_flips_and_k400_does():
    for rel in CONFIGS:
        cfg = load(rel)
        train = pipeline_types(cfg.train_dataloader.dataset.pipeline)
        if 'sthv2' in rel or 'ssv2' in rel or 'demo' in rel:
            assert 'Flip' not in train, rel
        if 'k400' in rel:
            assert 'Flip' in train, rel


def test_recipe_frames_views_and_schedule():
    cfg = load(K400_B16)
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
    cfg = load(K400_B16)
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


def test_bias_rule_covers_fused_biases_and_leaves_other_rules_alone():
    """``bias_decay_mult`` reaches ``in_proj_bias`` (MMEngine's own rule
    matches only ``bias``); a norm's bias keeps ``norm_decay_mult``; a
    matching ``custom_keys`` entry still wins."""
    from stan_mmaction.engine import StanOptimWrapperConstructor
    model = torch.nn.ModuleDict(dict(
        attn=torch.nn.MultiheadAttention(8, 2),
        norm=torch.nn.LayerNorm(8),
        extra=torch.nn.MultiheadAttention(8, 2)))
    wrapper = StanOptimWrapperConstructor(
        dict(type='OptimWrapper',
             optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.1)),
        dict(bias_decay_mult=0.0, norm_decay_mult=0.5,
             custom_keys={'extra.in_proj_bias': dict(decay_mult=2.0)}))(
                 model)
    names = {id(p): n for n, p in model.named_parameters()}
    decay = {names[id(g['params'][0])]: g['weight_decay']
             for g in wrapper.optimizer.param_groups}
    assert decay['attn.in_proj_bias'] == 0.0
    assert decay['attn.out_proj.bias'] == 0.0
    assert decay['attn.in_proj_weight'] == 0.1
    assert decay['norm.bias'] == pytest.approx(0.05)
    assert decay['norm.weight'] == pytest.approx(0.05)
    assert decay['extra.in_proj_bias'] == pytest.approx(0.2)


def test_lr_mult_keys_validated():
    from stan_mmaction.engine import StanOptimWrapperConstructor
    with pytest.raises(TypeError, match='lr_mult_keys'):
        StanOptimWrapperConstructor(
            dict(optimizer=dict(type='AdamW', lr=1e-3)),
            dict(lr_mult_keys={'stan_branch': 'ten'}))


def docs_tables(path, first_header):
    """Every markdown table whose header starts with ``first_header``: a
    list of tables, each a list of rows (dicts of strings)."""
    lines = open(osp.join(REPO_ROOT, path), encoding='utf-8').read().split(
        '\n')
    tables = []
    for start, line in enumerate(lines):
        if not line.startswith(f'| {first_header} |'):
            continue
        header = [c.strip() for c in line.strip('|').split('|')]
        rows = []
        for row in lines[start + 2:]:
            if not row.startswith('|'):
                break
            rows.append(dict(zip(header, (c.strip() for c in
                                          row.strip('|').split('|')))))
        tables.append(rows)
    return tables


def docs_table(path, first_header):
    """Rows of the first markdown table whose header starts with
    ``first_header``, as dicts of strings."""
    return docs_tables(path, first_header)[0]


RETRIEVAL_CONFIGS = sorted(
    rel for rel in CONFIGS if not rel.startswith('configs/demo/')
    and rel not in SHORT_NAMES
    and load(rel).model.type == 'StanVideoTextRetriever')


def test_retrieval_configs_follow_docs_recipes():
    """docs/recipes.md's retrieval table is what every shipped retrieval
    config does: frames, tokens, epochs, warm-up, the curve after it, lr,
    weight decay, temperature, batch and test resize; plus the settings
    shared by all (gradient scale, clipping, AMP, branch lr, no flip)."""
    rows = docs_table('docs/recipes.md', 'config')
    assert sorted(r['config'] for r in rows) == RETRIEVAL_CONFIGS
    for row in rows:
        rel = row['config']
        cfg = load(rel)
        model = cfg.model
        for loader in (cfg.train_dataloader, cfg.test_dataloader):
            steps = {s['type']: s for s in loader.dataset.pipeline}
            assert steps['UniformSample']['clip_len'] == int(row['frames'])
            assert steps['OpenCLIPTokenize']['context_length'] == int(
                row['tokens']), rel
            assert 'Flip' not in steps, rel
        test_steps = {s['type']: s
                      for s in cfg.test_dataloader.dataset.pipeline}
        assert test_steps['Resize']['scale'] == (
            -1, int(row['test short side'])), rel
        assert test_steps['CenterCrop']['crop_size'] == 224, rel
        assert cfg.train_cfg.max_epochs == int(row['epochs']), rel
        warmup, *after = cfg.param_scheduler
        assert warmup.type == 'LinearLR' and warmup.begin == 0, rel
        assert warmup.end == int(row['warm-up epochs']), rel
        assert warmup.start_factor == float(row['warm-up start']), rel
        assert warmup.convert_to_iter_based, rel
        if row['after warm-up'] == 'none':
            assert after == [], rel
        else:
            (cosine, ) = after
            assert row['after warm-up'] == f'cosine T_max {cosine.T_max}'
            assert cosine.type == 'CosineAnnealingLR' and \
                cosine.eta_min == 0, rel
            assert cosine.begin == warmup.end, rel
            assert cosine.end == cfg.train_cfg.max_epochs, rel
        optimizer = cfg.optim_wrapper.optimizer
        assert optimizer.lr == float(row['base lr']), rel
        assert optimizer.weight_decay == float(row['weight decay']), rel
        assert model.head.temperature == float(row['temperature']), rel
        assert cfg.train_dataloader.batch_size == int(row['batch/GPU'])
        assert cfg.auto_scale_lr.base_batch_size == 8 * int(
            row['batch/GPU']), rel
        # Shared by all: the authors' gradient scale and clipping, AMP,
        # betas, the branch at 10x.
        assert model.head.reference_gpus == 8, rel
        assert cfg.optim_wrapper.clip_grad.max_norm == 5, rel
        if cfg.get('strategy', {}).get('type') == 'StanFSDPStrategy':
            # bf16 compute through FSDP's mixed precision, not AMP
            assert cfg.optim_wrapper.type == 'OptimWrapper', rel
            mixed = cfg.strategy.model_wrapper.mixed_precision
            assert mixed.param_dtype == 'bfloat16', rel
        else:
            assert cfg.optim_wrapper.type == 'AmpOptimWrapper', rel
        assert optimizer.betas == (0.9, 0.98) and optimizer.eps == 1e-8
        assert cfg.optim_wrapper.paramwise_cfg.lr_mult_keys == {
            'stan_branch': 10.0}, rel
        # The two towers from the same CLIP; K and checkpointing.
        assert model.text_encoder.arch == model.backbone.arch, rel
        assert model.text_encoder.pretrained == model.backbone.pretrained
        k = 0 if 'meanp' in rel else 4
        assert model.backbone.get('num_stan_layers', 4) == k, rel
        long_clip = int(row['frames']) > 12
        assert model.backbone.get('grad_checkpointing', False) == long_clip
        assert model.text_encoder.get('grad_checkpointing',
                                      False) == long_clip


def _expected_group(name, module, base_lr, base_wd):
    """(lr, weight decay) the recipe gives parameter ``name``: 10x lr for
    the branch and a new head; no decay for norms, every bias, embeddings
    and the logit scale."""
    last = name.rsplit('.', 1)[-1]
    no_decay = (isinstance(module, torch.nn.LayerNorm)
                or last.endswith('bias') or 'embedding' in name
                or last == 'logit_scale')
    fast = 'stan_branch' in name or 'cls_head' in name
    return base_lr * (10 if fast else 1), 0.0 if no_decay else base_wd


B16_TRAINED = [rel for rel in CONFIGS if 'vit-base-p16' in rel
               and 'zeroshot' not in rel]


@pytest.mark.parametrize('rel', B16_TRAINED)
def test_parameter_groups_of_the_b16_configs(rel):
    """Every parameter of the full-size B/16 models (built without weights)
    gets the lr and weight decay of the recipe; the fused in_proj_bias of
    every attention layer (CLIP's, the branch's, the text tower's) is not
    decayed; a frozen classifier (the authors' head) has no group."""
    cfg = load(rel)
    init_default_scope('mmaction')
    model = build_model_without_weights(cfg.model)
    optim_cfg = cfg.optim_wrapper
    optim_cfg.type = 'OptimWrapper'  # no AMP on CPU
    wrapper = build_optim_wrapper(model, optim_cfg)
    base_lr = optim_cfg.optimizer.lr
    base_wd = optim_cfg.optimizer.weight_decay
    names = {id(p): n for n, p in model.named_parameters()}
    seen, counts = set(), {}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            name = names[id(p)]
            module = model.get_submodule(name.rsplit('.', 1)[0])
            lr, wd = _expected_group(name, module, base_lr, base_wd)
            assert group['lr'] == pytest.approx(lr), name
            assert group['weight_decay'] == wd, name
            seen.add(name)
            key = ('10x' if lr > base_lr else '1x', 'decay' if wd else '-')
            counts[key] = counts.get(key, 0) + 1
    assert seen == set(names.values())
    in_proj = [n for n in names.values() if n.endswith('in_proj_bias')]
    text_blocks = 12 if cfg.model.type == 'StanVideoTextRetriever' else 0
    k = cfg.model.backbone.get('num_stan_layers', 4)
    per_layer = 2 if k and cfg.model.backbone.get('temporal',
                                                  'attn') == 'attn' else 1
    assert len(in_proj) == 12 + k * per_layer + text_blocks
    if cfg.model.get('cls_head', {}).get('trainable') is False:
        assert not any('cls_head' in n for n in seen)
    # CLIP's decayed matrices: 4 per block (in_proj, out_proj, c_fc,
    # c_proj), the patch conv and proj.
    assert counts[('1x', 'decay')] == 4 * 12 + 2 + (
        4 * 12 + 1 if text_blocks else 0)


def _metafiles():
    """The metafiles model-index.yml imports, as (folder, parsed yaml)."""
    import yaml
    index = osp.join(REPO_ROOT, 'stan_mmaction', '.mim', 'model-index.yml')
    with open(index) as f:
        imports = yaml.safe_load(f)['Import']
    out = []
    for rel in imports:
        with open(osp.join(REPO_ROOT, rel)) as f:
            out.append((osp.dirname(rel), yaml.safe_load(f)))
    return out


def test_metafile_per_folder_lists_its_configs_with_demo_results():
    metafiles = _metafiles()
    # One metafile per config folder, each listing only its own folder's
    # configs, each in its folder's collection (the short names are
    # their configs').
    folders = {osp.dirname(rel) for rel in CONFIGS if rel not in SHORT_NAMES}
    assert {folder for folder, _ in metafiles} == folders
    models = []
    for folder, meta in metafiles:
        names = {c['Name'] for c in meta['Collections']}
        assert len(names) == 1
        for m in meta['Models']:
            assert osp.dirname(m['Config']) == folder, m['Config']
            assert m['In Collection'] in names
            assert m['Name'] == osp.splitext(osp.basename(m['Config']))[0]
        models += meta['Models']
    listed = [m['Config'] for m in models]
    for path in listed:
        assert osp.isfile(osp.join(REPO_ROOT, path)), path
    assert len(set(listed)) == len(listed)
    # Epochs and per-GPU batch in the metafile are the configs' own.
    for model in models:
        cfg = load(model['Config'])
        info = model['Metadata']
        if 'Epochs' in info:
            assert info['Epochs'] == cfg.train_cfg.max_epochs, model['Name']
        if 'Batch Size' in info:
            assert info['Batch Size'] == cfg.train_dataloader.batch_size, \
                model['Name']
    # The demo results in the metafile are the README's measured ones.
    readme = open(osp.join(REPO_ROOT, 'README.md')).read()
    for model in models:
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


#: The paper's test protocol (1 clip x 3 crops) over a recognition config:
#: docs/recipes.md's documented override (step 1: the sampling step).
PAPER_VIEWS = {'test_dataloader.dataset.pipeline.1.num_clips': 1}


def test_what_to_expect_rows_name_configs_with_their_k_frames_and_views():
    """docs/recipes.md, "What to expect": every row of the paper's tables
    names a shipped config (built by test_config_loads_and_model_builds)
    whose STAN layers, frames, views (the paper's 1 x 3 by the documented
    override), variant and backbone are those of the row."""
    retrieval, recognition = docs_tables('docs/recipes.md', 'dataset')
    assert len(retrieval) == 16 and len(recognition) == 6  # the paper's
    for row in retrieval + recognition:
        rel = row['config']
        assert rel in CONFIGS, rel
        cfg = load(rel)
        views = row['views']
        if views.endswith('(paper)'):
            cfg.merge_from_dict(PAPER_VIEWS)
            views = views[:-len('(paper)')].strip()
        shape = clip_shape(cfg)
        assert f'{shape.num_clips} x {shape.num_crops}' == views, rel
        assert shape.frames == int(row['frames']), rel
        backbone = cfg.model.backbone
        assert backbone.get('num_stan_layers', 4) == int(row['K']), rel
        paper_row = row['paper row']
        if 'meanP' not in paper_row:
            variant = 'conv' if paper_row.startswith('conv') else 'attn'
            assert backbone.get('temporal', 'attn') == variant, rel
        arch = backbone.get('arch', 'ViT-B/16')
        assert ('B/32' in paper_row) == (arch == 'ViT-B/32'), rel
    # The paper's protocol: 1 clip x 3 crops for every recognition row;
    # SSv2 with 6 STAN layers, K400 with 4.
    for row in recognition:
        assert row['views'] == '1 x 3 (paper)'
        assert int(row['K']) == (6 if row['dataset'] == 'SSv2' else 4)


def test_flops_table_is_the_tools_output():
    """docs/recipes.md's FLOPs table quotes get_flops.py's table in
    docs/benchmark/flops/paper_protocol.md (printed under the paper's
    protocol), and its ratios to the paper's figures are computed right."""
    printed = {r['config']: r for r in docs_table(
        'docs/benchmark/flops/paper_protocol.md', 'config')}
    recognition = sorted(osp.splitext(osp.basename(rel))[0]
                         for rel in CONFIGS
                         if rel.startswith('configs/recognition/'))
    assert sorted(printed) == recognition  # every recognition config
    rows = docs_tables('docs/recipes.md', 'config')[2]
    assert len(rows) == 6
    for row in rows:
        name = osp.splitext(osp.basename(row['config']))[0]
        tool = printed[name]
        assert tool['views'] == row['views'] == '1 x 3'
        assert row['GMACs all views (ours)'] == tool['GMACs all views']
        ratio = float(tool['GMACs all views']) / float(row['paper'])
        assert f'{ratio:.3f}' == row['ours / paper'], name
        cfg = load(row['config'])
        assert cfg.model.backbone.get('num_stan_layers', 4) == int(row['K'])
        assert clip_shape(cfg).frames == int(row['frames'])
