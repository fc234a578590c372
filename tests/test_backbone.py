"""StanCLIPBackbone against open_clip, the paper's initialisation, gradients,
time modelling, loading and bad input (tiny arch unless stated)."""
import copy

import pytest
import torch
from mmaction.registry import MODELS

from stan_mmaction.models import (BRANCH_KEY, CheckpointMismatchError,
                                  StanCLIPBackbone, build_clip)

T = 4


def make(tiny_clip_file=None, **kwargs):
    kwargs.setdefault('arch', 'tiny')
    if tiny_clip_file is not None:
        kwargs.setdefault('pretrained', tiny_clip_file[0])
    return StanCLIPBackbone(**kwargs)


def video(b=2, t=T, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, t, size, size, generator=g)


def encode_frames(clip, x):
    """open_clip's encode_image on every frame: (B, T, embed_dim)."""
    with torch.no_grad():
        return torch.stack(
            [clip.encode_image(x[:, :, i]) for i in range(x.shape[2])], 1)


def randomize_temporal(model, seed=0):
    """Give the zero-initialised temporal_fc layers non-zero weights."""
    g = torch.Generator().manual_seed(seed)
    for layer in model.stan_branch.layers:
        fc = layer.temporal.temporal_fc
        with torch.no_grad():
            fc.weight.copy_(torch.randn(fc.weight.shape, generator=g) * 0.2)
            fc.bias.copy_(torch.randn(fc.bias.shape, generator=g) * 0.2)


# --- equivalence with open_clip --------------------------------------------
def test_meanp_equals_open_clip_encode_image(tiny_clip_file):
    _, clip = tiny_clip_file
    model = make(tiny_clip_file, num_stan_layers=0).eval()
    x = video()
    with torch.no_grad():
        out = model(x)
    ref = encode_frames(clip, x).mean(dim=1)
    assert out.shape == (2, 32)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_clip_path_inside_stan_equals_open_clip(tiny_clip_file):
    _, clip = tiny_clip_file
    model = make(tiny_clip_file, num_stan_layers=2).eval()
    x = video()
    frames = x.transpose(1, 2).flatten(0, 1)
    with torch.no_grad():
        tokens, hidden, _, _ = model.forward_frames(x)
        per_frame = model._head(tokens[:, 0]).unflatten(0, (2, T))
        # The outputs the branch reads are CLIP's own layers 3 and 4.
        _, inter = clip.visual.transformer.forward_intermediates(
            clip.visual._embeds(frames), indices=[2, 3])
    torch.testing.assert_close(per_frame, encode_frames(clip, x), atol=1e-5,
                               rtol=0)
    assert len(hidden) == 2
    for ours, theirs in zip(hidden, inter):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_openai_jit_archive_loads_only_when_trusted(tiny_clip_file,
                                                    tmp_path, monkeypatch):
    from stan_mmaction.utils.checkpoint import UnsafeCheckpointError
    _, clip = tiny_clip_file
    traced = torch.jit.trace_module(
        copy.deepcopy(clip), {'encode_image': torch.randn(1, 3, 32, 32)},
        check_trace=False)
    path = tmp_path / 'jit.pt'
    traced.save(str(path))
    monkeypatch.delenv('STAN_MMACTION_TRUST_CHECKPOINTS', raising=False)
    with pytest.raises(UnsafeCheckpointError,
                       match='TorchScript archive.*STAN_MMACTION_TRUST_'
                       'CHECKPOINTS=1 python tools/convert_checkpoint.py'):
        make(num_stan_layers=0, pretrained=str(path))
    monkeypatch.setenv('STAN_MMACTION_TRUST_CHECKPOINTS', '1')
    model = make(num_stan_layers=0, pretrained=str(path)).eval()
    x = video()
    with torch.no_grad():
        out = model(x)
    torch.testing.assert_close(out, encode_frames(clip, x).mean(1),
                               atol=1e-5, rtol=0)


def test_training_checkpoint_with_module_prefix_loads(tiny_clip_file,
                                                      tmp_path):
    _, clip = tiny_clip_file
    path = tmp_path / 'ckpt.pt'
    torch.save({'epoch': 3, 'state_dict': {
        'module.' + k: v for k, v in clip.state_dict().items()}}, path)
    model = make(num_stan_layers=0, pretrained=str(path)).eval()
    torch.testing.assert_close(model.visual.proj, clip.visual.proj)


