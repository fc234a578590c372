"""CLIP's text tower, loaded from the same CLIP checkpoint as the video side.

open_clip's ``TextTransformer`` holds the weights under OpenAI's names
(``token_embedding``, ``positional_embedding``, ``transformer.*``,
``ln_final``, ``text_projection``), so a full CLIP state dict loads into it
strictly after dropping ``visual.*`` and ``logit_scale``. Our forward accepts
token sequences shorter than CLIP's 77 (32 for MSR-VTT): with the causal
mask, the features of a sequence cut after its end-of-text token equal those
of the same sequence padded to 77.
"""
from typing import Optional, Union

import torch
import torch.nn as nn
from mmaction.registry import MODELS
from mmengine.model import BaseModule

from .clip import build_text, get_arch
from .clip_weights import load_text_weights, resolve_pretrained


@MODELS.register_module()
class CLIPTextEncoder(BaseModule):
    """CLIP's text transformer: token ids ``(N, L)`` -> embeddings ``(N, E)``.

    Args:
        arch (str | dict): a name of ``stan_mmaction.models.clip.ARCHS`` or a
            dict of sizes. Defaults to ``'ViT-B/16'``.
        pretrained (str, optional): ``None`` (random init), a CLIP checkpoint
            file (the one the video backbone reads), or an open_clip
            pretrained tag (see ``clip_weights.resolve_pretrained``).
            Defaults to None.
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
        state, quick_gelu, source = resolve_pretrained(arch, pretrained,
                                                       quick_gelu)
        self.text = build_text(arch, quick_gelu=quick_gelu)
        if state is not None:
            load_text_weights(self.text, state, source=source)
        self.out_dim = cfg['embed_dim']
        self.set_grad_checkpointing(grad_checkpointing)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the transformer blocks in the backward pass (open_clip's
        switch of the same name)."""
        self.text.transformer.grad_checkpointing = enable

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
