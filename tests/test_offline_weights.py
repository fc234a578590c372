"""open_clip tags (``pretrained='openai'``) offline: a cached file is used
without any network; otherwise one line within seconds saying where to
put the weights (open_clip's own download retried for 75 s). The network
is never touched: connections are refused by the test."""
import os.path as osp
import time

import pytest
from conftest import REPO_ROOT, call_main

from stan_mmaction.models import clip_downloads

ZERO_SHOT = osp.join(REPO_ROOT, 'configs', 'recognition', 'stan',
                     'clip-zeroshot_vit-base-p16-res224-clip-pre_1x1x8_'
                     'k400-rgb.py')
B16_OPENAI = dict(
    url='https://openaipublic.azureedge.net/clip/models/5806/ViT-B-16.pt',
    hf_hub='timm/vit_base_patch16_clip_224.openai/')


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No host answers, and the caches (HuggingFace's, open_clip's) are
    empty folders of the test's; returns the list of hosts tried."""
    tried = []

    def refuse(address, timeout=None, *args, **kwargs):
        tried.append((address, timeout))
        raise OSError(101, 'Network is unreachable')

    from huggingface_hub import constants
    monkeypatch.setattr(clip_downloads.socket, 'create_connection', refuse)
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(tmp_path / 'hub'))
    monkeypatch.setattr(clip_downloads, 'URL_CACHE', str(tmp_path / 'clip'))
    return tried


def test_zero_shot_offline_fails_in_seconds_saying_where(offline,
                                                         tmp_path):
    """The config's own K400 lists, tiny, in the folder it runs from (the
    data are checked first)."""
    from _shipped import write_tiny_data
    from mmengine.config import Config
    write_tiny_data(Config.fromfile(ZERO_SHOT), str(tmp_path))
    start = time.time()
    res = call_main('tools/test.py', [ZERO_SHOT, 'none', '--work-dir',
                                      str(tmp_path / 'work')],
                    cwd=str(tmp_path))
    elapsed = time.time() - start
    assert res.returncode == 1
    (line, ) = res.stderr.strip().splitlines()
    assert line.startswith(
        "Error: pretrained='openai' (ViT-B-16): the weights are not cached "
        'and cannot be downloaded here (huggingface.co: Network is '
        'unreachable; openaipublic.azureedge.net: Network is unreachable). '
        'Put them in the HuggingFace cache '
        '(timm/vit_base_patch16_clip_224.openai, file '
        'open_clip_model.safetensors or open_clip_pytorch_model.bin) or '
        f'{tmp_path}/clip/ViT-B-16.pt'), line
    assert "pretrained='/path/to/weights'" in line
    # One attempt per host, each bounded; nothing retried.
    assert [a for a, _ in offline] == [('huggingface.co', 443),
                                       ('openaipublic.azureedge.net', 443)]
    assert all(t == clip_downloads.PROBE_TIMEOUT for _, t in offline)
    assert elapsed < 30  # the model build; the refusal itself is instant


def test_hf_hub_offline_is_respected(offline, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    with pytest.raises(clip_downloads.PretrainedUnavailableError,
                       match='openaipublic.azureedge.net: Network'):
        clip_downloads.tag_weights_file('ViT-B-16', 'openai', B16_OPENAI)
    assert [a for a, _ in offline] == [('openaipublic.azureedge.net', 443)]
    with pytest.raises(clip_downloads.PretrainedUnavailableError,
                       match='HF_HUB_OFFLINE is set'):
        clip_downloads.tag_weights_file('ViT-B-16', 'x', dict(hf_hub='a/b/'))


def test_cached_files_are_used_without_network(offline, tmp_path):
    """The HuggingFace cache's layout (models--ORG--NAME/snapshots/REV,
    refs/main naming REV), then open_clip's URL cache."""
    repo = tmp_path / 'hub' / 'models--timm--vit_base_patch16_clip_224.openai'
    (repo / 'refs').mkdir(parents=True)
    (repo / 'refs' / 'main').write_text('abc123')
    snap = repo / 'snapshots' / 'abc123'
    snap.mkdir(parents=True)
    (snap / 'open_clip_pytorch_model.bin').write_bytes(b'weights')
    assert clip_downloads.tag_weights_file(
        'ViT-B-16', 'openai', B16_OPENAI) == str(
            snap / 'open_clip_pytorch_model.bin')
    (snap / 'open_clip_model.safetensors').write_bytes(b'weights')
    assert clip_downloads.cached_file(B16_OPENAI).endswith('.safetensors')
    # Only the URL's file cached.
    (tmp_path / 'clip').mkdir()
    (tmp_path / 'clip' / 'ViT-B-16.pt').write_bytes(b'weights')
    assert clip_downloads.cached_file(dict(B16_OPENAI, hf_hub='')) == str(
        tmp_path / 'clip' / 'ViT-B-16.pt')
    assert offline == []  # no connection attempted
