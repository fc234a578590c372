"""tools/analysis_tools/benchmark.py on tiny configs, and the optimised paths
(bf16 cast, torch.compile, SDPA regrouping) against the plain ones."""
import json
import os
import os.path as osp
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO_ROOT, call_main, run_python

from stan_mmaction.models import StanCLIPBackbone
from stan_mmaction.models.attention import (fused_self_attention,
                                            resolve_attention)

# A recognizer (mean pooling) and a retriever (STAN): both forward paths of
# the tool; each config costs ~3 fresh processes of memory probes.
TINY = [osp.join(REPO_ROOT, 'configs', 'demo', name) for name in (
    'clip_meanp_tiny_synthetic.py', 'stan_tiny_synthetic_retrieval.py')]


@pytest.mark.slow
def test_benchmark_tool_writes_table_json_and_plots(tmp_path):
    out = tmp_path / 'bench'
    # In this process (the memory probes start their own, fresh one).
    res = call_main('tools/analysis_tools/benchmark.py', [
        *TINY, '--frames', '4', '8', '--train-batch', '2',
        '--train-amp', 'bf16', '--grad-checkpointing', '--repeats', '2',
        '--warmup', '1', '--threads', '1', '--retrieval-sizes', '200',
        '--out-dir', str(out)])
    assert res.returncode == 0, res.stderr[-3000:]
    results = json.loads((out / 'results.json').read_text())
    names = [r['model'] for r in results['inference']]
    assert names == ['clip_meanp_tiny_synthetic',
                     'stan_tiny_synthetic_retrieval']
    meanp, stan = results['inference'][:2]
    # Parameters: the tiny CLIP visual tower, plus the branch for STAN.
    visual = StanCLIPBackbone(arch='tiny', num_stan_layers=0)
    head = 32 * 8 + 8
    assert meanp['params'] == sum(p.numel()
                                  for p in visual.parameters()) + head
    assert stan['params'] > meanp['params']
    assert stan['gflops'] > meanp['gflops'] > 0
    for row in results['inference']:
        assert row['seconds'] > 0 and len(row['runs']) == 2
        assert row['clips_per_s'] == pytest.approx(1 / row['seconds'])
    ratio = results['ratios'][0]
    assert ratio['flops_ratio'] == pytest.approx(stan['gflops'] /
                                                 meanp['gflops'])
    assert results['matmul']['fp32']['gflops_per_s'] > 0
    assert [r['frames'] for r in
            results['frames_sweep']['stan_tiny_synthetic_retrieval']] == \
        [4, 8]
    train = results['training'][1]
    assert train['seconds'] > 0 and train['ckpt_seconds'] > 0
    assert train['amp'] == 'bf16'  # the forward under bf16 autocast
    assert [r['n'] for r in results['retrieval_eval']] == [200]
    assert results['retrieval_eval'][0]['peak_extra_bytes'] > 0
    table = (out / 'results.md').read_text()
    assert f"| stan_tiny_synthetic_retrieval | {stan['params'] / 1e6:.2f} " \
        f"| {stan['gflops']:.1f} | 1 | fp32 |" in table
    assert 'Matmul rate: fp32' in table and res.stdout.strip() == \
        table.strip()
    for png in ('time_vs_frames.png', 'retrieval_eval.png'):
        assert (out / png).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_sdpa_regrouping_equals_multihead_attention():
    """The fused path on a strided (time-major) view equals PyTorch's
    nn.MultiheadAttention on a contiguous copy."""
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(64, 4, batch_first=True).eval()
    patches = torch.randn(2, 5, 9, 64)  # (B, T, P, D)
    view = patches.transpose(1, 2)  # (B, P, T, D), not contiguous
    ours = fused_self_attention(view, mha.in_proj_weight, mha.in_proj_bias,
                                mha.out_proj, 4)
    flat = view.reshape(-1, 5, 64)
    ref = mha(flat, flat, flat, need_weights=False)[0].view(2, 9, 5, 64)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def _tiny(**kwargs):
    torch.manual_seed(0)
    model = StanCLIPBackbone(arch='tiny', drop_path_rate=0.0,
                             **kwargs).eval()
    with torch.no_grad():  # non-trivial temporal modules
        for name, p in model.named_parameters():
            if 'temporal_fc' in name:
                p.normal_(0, 0.05)
    return model


@pytest.mark.parametrize('temporal', ['attn', 'conv'])
def test_bf16_cast_model_matches_fp32(temporal):
    model = _tiny(temporal=temporal)
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        ref = model(x)
        low = model.to(torch.bfloat16)(x.bfloat16()).float()
    assert F.cosine_similarity(ref, low).min() > 0.99


