"""The attention paths and the fused QuickGELU MLP give the reference
outputs: fp32 within 1e-5, bf16 within the rounding of bf16 (stated per
test: the error of the path against an fp64 reference is at most twice
the error of the plain bf16 computation, plus 1e-3)."""
import copy

import pytest
import torch
import torch.nn as nn
from open_clip.transformer import QuickGELU, ResidualAttentionBlock

from stan_mmaction.models import attention as attention_mod
from stan_mmaction.models.activations import (FusedQuickGELUMlp,
                                              quick_gelu_mlp, use_fused_mlp)
from stan_mmaction.models.attention import (attend, fused_self_attention,
                                            resolve_attention,
                                            set_attention_path)
from stan_mmaction.models.backbone import StanCLIPBackbone


def reference_attention(q, k, v):
    """softmax(q k^T / sqrt(d)) v in fp64."""
    q, k, v = q.double(), k.double(), v.double()
    w = (q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5).softmax(-1)
    return w @ v


def qkv_views(n, length, heads, dim, dtype, seed=0):
    """q, k, v as the model makes them: strided views of one tensor."""
    g = torch.Generator().manual_seed(seed)
    qkv = torch.randn(n, length, 3, heads, dim, generator=g).to(dtype)
    return qkv.permute(2, 0, 3, 1, 4).unbind(0)


@pytest.mark.parametrize('path', ['sdpa', 'matmul'])
@pytest.mark.parametrize('shape', [(4, 50, 4, 16), (98, 8, 4, 16)],
                         ids=['frame', 'time'])
def test_attention_paths_give_the_reference(path, shape):
    q, k, v = qkv_views(*shape, torch.float32)
    ref = reference_attention(q, k, v)
    out = attend(q, k, v, path)
    assert out.shape == ref.shape and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)
    # bf16: no worse than twice plain bf16 arithmetic (+1e-3)
    qb, kb, vb = (t.bfloat16() for t in (q, k, v))
    ref_b = reference_attention(qb, kb, vb)
    plain = ((qb @ kb.transpose(-2, -1)) / shape[-1] ** 0.5).softmax(-1) @ vb
    out_b = attend(qb, kb, vb, path)
    assert out_b.dtype == torch.bfloat16
    err = (out_b.double() - ref_b).abs().max().item()
    plain_err = (plain.double() - ref_b).abs().max().item()
    assert err <= 2 * plain_err + 1e-3, (err, plain_err)


@pytest.mark.parametrize('path', ['sdpa', 'matmul'])
def test_attention_of_the_first_queries_only(path):
    """``num_queries=n``: the first n rows of full self-attention, and
    their gradients, with the other tokens still giving keys and values."""
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(32, 4, batch_first=True)
    args = (mha.in_proj_weight, mha.in_proj_bias, mha.out_proj, 4, path)
    x = torch.randn(2, 3, 10, 32, requires_grad=True)
    full = fused_self_attention(x, *args)[..., :2, :]
    full.square().sum().backward()
    want = [x.grad.clone(), mha.in_proj_weight.grad.clone(),
            mha.in_proj_bias.grad.clone()]
    x.grad = mha.in_proj_weight.grad = mha.in_proj_bias.grad = None
    out = fused_self_attention(x, *args, num_queries=2)
    assert out.shape == (2, 3, 2, 32)
    torch.testing.assert_close(out, full, atol=1e-5, rtol=1e-5)
    out.square().sum().backward()
    got = [x.grad, mha.in_proj_weight.grad, mha.in_proj_bias.grad]
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-4)
    # the other tokens matter (keys and values), not only the first two
    y = x.detach().clone()
    y[..., 5:, :] += 1
    assert not torch.allclose(fused_self_attention(y, *args, num_queries=2),
                              out.detach())


@pytest.mark.parametrize('path', ['sdpa', 'matmul'])
def test_attention_paths_give_the_same_gradients(path):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(32, 4, batch_first=True)
    x = torch.randn(3, 10, 32, requires_grad=True)
    ref = mha(x, x, x, need_weights=False)[0]
    ref.square().sum().backward()
    ref_grads = [x.grad.clone(), mha.in_proj_weight.grad.clone()]
    x.grad, mha.in_proj_weight.grad = None, None
    out = fused_self_attention(x, mha.in_proj_weight, mha.in_proj_bias,
                               mha.out_proj, 4, path)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    out.square().sum().backward()
    for got, want in zip([x.grad, mha.in_proj_weight.grad], ref_grads):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_auto_reads_the_measured_table(monkeypatch):
    native = attention_mod.NATIVE_BF16_CPU
    monkeypatch.setattr(attention_mod, 'AUTO_PATHS', {
        (native, torch.bfloat16, 'frame', True): 'matmul'})
    bf16 = torch.bfloat16
    for kind, want in ((native, 'matmul'), ('cpu', 'sdpa')):
        monkeypatch.setattr(attention_mod, '_CPU_KIND', kind)
        assert resolve_attention('auto', 'cpu', bf16, 'frame', True) == want
        assert resolve_attention('auto', 'cpu', bf16, 'frame') == 'sdpa'
        assert resolve_attention('auto', 'cpu', bf16, 'time', True) == \
            'sdpa'
    assert resolve_attention('auto', 'cuda', torch.float16, 'frame') == \
        'sdpa'
    assert resolve_attention('sdpa', 'cpu', bf16, 'frame', True) == 'sdpa'
    with pytest.raises(ValueError, match="attention path 'flash'; choose"):
        resolve_attention('flash', 'cpu', torch.float32, 'frame')


