"""Zero-shot and text-initialised recognition heads."""
import pytest
import torch
import torch.nn.functional as F

from stan_mmaction.datasets import OpenCLIPTokenize
from stan_mmaction.models import (CLASS_NAME_ONLY, TextClassifierHead,
                                  read_class_names)

TEMPLATES = ('a video of a person {}.', 'a clip of {}.')


def make_head(path, trainable=False, names=('running', 'jumping rope',
                                            'cooking')):
    return TextClassifierHead(
        num_classes=len(names), in_channels=32, class_names=list(names),
        text_encoder=dict(type='CLIPTextEncoder', arch='tiny',
                          pretrained=path),
        templates=TEMPLATES, trainable=trainable)


def test_logits_are_scaled_cosine_to_prompt_embeddings(tiny_clip_file):
    path, clip = tiny_clip_file
    head = make_head(path)
    names = ['running', 'jumping rope', 'cooking']
    with torch.no_grad():
        rows = []
        for name in names:
            tokens = OpenCLIPTokenize(77).tokenize(
                [t.format(name) for t in TEMPLATES])
            emb = F.normalize(clip.encode_text(tokens), dim=-1).mean(0)
            rows.append(F.normalize(emb, dim=-1))
        classifier = torch.stack(rows)
    video = torch.randn(4, 32)
    expected = 100 * F.normalize(video, dim=-1) @ classifier.t()
    torch.testing.assert_close(head(video), expected, rtol=1e-4, atol=1e-4)
    assert not any(p.requires_grad for p in head.parameters())
    # A video embedding equal to a class's text embedding scores it top.
    assert head(classifier).argmax(1).tolist() == [0, 1, 2]


def test_trainable_classifier_starts_from_text_and_learns(tiny_clip_file):
    path, _ = tiny_clip_file
    fixed, head = make_head(path), make_head(path, trainable=True)
    torch.testing.assert_close(head.weight.detach(), fixed.weight)
    video = torch.randn(4, 32)
    loss = F.cross_entropy(head(video), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0


def test_class_names_file_and_errors(tmp_path, tiny_clip_file):
    path, _ = tiny_clip_file
    names = tmp_path / 'label_map.txt'
    names.write_text('abseiling\nair_drumming\n\n2 answering questions\n')
    assert read_class_names(str(names)) == [
        'abseiling', 'air drumming', 'answering questions']
    with pytest.raises(ValueError, match='3 class names for num_classes=4'):
        TextClassifierHead(4, 32, str(names), dict(
            type='CLIPTextEncoder', arch='tiny', pretrained=path))
    with pytest.raises(FileNotFoundError, match='class-name file not found'):
        TextClassifierHead(4, 32, str(tmp_path / 'missing.txt'), dict(
            type='CLIPTextEncoder', arch='tiny', pretrained=path))
    with pytest.raises(ValueError, match='needs one "{}"'):
        TextClassifierHead(3, 32, str(names), dict(
            type='CLIPTextEncoder', arch='tiny', pretrained=path),
            templates=['no slot'])


def test_authors_head_is_frozen_cosine_over_tau_to_class_names(
        tiny_clip_file):
    """The authors' head: the raw class names embedded once (no prompt),
    frozen; logits = cosine / tau (tau 0.01). An optimizer step on the model
    around it changes nothing of it."""
    path, clip = tiny_clip_file
    names = ['running', 'jumping rope', 'cooking']
    head = TextClassifierHead(
        num_classes=3, in_channels=32, class_names=names,
        text_encoder=dict(type='CLIPTextEncoder', arch='tiny',
                          pretrained=path),
        templates=CLASS_NAME_ONLY, logit_scale=1 / 0.01, trainable=False)
    with torch.no_grad():
        classes = F.normalize(
            clip.encode_text(OpenCLIPTokenize(77).tokenize(names)), dim=-1)
    assert list(head.parameters()) == []
    torch.testing.assert_close(head.weight, classes, rtol=1e-5, atol=1e-6)
    video = torch.nn.Parameter(torch.randn(4, 32))
    expected = F.normalize(video.detach(), dim=-1) @ classes.t() / 0.01
    torch.testing.assert_close(head(video), expected, rtol=1e-4, atol=1e-4)
    before = head.weight.clone()
    optimizer = torch.optim.AdamW([video], lr=0.1)
    F.cross_entropy(head(video), torch.tensor([0, 1, 2, 0])).backward()
    optimizer.step()
    torch.testing.assert_close(head.weight, before, rtol=0, atol=0)
    probe = torch.randn(2, 32)
    torch.testing.assert_close(
        head(probe), F.normalize(probe, dim=-1) @ classes.t() / 0.01,
        rtol=1e-4, atol=1e-4)
    assert 'weight' in head.state_dict()  # saved with the checkpoint