# --- initialisation ----------------------------------------------------------
@pytest.mark.parametrize('k', [1, 2, 4])
def test_spatial_modules_are_copies_of_clip_layers(tiny_clip_file, k):
    model = make(tiny_clip_file, num_stan_layers=k)
    blocks = model.visual.transformer.resblocks
    num_layers = len(blocks)
    for i, layer in enumerate(model.stan_branch.layers):
        # STAN layer i (0-based) copies CLIP layer L-K+1+i (1-based).
        clip_block = blocks[num_layers - k + i]
        clip_state = {n: p for n, p in clip_block.state_dict().items()}
        spatial_state = layer.spatial.state_dict()
        assert set(spatial_state) == set(clip_state)
        for name, value in clip_state.items():
            assert torch.equal(spatial_state[name], value), name
            # a copy, not shared storage
            assert spatial_state[name].data_ptr() != value.data_ptr()


@pytest.mark.parametrize('temporal', ['attn', 'conv'])
def test_temporal_modules_start_as_identity(temporal):
    model = make(temporal=temporal)
    patches = torch.randn(2, T, 16, 64)
    for layer in model.stan_branch.layers:
        fc = layer.temporal.temporal_fc
        assert torch.count_nonzero(fc.weight) == 0
        assert torch.count_nonzero(fc.bias) == 0
        assert torch.equal(layer.temporal(patches, (4, 4)), patches)


def test_drop_path_rates_linspace():
    model = make(num_stan_layers=4, drop_path_rate=0.3)
    rates = [layer.spatial.drop_path.drop_prob if hasattr(
        layer.spatial.drop_path, 'drop_prob') else 0.0
        for layer in model.stan_branch.layers]
    assert rates == pytest.approx([0.0, 0.1, 0.2, 0.3])


# --- gradients ---------------------------------------------------------------
@pytest.mark.parametrize('temporal', ['attn', 'conv'])
def test_every_parameter_gets_a_gradient(temporal):
    torch.manual_seed(0)
    model = make(temporal=temporal, num_temporal_embeddings=T).train()
    randomize_temporal(model)
    model(video()).square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize('temporal', ['attn', 'conv'])
def test_grad_checkpointing_same_output_and_grads(temporal):
    torch.manual_seed(0)
    plain = make(temporal=temporal, drop_path_rate=0.0).train()
    randomize_temporal(plain)
    ckpt = copy.deepcopy(plain)
    ckpt.set_grad_checkpointing(True)
    assert ckpt.grad_checkpointing and ckpt.stan_branch.grad_checkpointing
    x = video()
    out_a, out_b = plain(x), ckpt(x)
    torch.testing.assert_close(out_a, out_b)
    out_a.square().sum().backward()
    out_b.square().sum().backward()
    grads_b = dict(ckpt.named_parameters())
    for name, p in plain.named_parameters():
        torch.testing.assert_close(p.grad, grads_b[name].grad, msg=name)


@pytest.mark.parametrize('temporal', ['attn', 'conv'])
def test_last_layer_computes_the_cls_only(temporal):
    """The branch's last layer computes only what is read (the CLS): same
    output and gradients as computing every token, and its MLP sees the
    CLS rows alone."""
    torch.manual_seed(0)
    model = make(temporal=temporal, drop_path_rate=0.0).train()
    randomize_temporal(model)
    layers = model.stan_branch.layers
    rows = []
    hooks = [layer.spatial.mlp.register_forward_hook(
        lambda m, args, out: rows.append(args[0].shape[:-1]))
        for layer in layers]
    x = video()
    out = model(x)
    for h in hooks:
        h.remove()
    b, t, p = x.shape[0], T, 16  # tiny: 32 px / patch 8 -> 4 x 4
    # every layer: its CLS, then (all but the last) its patches
    assert rows == [(b,), (b, t, p)] * (len(layers) - 1) + [(b,)]
    full = copy.deepcopy(model)
    last = full.stan_branch.layers[-1]
    last.forward = lambda c, pt, g, cls_only=False: type(last).forward(
        last, c, pt, g, False)
    ref = full(x)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)
    out.square().sum().backward()
    ref.square().sum().backward()
    grads = dict(full.named_parameters())
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[name].grad, atol=1e-6,
                                   rtol=1e-4, msg=name)


# --- time --------------------------------------------------------------------
@pytest.mark.parametrize('temporal', ['attn', 'conv'])
def test_reversing_frames_changes_stan_not_meanp(tiny_clip_file, temporal):
    x = video()
    meanp = make(tiny_clip_file, num_stan_layers=0).eval()
    stan = make(tiny_clip_file, temporal=temporal).eval()
    randomize_temporal(stan)
    with torch.no_grad():
        torch.testing.assert_close(meanp(x), meanp(x.flip(2)), atol=1e-6,
                                   rtol=0)
        assert (stan(x) - stan(x.flip(2))).abs().max() > 1e-3