def test_the_measured_table_names_known_paths_and_sites():
    for key, path in attention_mod.AUTO_PATHS.items():
        kind, dtype, site, backward = key
        assert path in attention_mod.ATTENTION_PATHS
        assert site in attention_mod.ATTENTION_SITES
        assert isinstance(dtype, torch.dtype) and isinstance(backward, bool)


@pytest.mark.parametrize('grad', [False, True])
def test_auto_follows_the_table_in_the_model(monkeypatch, grad):
    """With the table saying 'matmul' for the temporal site only, a
    backbone's attention calls go where the table says."""
    calls = []
    real = attention_mod.attend

    def spy(q, k, v, path):
        calls.append((q.shape[-2], path))
        return real(q, k, v, path)
    monkeypatch.setattr(attention_mod, 'attend', spy)
    monkeypatch.setattr(attention_mod, 'AUTO_PATHS', {
        (attention_mod.device_kind('cpu'), torch.float32, 'time', grad):
        'matmul'})
    torch.manual_seed(0)
    net = StanCLIPBackbone(arch='tiny', num_stan_layers=1)
    x = torch.randn(1, 3, 3, 32, 32)
    with torch.set_grad_enabled(grad):
        net(x)
    frames = [path for length, path in calls if length == 3]
    others = [path for length, path in calls if length != 3]
    assert frames == ['matmul'] and set(others) == {'sdpa'}


def clip_mlp(width=32, seed=0):
    torch.manual_seed(seed)
    return ResidualAttentionBlock(width, 4, act_layer=QuickGELU).mlp


def test_fused_mlp_equals_open_clips_in_value_and_gradient():
    mlp = clip_mlp()
    fused = use_fused_mlp(copy.deepcopy(mlp))
    assert type(fused) is FusedQuickGELUMlp
    assert fused.state_dict().keys() == mlp.state_dict().keys()
    x = torch.randn(2, 5, 7, 32)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    ref, out = mlp(x1), fused(x2)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    with torch.inference_mode():  # SiLU in place: the same values
        torch.testing.assert_close(fused(x), ref.detach(), atol=1e-5,
                                   rtol=1e-5)
    ref.square().sum().backward()
    out.square().sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad, atol=1e-5, rtol=1e-4)
    for (name, p), q in zip(fused.named_parameters(), mlp.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-5, rtol=1e-4,
                                   msg=name)


def test_fused_mlp_in_bf16_and_under_autocast():
    mlp = clip_mlp().double()
    x = torch.randn(64, 32, dtype=torch.float64)
    ref = mlp(x)
    plain = copy.deepcopy(mlp).bfloat16()(x.bfloat16())
    out = quick_gelu_mlp(copy.deepcopy(mlp).bfloat16(), x.bfloat16())
    assert out.dtype == torch.bfloat16
    err = (out.double() - ref).abs().max().item()
    plain_err = (plain.double() - ref).abs().max().item()
    assert err <= 2 * plain_err + 1e-3, (err, plain_err)
    mlp32 = mlp.float()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        auto = quick_gelu_mlp(mlp32, x.float())
        auto_ref = mlp32(x.float())
    assert auto.dtype == auto_ref.dtype == torch.bfloat16
    assert (auto.double() - ref).abs().max().item() <= \
        2 * (auto_ref.double() - ref).abs().max().item() + 1e-3


def test_other_mlps_are_left_alone():
    torch.manual_seed(0)
    gelu = ResidualAttentionBlock(32, 4, act_layer=nn.GELU).mlp
    assert type(use_fused_mlp(gelu)) is nn.Sequential


@pytest.mark.parametrize('temporal', ['attn', 'conv'])
def test_backbone_paths_agree(temporal):
    torch.manual_seed(0)
    net = StanCLIPBackbone(arch='tiny', num_stan_layers=2, temporal=temporal,
                           attention='sdpa').eval()
    paths = {m.attention_path for m in net.modules()
             if hasattr(m, 'attention_path')}
    assert paths == {'sdpa'}
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        a = net(x)
        set_attention_path(net, 'matmul')
        b = net(x)
        set_attention_path(net, 'auto')
        c = net(x)
    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(c, a, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="attention path 'fast'"):
        StanCLIPBackbone(arch='tiny', num_stan_layers=1, attention='fast')
    with pytest.raises(ValueError, match="attention path 'fast'"):
        set_attention_path(net, 'fast')
