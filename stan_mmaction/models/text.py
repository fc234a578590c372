"""CLIP's text tower, loaded from the same CLIP checkpoint as the video side.

open_clip's ``TextTransformer`` holds the weights under OpenAI's names
(``token_embedding``, ``positional_embedding``, ``transformer.*``,
``ln_final``, ``text_projection``), so a full CLIP state dict loads into it
strictly after dropping ``visual.*`` and ``logit_scale``. Our forward accepts
token sequences shorter than CLIP's 77 (32 for MSR-VTT): with the causal
mask, the features of a sequence cut after its end-of-text token equal those
of the same sequence padded to 77.
"""
import os.path as osp
from typing import Dict, Optional, Union

import open_clip
import torch
import torch.nn as nn
from mmaction.registry import MODELS
from mmengine.model import BaseModule
from open_clip.model import _build_text_tower

from .clip import get_arch, load_clip_state_dict, strict_load

#: keys of a full CLIP state dict that belong to neither tower.
_SHARED_KEYS = ('logit_scale', 'logit_bias')


def load_text_weights(text: nn.Module, state: Dict[str, torch.Tensor],
                      source: str = 'checkpoint') -> None:
    """Strictly load the text-tower part of a full CLIP state dict.

    Raises:
        CheckpointMismatchError: naming every missing, unexpected and
            shape-mismatched key; nothing is loaded in that case.
    """
    sub = {k: v for k, v in state.items()
           if not k.startswith('visual.') and k not in _SHARED_KEYS}
    strict_load(text, sub, f'{source} does not fit this CLIP text model')


@MODELS.register_module()
class CLIPTextEncoder(BaseModule):
    """CLIP's text transformer: token ids ``(N, L)`` -> embeddings ``(N, E)``.

    Args:
        arch (str | dict): a name of ``stan_mmaction.models.clip.ARCHS`` or a
            dict of sizes. Defaults to ``'ViT-B/16'``.
        pretrained (str, optional): ``None`` (random init), a CLIP checkpoint
            file (the one the video backbone reads), or an open_clip
            pretrained tag. Defaults to None.
        quick_gelu (bool, optional): QuickGELU activations; defaults to the
            tag's setting for tags, else True (OpenAI weights).
        grad_checkpointing (bool): recompute blocks in the backward pass.
        init_cfg (dict, optional): MMEngine init config.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'ViT-B/16',
                 pretrained: Optional[str] = None,
                 quick_gelu: Optional[bool] = None,
                 grad_checkpointing: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        cfg = get_arch(arch)
        self.context_length = cfg['text']['context_length']
        if pretrained is None or osp.isfile(str(pretrained)):
            self.text = _build_text_tower(
                cfg['embed_dim'], cfg['text'],
                quick_gelu=True if quick_gelu is None else quick_gelu)
            if pretrained is not None:
                load_text_weights(self.text, load_clip_state_dict(pretrained),
                                  source=str(pretrained))
        else:
            name = cfg['open_clip_name']
            tags = open_clip.list_pretrained_tags_by_model(name) if name \
                else []
            if pretrained not in tags:
                raise ValueError(
                    f'pretrained={pretrained!r} is neither a file nor an '
                    f'open_clip pretrained tag of arch {arch!r}; known tags: '
                    f'{tags or "none"}')
            if quick_gelu is None:
                quick_gelu = open_clip.get_pretrained_cfg(
                    name, pretrained).get('quick_gelu', False)
            model = open_clip.create_model(name, pretrained=pretrained,
                                           force_quick_gelu=quick_gelu)
            self.text = _build_text_tower(cfg['embed_dim'], cfg['text'],
                                          quick_gelu=quick_gelu)
            load_text_weights(self.text, model.state_dict(), source=name)
        self.text.transformer.grad_checkpointing = grad_checkpointing
        self.out_dim = cfg['embed_dim']

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens``: ``(N, L)`` ids with ``L <= context_length``, padded with
        0 after the end-of-text token (the largest id of each row)."""
        if tokens.dim() != 2:
            raise ValueError(f'text tokens must be (N, L), got shape '
                             f'{tuple(tokens.shape)}')
        length = tokens.shape[1]
        if not 1 <= length <= self.context_length:
            raise ValueError(f'text length {length} is outside [1, '
                             f'{self.context_length}] of this CLIP')
        t = self.text
        x = t.token_embedding(tokens) + t.positional_embedding[:length]
        mask = None if t.attn_mask is None else t.attn_mask[:length, :length]
        x = t.transformer(x, attn_mask=mask)
        x = t.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(-1)]
        if isinstance(t.text_projection, nn.Linear):
            return t.text_projection(x)
        return x @ t.text_projection