def test_where_order_information_enters(tiny_clip_file):
    """Self-attention over time is permutation-equivariant, so STAN-attn
    sees frame order only through the temporal embedding; the 3x3x3 conv
    sees it by itself."""
    x = video()
    attn = make(tiny_clip_file, temporal='attn').eval()
    conv = make(tiny_clip_file, temporal='conv').eval()
    for model in (attn, conv):
        randomize_temporal(model)
        with torch.no_grad():
            model.stan_branch.temporal_embedding.weight.zero_()
    with torch.no_grad():
        torch.testing.assert_close(attn(x), attn(x.flip(2)), atol=1e-5,
                                   rtol=0)
        assert (conv(x) - conv(x.flip(2))).abs().max() > 1e-3


# --- registry, names, options ------------------------------------------------
def test_built_from_registry_and_branch_key():
    model = MODELS.build(dict(type='StanCLIPBackbone', arch='tiny'))
    branch = [n for n, _ in model.named_parameters() if BRANCH_KEY in n]
    clip = [n for n, _ in model.named_parameters() if BRANCH_KEY not in n]
    assert len(branch) > 0
    assert all(n.startswith('stan_branch.') for n in branch)
    assert all(n.startswith('visual.') for n in clip)
    assert 'visual.transformer.resblocks.0.attn.in_proj_weight' in clip


def test_custom_temporal_module_by_config():
    model = make(temporal=dict(type='STANTemporalConv', kernel_size=1))
    assert model.stan_branch.layers[0].temporal.conv.kernel_size == (1, 1, 1)


def test_out_feature_width():
    model = make(out='feature').eval()
    assert model(video()).shape == (2, 64)


def test_frozen_stages_hold_after_train():
    model = make(frozen_stages=2)
    model.train()
    v = model.visual
    assert not v.conv1.weight.requires_grad
    assert not v.class_embedding.requires_grad
    for block in v.transformer.resblocks[:2]:
        assert not block.training
        assert not any(p.requires_grad for p in block.parameters())
    for block in v.transformer.resblocks[2:]:
        assert block.training
        assert all(p.requires_grad for p in block.parameters())
    assert all(p.requires_grad for p in model.stan_branch.parameters())
    model.train()
    assert not v.transformer.resblocks[0].training
    all_frozen = make(frozen_stages=5).train()
    assert not any(p.requires_grad for p in all_frozen.visual.parameters())


def test_more_frames_than_table_interpolates():
    model = make(num_temporal_embeddings=4).eval()
    with torch.no_grad():
        out = model(video(t=10))
    assert out.shape == (2, 32) and torch.isfinite(out).all()
    table = model.stan_branch.temporal_embedding.weight
    emb = model.stan_branch.temporal_embed(10)
    torch.testing.assert_close(emb[0], table[0])
    torch.testing.assert_close(emb[-1], table[-1])


def test_other_resolution_at_run_time():
    model = make().eval()
    with torch.no_grad():
        out = model(video(size=48))
    assert out.shape == (2, 32) and torch.isfinite(out).all()


def test_checkpoint_of_other_resolution_is_resized_on_load(tmp_path):
    big = build_clip(dict(embed_dim=32, vision=dict(
        image_size=48, patch_size=8, width=64, layers=4, head_width=16)))
    path = tmp_path / 'clip48.pt'
    torch.save(big.state_dict(), path)
    model = make(pretrained=str(path), num_stan_layers=0)
    pos = model.visual.positional_embedding
    assert pos.shape == (17, 64)
    torch.testing.assert_close(pos[0], big.visual.positional_embedding[0])


# --- loading errors ----------------------------------------------------------
def test_wrong_shapes_fail_naming_keys(tmp_path):
    wide = build_clip(dict(embed_dim=32, vision=dict(
        image_size=32, patch_size=8, width=48, layers=4, head_width=16)))
    path = tmp_path / 'wide.pt'
    torch.save(wide.state_dict(), path)
    with pytest.raises(CheckpointMismatchError) as err:
        make(pretrained=str(path))
    msg = str(err.value)
    assert 'visual.conv1.weight: checkpoint (48, 3, 8, 8) vs model ' \
        '(64, 3, 8, 8)' in msg
    assert 'Missing keys: none' in msg


def test_non_clip_checkpoint_fails_naming_keys(tmp_path):
    path = tmp_path / 'resnet.pt'
    torch.save({'conv1.weight': torch.zeros(3), 'fc.bias': torch.zeros(2)},
               path)
    with pytest.raises(CheckpointMismatchError) as err:
        make(pretrained=str(path))
    msg = str(err.value)
    assert 'visual.class_embedding' in msg and 'Missing keys' in msg


