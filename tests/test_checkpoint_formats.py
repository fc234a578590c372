"""Weights in the formats users have: HuggingFace CLIP folders and files,
checkpoints of the authors' STAN code (converted with
tools/convert_checkpoint.py), our checkpoints as safetensors. Compared with
outputs the authors' code computed (tests/data/reference_stan_tiny)."""
import json
import os.path as osp
import shutil

import pytest
import torch
from conftest import REPO_ROOT, call_main

from stan_mmaction.models import CLIPTextEncoder, StanCLIPBackbone

DATA = osp.join(REPO_ROOT, 'tests', 'data', 'reference_stan_tiny')
HF = osp.join(DATA, 'hf_clip')
REFERENCE = osp.join(DATA, 'reference_stan.pth')
# tiny arch, K=2 STAN layers: the reference's sizes.
RETRIEVAL_CFG = osp.join(REPO_ROOT, 'configs', 'demo',
                         'stan_tiny_synthetic_retrieval.py')
RECOGNITION_CFG = osp.join(REPO_ROOT, 'configs', 'demo',
                           'stan_tiny_synthetic.py')


@pytest.fixture(scope='module')
def expected():
    return torch.load(osp.join(DATA, 'expected.pt'), weights_only=True)


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('conv') / 'stan_tiny.pth')
    res = convert([REFERENCE, out, '--config',
                   RETRIEVAL_CFG])
    assert res.returncode == 0, res.stderr[-3000:]
    return out, res.stdout


def convert(args):
    """tools/convert_checkpoint.py's main in this process (output and exit
    code as a subprocess has them)."""
    return call_main('tools/convert_checkpoint.py', args)


def close(a, b):
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_converted_reference_checkpoint_gives_the_reference_outputs(
        converted, expected):
    from stan_mmaction.apis import init_model
    path, stdout = converted
    assert 'Mapped ' in stdout and 'head.logit_scale: from the config' in \
        stdout
    model = init_model(RETRIEVAL_CFG, path)  # strict loading
    with torch.no_grad():
        close(model.encode_video(expected['video']),
              expected['video_embedding'])
        close(model.encode_text(expected['tokens']),
              expected['text_embedding'])


def test_hf_folder_for_both_towers(converted, expected):
    from stan_mmaction.apis import init_model
    backbone = StanCLIPBackbone(arch='tiny', num_stan_layers=0,
                                pretrained=HF).eval()
    text = CLIPTextEncoder('tiny', pretrained=HF).eval()
    model = init_model(RETRIEVAL_CFG, converted[0])
    with torch.no_grad():
        close(backbone(expected['video']), expected['clip_meanp_embedding'])
        close(text(expected['tokens']), model.encode_text(expected['tokens']))
    # The weights file alone is detected by its content.
    alone = StanCLIPBackbone(arch='tiny', num_stan_layers=0,
                             pretrained=osp.join(HF, 'model.safetensors'))
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, alone.state_dict()[key]), key


def test_hf_config_that_disagrees_with_arch_names_both(tmp_path):
    folder = tmp_path / 'hf'
    shutil.copytree(HF, folder)
    cfg = json.loads((folder / 'config.json').read_text())
    cfg['vision_config']['num_hidden_layers'] = 6
    (folder / 'config.json').write_text(json.dumps(cfg))
    with pytest.raises(ValueError,
                       match=r"does not match arch 'tiny': vision.layers: "
                       r'config.json 6 vs arch 4'):
        StanCLIPBackbone(arch='tiny', pretrained=str(folder))
    with pytest.raises(ValueError, match='config.json 64 vs arch 768'):
        CLIPTextEncoder('ViT-B/32', pretrained=HF)


def test_hf_to_openai_and_ours_to_safetensors(tmp_path, converted,
                                              expected):
    from safetensors.torch import load_file

    from stan_mmaction.apis import init_model
    openai = str(tmp_path / 'clip.pt')
    res = convert([HF, openai])
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'HuggingFace CLIP keys to' in res.stdout
    state = torch.load(openai, weights_only=True)['state_dict']
    assert 'visual.proj' in state and 'text_projection' in state
    backbone = StanCLIPBackbone(arch='tiny', num_stan_layers=0,
                                pretrained=openai).eval()
    with torch.no_grad():
        close(backbone(expected['video']), expected['clip_meanp_embedding'])

    shared = str(tmp_path / 'stan.safetensors')
    res = convert([converted[0], shared])
    assert res.returncode == 0, res.stderr[-3000:]
    ours = torch.load(converted[0], weights_only=True)['state_dict']
    theirs = load_file(shared)
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    model = init_model(RETRIEVAL_CFG, shared)
    with torch.no_grad():
        close(model.encode_video(expected['video']),
              expected['video_embedding'])


def test_backbone_only_for_recognition_fine_tuning(tmp_path, expected):
    from mmengine.runner import load_checkpoint

    from stan_mmaction.apis import init_model
    out = str(tmp_path / 'backbone.pth')
    res = convert([REFERENCE, out, '--config',
                   RETRIEVAL_CFG, '--backbone-only'])
    assert res.returncode == 0, res.stderr[-3000:]
    state = torch.load(out, weights_only=True)['state_dict']
    assert state and all(k.startswith('backbone.') for k in state)
    recognizer = init_model(RECOGNITION_CFG, random_weights=True)
    own = recognizer.state_dict()
    assert sorted(set(own) - set(state)) == sorted(
        k for k in own if k.startswith('cls_head.'))
    load_checkpoint(recognizer, out, strict=False)  # load_from's loader
    with torch.no_grad():
        close(recognizer.backbone(expected['video']),
              expected['video_embedding'])


def test_converter_refuses_what_it_cannot_place(tmp_path):
    state = torch.load(REFERENCE, weights_only=True)['state_dict']
    state['backbone.STAN_T_layers.0.extra_gate.weight'] = torch.ones(3)
    src = str(tmp_path / 'odd.pth')
    torch.save({'state_dict': state}, src)
    res = convert([src, str(tmp_path / 'o.pth'),
                   '--config', RETRIEVAL_CFG])
    assert res.returncode != 0
    assert 'STAN_T_layers.0.extra_gate' in res.stderr
    assert not (tmp_path / 'o.pth').exists()
    # The wrong model for the checkpoint: named, nothing written.
    res = convert([REFERENCE,
                   str(tmp_path / 'o.pth'), '--config',
                   osp.join(REPO_ROOT, 'configs', 'retrieval', 'stan',
                            'stan-attn_vit-base-p32-res224-clip-pre_'
                            '1x1x12_msrvtt-9k-rgb.py')])
    assert res.returncode != 0 and 'does not fit the model' in res.stderr
    res = convert([REFERENCE,
                   str(tmp_path / 'o.pth')])
    assert res.returncode != 0 and 'needs --config' in res.stderr
    assert not (tmp_path / 'o.pth').exists()
