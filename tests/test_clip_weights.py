"""``pretrained=`` -> state dict, shared by the visual and the text tower:
files (torch and safetensors), open_clip tags (their download replaced by a
local file: nothing is fetched in tests), quick_gelu defaults."""
import pytest
import torch

import stan_mmaction.models.clip_weights as clip_weights
from stan_mmaction.models import (ARCHS, CLIPTextEncoder, StanCLIPBackbone,
                                  resolve_pretrained)

# The tiny sizes under open_clip's ViT-B-32 name, so its pretrained tags
# ('openai', 'laion2b_s34b_b79k', ...) are valid for it.
TINY_AS_B32 = dict(ARCHS['tiny'], open_clip_name='ViT-B-32')


@pytest.fixture
def fake_download(monkeypatch, tiny_clip_file):
    """open_clip's download of a tag's weights returns the tiny checkpoint
    (nothing cached, a host answers: no network is touched); the tag
    configs asked for are recorded."""
    from stan_mmaction.models import clip_downloads
    asked = []
    monkeypatch.setattr(clip_downloads, 'cached_file', lambda cfg: None)
    monkeypatch.setattr(clip_downloads, 'unreachable', lambda cfg: None)

    def download(cfg, *args, **kwargs):
        asked.append(cfg)
        return tiny_clip_file[0]

    monkeypatch.setattr(clip_weights.open_clip, 'download_pretrained',
                        download)
    return asked


def test_none_and_file(tiny_clip_file):
    path, clip = tiny_clip_file
    assert resolve_pretrained('tiny', None) == (None, True, 'random')
    assert resolve_pretrained('tiny', None, quick_gelu=False)[1] is False
    state, quick_gelu, source = resolve_pretrained('tiny', path)
    assert quick_gelu is True and source == path
    assert state.keys() == clip.state_dict().keys()


def test_safetensors_file_loads_like_the_torch_file(tmp_path,
                                                    tiny_clip_file):
    from safetensors.torch import save_file
    path, clip = tiny_clip_file
    st = tmp_path / 'clip.safetensors'
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()},
              str(st))
    a = StanCLIPBackbone(arch='tiny', pretrained=path,
                         num_stan_layers=0).state_dict()
    b = StanCLIPBackbone(arch='tiny', pretrained=str(st),
                         num_stan_layers=0).state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_tag_reads_the_downloaded_file_for_both_towers(fake_download,
                                                       tiny_clip_file):
    path, clip = tiny_clip_file
    # 'openai' weights use QuickGELU; a LAION tag does not.
    _, quick_gelu, source = resolve_pretrained(TINY_AS_B32, 'openai')
    assert quick_gelu is True and source == 'ViT-B-32 openai'
    _, quick_gelu, _ = resolve_pretrained(TINY_AS_B32, 'laion2b_s34b_b79k')
    assert quick_gelu is False
    assert [c.get('quick_gelu', False) for c in fake_download] == \
        [True, False]

    backbone = StanCLIPBackbone(arch=TINY_AS_B32, pretrained='openai',
                                num_stan_layers=0).eval()
    text = CLIPTextEncoder(TINY_AS_B32, pretrained='openai').eval()
    x = torch.randn(1, 3, 2, 32, 32)
    tokens = torch.zeros(2, 77, dtype=torch.long)
    tokens[:, 0], tokens[:, 3] = 49406, 49407
    tokens[:, 1:3] = torch.tensor([[320, 1125], [518, 2368]])
    with torch.no_grad():
        ref_video = torch.stack([clip.encode_image(x[:, :, i])
                                 for i in range(2)]).mean(0)
        torch.testing.assert_close(backbone(x), ref_video, rtol=1e-5,
                                   atol=1e-5)
        torch.testing.assert_close(text(tokens), clip.encode_text(tokens),
                                   rtol=1e-5, atol=1e-5)


def test_unknown_tag_lists_the_known_ones(fake_download):
    with pytest.raises(ValueError, match="known tags: .*'openai'"):
        resolve_pretrained(TINY_AS_B32, 'no_such_tag')
    with pytest.raises(ValueError, match='known tags: none'):
        resolve_pretrained('tiny', 'openai')
    assert fake_download == []


def test_text_encoder_grad_checkpointing_switch(tiny_clip_file):
    encoder = CLIPTextEncoder('tiny', pretrained=tiny_clip_file[0])
    assert encoder.text.transformer.grad_checkpointing is False
    encoder.set_grad_checkpointing()
    assert encoder.text.transformer.grad_checkpointing is True
    ref = CLIPTextEncoder('tiny', pretrained=tiny_clip_file[0])
    tokens = torch.randint(1, 49000, (3, 16))
    tokens[:, -1] = 49407
    encoder.train(), ref.train()
    out, out_ref = encoder(tokens), ref(tokens)
    torch.testing.assert_close(out, out_ref)
    out.sum().backward()
    out_ref.sum().backward()
    grads = dict(ref.named_parameters())
    for name, p in encoder.named_parameters():
        torch.testing.assert_close(p.grad, grads[name].grad, msg=name)