@pytest.mark.slow
def test_torch_compile_matches_eager():
    model = _tiny()
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        ref = model(x)
        out = torch.compile(model)(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_attention_benchmark_times_every_path_at_the_model_shapes(tmp_path):
    res = call_main('tools/analysis_tools/benchmark_attention.py', [
        '--arch', 'tiny', '--batch', '1', '--frames', '3', '--size', '32',
        '--dtypes', 'fp32', 'bf16', '--repeats', '1',
        '--out-dir', str(tmp_path)])
    assert res.returncode == 0, res.stderr[-3000:]
    rows = json.loads((tmp_path / 'results.json').read_text())['rows']
    # tiny: patch 8 -> a 4x4 grid, width 64 / head width 16 -> 4 heads
    shapes = {r['site']: r['shape'] for r in rows}
    assert shapes == {'frame': [3, 17, 4, 16], 'time': [16, 3, 4, 16]}
    assert len(rows) == 2 * 2 * 2  # sites x dtypes x modes
    for r in rows:
        assert set(r['seconds']) == {'sdpa', 'matmul'}
        assert r['fastest'] == min(r['seconds'], key=r['seconds'].get)
        assert r['auto'] == resolve_attention(
            'auto', 'cpu', {'fp32': torch.float32,
                            'bf16': torch.bfloat16}[r['dtype']],
            r['site'], r['mode'] == 'training')
    table = (tmp_path / 'results.md').read_text()
    assert '| frame | 3, 17, 4, 16 | fp32 | inference |' in table
    assert table == res.stdout
    bad = call_main('tools/analysis_tools/benchmark_attention.py', [
        '--arch', 'tiny', '--size', '30', '--out-dir', str(tmp_path / 'x')])
    assert bad.returncode != 0 and 'not a multiple of the patch size 8' \
        in bad.stderr


def test_hf_reference_without_transformers_fails_before_measuring(
        tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'transformers', None)  # not installed
    out = tmp_path / 'bench'
    res = call_main('tools/analysis_tools/benchmark.py', [
        *TINY, '--hf-reference', '--out-dir', str(out)])
    assert res.returncode != 0
    assert '--hf-reference needs transformers installed' in res.stderr
    assert not out.exists()  # nothing measured, nothing written


@pytest.mark.parametrize('kwargs', [dict(temporal='conv'),
                                    dict(num_stan_layers=0)],
                         ids=['stan-conv', 'mean-pooling'])
def test_hf_reference_is_of_stan_attn_only(kwargs):
    """Other backbones are refused by name (before transformers is
    needed), and the benchmark's side-by-side leaves them out."""
    from stan_mmaction.analysis.hf_reference import (hf_reference_from,
                                                     is_stan_attn)
    net = StanCLIPBackbone(arch='tiny', **kwargs)
    assert not is_stan_attn(net)
    assert is_stan_attn(StanCLIPBackbone(arch='tiny'))
    with pytest.raises(ValueError, match='the HF reference is of STAN-attn'):
        hf_reference_from(net)


HF_CODE = '''
import json, torch
import stan_mmaction
from stan_mmaction.models import StanCLIPBackbone
from stan_mmaction.analysis.hf_reference import hf_reference_from, side_by_side
torch.manual_seed(0)
net = StanCLIPBackbone(arch='tiny', num_stan_layers=2).eval()
for p in net.stan_branch.parameters():  # not the zero-init identity
    p.data.normal_(0, 0.05)
ref = hf_reference_from(net)
attn = ref.clip.vision_model.encoder.layers[0].self_attn
x = torch.randn(2, 3, 4, 32, 32)
with torch.no_grad():
    ours, theirs = net(x), ref(x)
rows = side_by_side(net, x, ['fp32', 'bf16'], repeats=1)
print(json.dumps(dict(
    diff=(ours - theirs).abs().max().item(), scale=ours.abs().max().item(),
    attn=type(attn).__name__, impl=ref.clip.config._attn_implementation,
    shape=list(theirs.shape), rows=rows)))
'''


@pytest.mark.slow
def test_hf_reference_is_the_same_model_on_transformers(transformers_dir):
    """The side-by-side's other path: HF's CLIPVisionModel (eager) plus
    the branch as the authors run it gives our backbone's embedding."""
    res = run_python(HF_CODE, env_extra=dict(PYTHONPATH=os.pathsep.join(
        [transformers_dir, REPO_ROOT])))
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out['impl'] == 'eager' and out['attn'] == 'CLIPAttention'
    assert out['shape'] == [2, 32]
    assert out['scale'] > 0.1 and out['diff'] < 1e-5
    assert [r['dtype'] for r in out['rows']] == ['fp32', 'bf16']
    fp32, bf16 = out['rows']
    assert fp32['max_abs_diff'] < 1e-5 and bf16['max_abs_diff'] < 0.1
    assert fp32['speedup'] == pytest.approx(fp32['hf_s'] / fp32['ours_s'])


def test_training_step_uses_the_configs_optimizer(monkeypatch):
    """The benchmark's training step steps the optimizer the config trains
    with (``optim_wrapper.optimizer``), and the weights move."""
    from mmengine.config import Config

    from stan_mmaction.analysis import cases
    case = cases.ModelCase(TINY[1])
    want = Config.fromfile(TINY[1]).optim_wrapper.optimizer
    assert case.optimizer_cfg == want
    built = []

    def build(cfg, params):
        built.append(real(cfg, params))
        return built[-1]

    real = cases.build_optimizer
    monkeypatch.setattr(cases, 'build_optimizer', build)
    trainable = [p for p in case.model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trainable]
    case.train_step(2, checkpointing=False)()
    (optim, ) = built
    assert type(optim) is torch.optim.AdamW
    group = optim.param_groups[0]
    for key in ('lr', 'betas', 'eps', 'weight_decay', 'fused'):
        assert group[key] == want.get(key, group[key]), key
    assert sum(len(g['params']) for g in optim.param_groups) == len(trainable)
    assert any(not torch.equal(a, p) for a, p in zip(before, trainable))
