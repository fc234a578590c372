"""Recognition against text: class names, embedded by CLIP's text tower, as
the classifier. Three uses of :class:`TextClassifierHead`:

- zero-shot: prompt templates (:data:`DEFAULT_TEMPLATES`), frozen, no
  training (``configs/recognition/stan/``
  ``clip-zeroshot_vit-base-p16-res224-clip-pre_1x1x8_k400-rgb.py``);
- the authors' recognition head: the raw class names
  (:data:`CLASS_NAME_ONLY`) embedded once and frozen, logits = cosine / tau
  with tau 0.01 (``logit_scale=100``), while the video model trains
  (``configs/recognition/stan/stan-attn-classnames_vit-base-p16-res224-clip-pre_1x1x8_k400-rgb.py``);
- ours: the prompt-ensemble embeddings as the initialisation of a trainable
  classifier (``trainable=True``, ``configs/recognition/stan/``
  ``stan-attn-textinit_vit-base-p16-res224-clip-pre_1x1x8_k400-rgb.py``).
"""
import os.path as osp
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmaction.models.heads.base import BaseHead
from mmaction.registry import MODELS
from mmengine.logging import MMLogger

#: CLIP-style prompts for actions (a few of the Kinetics prompts of CLIP's
#: paper).
DEFAULT_TEMPLATES = (
    'a video of a person {}.',
    'a photo of a person {}.',
    'a video of a person doing {}.',
    'a demonstration of {}.',
    'a video of {}.',
)

#: The authors' recognition classifier: each class name as it is, no prompt.
CLASS_NAME_ONLY = ('{}', )


def read_class_names(source: Union[str, Sequence[str]]) -> List[str]:
    """Class names from a list, or from a label-map file (one name per line,
    MMAction2's ``label_map_k400.txt`` format; ``index name`` lines and
    underscores are tolerated)."""
    if not isinstance(source, str):
        return [str(n) for n in source]
    if not osp.isfile(source):
        raise FileNotFoundError(
            f'class-name file not found: {source} (one name per line, e.g. '
            "MMAction2's tools/data/kinetics/label_map_k400.txt)")
    names = []
    with open(source, encoding='utf-8') as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            head, _, rest = line.partition(' ')
            if head.isdigit() and rest:
                line = rest.strip()
            names.append(line.replace('_', ' '))
    return names


@torch.no_grad()
def text_classifier(text_encoder: nn.Module, class_names: Sequence[str],
                    templates: Sequence[str],
                    context_length: int = 77) -> torch.Tensor:
    """``(num_classes, E)`` unit vectors: for each class, the mean of its
    L2-normalised prompt embeddings, normalised again (CLIP's zero-shot
    recipe)."""
    from ..utils.tokenizer import tokenize
    rows = []
    for name in class_names:
        tokens = tokenize([t.format(name) for t in templates], context_length)
        emb = F.normalize(text_encoder(tokens).float(), dim=-1)
        rows.append(F.normalize(emb.mean(0), dim=-1))
    return torch.stack(rows)


@MODELS.register_module()
class TextClassifierHead(BaseHead):
    """Logits = ``scale * cos(video embedding, class text embedding)``.

    Args:
        num_classes (int): number of classes.
        in_channels (int): video embedding width (CLIP's ``embed_dim``).
        class_names (str | list[str]): names, or a label-map file.
        text_encoder (dict): a ``CLIPTextEncoder`` config; use the same CLIP
            weights as the backbone. Built once to embed the prompts, then
            dropped.
        templates (list[str]): prompt templates with one ``{}``;
            :data:`CLASS_NAME_ONLY` for the raw names (the authors' head).
        logit_scale (float): ``1 / tau``; CLIP's 100 (tau 0.01, the
            authors' value). Defaults to 100.
        trainable (bool): False: a fixed classifier (a buffer, computed once
            at build and never updated: zero-shot, or the authors' head
            while the video model trains); True: a parameter initialised
            from the text (fine-tune it).
        loss_cls (dict): defaults to cross entropy.
        average_clips (str): as MMAction2's heads; defaults to 'prob'.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 class_names: Union[str, Sequence[str]],
                 text_encoder: dict,
                 templates: Sequence[str] = DEFAULT_TEMPLATES,
                 logit_scale: float = 100.0,
                 trainable: bool = False,
                 context_length: int = 77,
                 loss_cls: dict = dict(type='CrossEntropyLoss'),
                 average_clips: Optional[str] = 'prob',
                 init_cfg: Optional[dict] = None,
                 **kwargs):
        super().__init__(num_classes, in_channels, loss_cls=loss_cls,
                         average_clips=average_clips, init_cfg=init_cfg,
                         **kwargs)
        if not templates or any('{}' not in t for t in templates):
            raise ValueError('every template needs one "{}" for the class '
                             f'name, got {list(templates)}')
        self.logit_scale = logit_scale
        self.trainable = trainable
        try:
            names = read_class_names(class_names)
        except FileNotFoundError:
            if text_encoder.get('pretrained') is not None:
                raise
            # Built without weights (tests, FLOP counting): the classifier
            # is meaningless anyway, so placeholder names will do.
            names = [f'class {i}' for i in range(num_classes)]
            MMLogger.get_current_instance().warning(
                f'{class_names} not found; placeholder class names for a '
                'model without weights')
        if len(names) != num_classes:
            raise ValueError(f'{len(names)} class names for num_classes='
                             f'{num_classes}')
        self.class_names = names
        if text_encoder.get('pretrained') is None:
            # No text weights (a model built offline for tests or FLOP
            # counting): embedding prompts with a random text tower would
            # cost minutes at full size and mean nothing.
            MMLogger.get_current_instance().warning(
                'TextClassifierHead: text_encoder has no weights; random '
                'classifier')
            weight = F.normalize(torch.randn(num_classes, in_channels),
                                 dim=-1)
        else:
            encoder = MODELS.build(text_encoder).eval()
            if encoder.out_dim != in_channels:
                raise ValueError(f'text embedding width {encoder.out_dim} '
                                 f'!= in_channels {in_channels}')
            weight = text_classifier(encoder, names, templates,
                                     context_length)
        if trainable:
            self.weight = nn.Parameter(weight)
        else:
            self.register_buffer('weight', weight)

    def init_weights(self) -> None:
        """The classifier comes from the text; nothing to initialise."""

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        if x.dim() != 2:
            x = x.flatten(1)
        return self.logit_scale * F.normalize(x, dim=-1) @ F.normalize(
            self.weight, dim=-1).t().to(x.dtype)
