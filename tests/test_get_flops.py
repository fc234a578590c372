"""tools/analysis_tools/get_flops.py counts attention through SDPA."""
import os.path as osp

import torch
from conftest import REPO_ROOT, call_main

from stan_mmaction.analysis import count_flops, flop_counter
from stan_mmaction.models.attention import fused_self_attention
from stan_mmaction.utils import strip_pretrained


def test_sdpa_attention_flops_hand_count():
    length, dim, heads = 10, 64, 4
    mha = torch.nn.MultiheadAttention(dim, heads, batch_first=True)
    x = torch.randn(1, length, dim)
    total, _ = count_flops(
        lambda t: fused_self_attention(t, mha.in_proj_weight,
                                       mha.in_proj_bias, mha.out_proj, heads),
        x)
    # QKV 2*L*D*3D + QK^T 2*L*L*D + AV 2*L*L*D + out 2*L*D*D
    assert total == 8 * length * dim**2 + 4 * length**2 * dim


def test_sdpa_backward_counted_on_cpu():
    q = torch.randn(1, 2, 6, 8, requires_grad=True)
    counter = flop_counter()
    with counter:
        torch.nn.functional.scaled_dot_product_attention(q, q, q).sum() \
            .backward()
    # torch's convention: forward 2 matmuls; backward 5 (QK^T recomputed,
    # then dV, dP, dQ, dK), each 2 * B*H*L*L*hd.
    assert counter.get_total_flops() == 7 * 2 * 2 * 6 * 6 * 8


def test_multihead_attention_fast_path_counted():
    length, dim, heads = 10, 64, 4
    mha = torch.nn.MultiheadAttention(dim, heads, batch_first=True).eval()
    x = torch.randn(3, length, dim)
    total, _ = count_flops(lambda t: mha(t, t, t, need_weights=False), x)
    assert total == 3 * (8 * length * dim**2 + 4 * length**2 * dim)


def test_tiny_clip_flops_match_hand_count():
    """K=0 (CLIP only): per frame, 4 blocks of 12*N*D^2 + 2*N^2*D MACs,
    the patch embedding and the projection."""
    from stan_mmaction.models import StanCLIPBackbone
    model = StanCLIPBackbone(arch='tiny', num_stan_layers=0).eval()
    frames, tokens, dim, patches = 8, 17, 64, 16
    per_frame = (4 * (12 * tokens * dim**2 + 2 * tokens**2 * dim) +
                 patches * 3 * 8 * 8 * dim + dim * 32)
    total, _ = count_flops(model, torch.randn(1, 3, frames, 32, 32))
    assert total == 2 * frames * per_frame


def test_cli_reports_params_and_flops():
    res = call_main('tools/analysis_tools/get_flops.py',
                    ['configs/demo/stan_tiny_synthetic.py'])
    assert res.returncode == 0, res.stderr
    assert 'Input shape: (1, 3, 8, 32, 32)' in res.stdout
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from stan_mmaction.utils import build_model_without_weights
    init_default_scope('mmaction')
    model = build_model_without_weights(Config.fromfile(
        osp.join(REPO_ROOT, 'configs/demo/stan_tiny_synthetic.py')).model)
    params = sum(p.numel() for p in model.parameters())
    assert f'Params: {params / 1e6:.2f} M' in res.stdout
    assert '| backbone.stan_branch |' in res.stdout
    assert res.value['params'] == params


def test_strip_pretrained_removes_every_weight_source():
    cfg = dict(backbone=dict(pretrained='openai', init_cfg=dict(
        type='Pretrained', checkpoint='x.pth')),
        heads=[dict(init_cfg=[dict(type='Normal')])],
        other=dict(pretrained2d=True))
    out = strip_pretrained(cfg)
    assert out['backbone'] == dict(pretrained=None, init_cfg=None)
    assert out['heads'][0]['init_cfg'] == [dict(type='Normal')]
    assert out['other']['pretrained2d'] is True
    assert cfg['backbone']['pretrained'] == 'openai'  # input untouched


def test_mmaction_package_config_paths_load():
    from stan_mmaction.utils import load_config
    cfg = load_config('mmaction::recognition/timesformer/'
                      'timesformer_divST_8xb8-8x32x1-15e_kinetics400-rgb.py')
    assert cfg.model.type == 'Recognizer3D'
    assert cfg.model.backbone.type == 'TimeSformer'


def test_cli_counts_the_video_tower_of_a_retrieval_config():
    res = call_main('tools/analysis_tools/get_flops.py',
                    ['configs/demo/stan_tiny_synthetic_retrieval.py'])
    assert res.returncode == 0, res.stderr[-2000:]
    assert 'FLOPs: 0.09 G' in res.stdout  # same video tower as the demo
    assert '| text_encoder |' not in res.stdout


def test_cli_multiplies_by_the_test_views_and_tabulates_several_configs():
    """Views from the config's test pipeline (clips x crops, an override
    included) multiply the one-view count; several configs give one
    table, one row each, in the order given."""
    tiny = 'configs/demo/stan_tiny_synthetic.py'
    one = call_main('tools/analysis_tools/get_flops.py', [tiny]).value
    assert one['views'] == 1 and one['flops_all_views'] == one['flops']
    res = call_main('tools/analysis_tools/get_flops.py', [
        tiny, 'configs/demo/stan_tiny_synthetic_retrieval.py',
        '--cfg-options', 'test_dataloader.dataset.pipeline.1.num_clips=3'])
    assert res.returncode == 0, res.stderr[-2000:]
    rec, ret = res.value
    assert (rec['clips'], rec['crops'], rec['views']) == (3, 1, 3)
    assert rec['flops'] == one['flops']
    assert rec['flops_all_views'] == 3 * one['flops']
    rows = [line for line in res.stdout.splitlines()
            if line.startswith('| stan_tiny')]
    assert [r.split(' | ')[0] for r in rows] == [
        '| stan_tiny_synthetic', '| stan_tiny_synthetic_retrieval']
    assert f"| 3 x 1 | {one['flops'] / 2e9:.1f} | " \
        f"{3 * one['flops'] / 2e9:.1f} |" in rows[0]
    assert '| backbone.stan_branch |' not in res.stdout  # table only