def test_extra_layer_in_checkpoint_is_unexpected(tiny_clip_file, tmp_path):
    state = dict(tiny_clip_file[1].state_dict())
    state['visual.transformer.resblocks.9.ln_1.weight'] = torch.ones(64)
    path = tmp_path / 'extra.pt'
    torch.save(state, path)
    with pytest.raises(CheckpointMismatchError,
                       match=r'Unexpected keys: visual\.transformer\.'
                       r'resblocks\.9\.ln_1\.weight'):
        make(pretrained=str(path))


def test_missing_file_and_unknown_tag():
    with pytest.raises(ValueError, match="known tags: none"):
        make(pretrained='no/such/file.pt')
    with pytest.raises(ValueError, match="'openai'"):
        make(arch='ViT-B/32', pretrained='not_a_tag')


# --- bad input ---------------------------------------------------------------
def test_unknown_arch_and_options_list_choices():
    with pytest.raises(ValueError, match=r"Unknown arch 'ViT-H/99'.*"
                       r"'ViT-B/16', 'ViT-B/32', 'ViT-L/14', 'tiny'"):
        make(arch='ViT-H/99')
    with pytest.raises(ValueError, match=r"temporal='lstm'.*\['attn', "
                       r"'conv'\]"):
        make(temporal='lstm')
    with pytest.raises(ValueError, match="out='logits'"):
        make(out='logits')
    with pytest.raises(ValueError, match='num_stan_layers=5'):
        make(num_stan_layers=5)


@pytest.mark.parametrize('shape,match', [
    ((2, 3, 32, 32), r'expects \(B, 3, T, H, W\) input, got shape '
     r'\(2, 3, 32, 32\)'),
    ((2, 1, 4, 32, 32), r'got shape \(2, 1, 4, 32, 32\)'),
    ((2, 3, 4, 30, 32), 'divisible by the patch size 8, got H=30, W=32'),
    ((1, 3, 20, 32, 32), 'T=20 frames exceeds max_frames=16'),
])
def test_bad_input_shapes(shape, match):
    model = make(max_frames=16)
    with pytest.raises(ValueError, match=match):
        model(torch.zeros(shape))


# --- full size ---------------------------------------------------------------
def test_full_size_parameter_counts():
    """ViT-B/16 CLIP visual ~86M; STAN-attn K=4 adds ~40.2M, STAN-conv
    ~94.5M (counted from the layer definitions, docs/architecture.md);
    within 2%."""
    def count(m):
        return sum(p.numel() for p in m.parameters())

    attn = StanCLIPBackbone(arch='ViT-B/16', temporal='attn')
    assert count(attn.visual) == pytest.approx(86e6, rel=0.02)
    assert count(attn.stan_branch) == pytest.approx(40.2e6, rel=0.02)
    layer = attn.stan_branch.layers[0]
    assert count(layer.spatial) == pytest.approx(7.09e6, rel=0.02)
    assert count(layer.temporal) == pytest.approx(2.95e6, rel=0.02)
    del attn
    conv = StanCLIPBackbone(arch='ViT-B/16', temporal='conv')
    assert count(conv.stan_branch) == pytest.approx(94.5e6, rel=0.02)
    assert count(conv.stan_branch.layers[0].temporal) == pytest.approx(
        16.5e6, rel=0.02)


@pytest.mark.parametrize('kwargs, error, message', [
    (dict(num_stan_layers='2'), TypeError,
     "num_stan_layers must be an int, got str '2'"),
    (dict(num_stan_layers=5), ValueError,
     r'num_stan_layers=5 must be in \[0, 4\]'),
    (dict(max_frames='1024'), TypeError,
     "max_frames must be an int, got str '1024'"),
    (dict(max_frames=0), ValueError, r'max_frames=0 must be in \[1, inf\]'),
    (dict(drop_path_rate='0.1'), TypeError, 'drop_path_rate must be a '
     'number'),
    (dict(drop_path_rate=1.5), ValueError, r'drop_path_rate=1.5 must be in'),
    (dict(frozen_stages=True), TypeError, 'frozen_stages must be an int, '
     'got bool'),
    (dict(num_temporal_embeddings=0), ValueError,
     'num_temporal_embeddings=0 must be'),
    (dict(grad_checkpointing='yes'), TypeError, 'grad_checkpointing must be '
     'a bool'),
    (dict(num_frames=8), TypeError, "unexpected keyword argument "
     "'num_frames'"),
])
def test_constructor_arguments_are_checked_by_name(kwargs, error, message):
    """Config typos fail in __init__, naming the argument (before: '2' for
    K failed deep inside, '1024' for max_frames at the first forward)."""
    with pytest.raises(error, match=message):
        StanCLIPBackbone(arch='tiny', **kwargs)
