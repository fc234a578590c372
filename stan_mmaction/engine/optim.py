"""An optimizer constructor that gives the STAN branch its own lr while
keeping the no-decay rule for norms and every bias."""
from typing import Dict, List, Optional

import torch.nn as nn
from mmaction.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.optim import DefaultOptimWrapperConstructor


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class StanOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """``DefaultOptimWrapperConstructor`` plus ``paramwise_cfg.lr_mult_keys``.

    MMEngine's ``custom_keys`` *replace* the norm/bias rules for the
    parameters they match, so ``custom_keys={'stan_branch':
    dict(lr_mult=10)}`` would put weight decay back on every bias and
    LayerNorm of the branch. ``lr_mult_keys`` multiplies the learning rate of
    parameters whose name contains a key *on top of* everything else.

    MMEngine's ``bias_decay_mult`` applies to parameters named exactly
    ``bias``; here it also applies to fused biases such as
    ``nn.MultiheadAttention``'s ``in_proj_bias`` (every name ending in
    ``bias``), unless a ``custom_keys`` entry matches the parameter.

    Example:
        >>> optim_wrapper = dict(
        ...     constructor='StanOptimWrapperConstructor',
        ...     optimizer=dict(type='AdamW', lr=2e-6, weight_decay=0.05),
        ...     paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.,
        ...                        lr_mult_keys={'stan_branch': 10.}))
    """

    def __init__(self, optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None):
        paramwise_cfg = dict(paramwise_cfg or {})
        self.lr_mult_keys: Dict[str, float] = dict(
            paramwise_cfg.pop('lr_mult_keys', {}))
        for key, mult in self.lr_mult_keys.items():
            if not isinstance(key, str) or not isinstance(mult, (int, float)):
                raise TypeError('lr_mult_keys maps name substrings to '
                                f'numbers, got {key!r}: {mult!r}')
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def add_params(self, params: List[dict], module: nn.Module,
                   prefix: str = '', **kwargs) -> None:
        first = len(params)
        super().add_params(params, module, prefix=prefix, **kwargs)
        if prefix:
            return  # recursive calls; the top-level call does the rest
        names = {id(p): n for n, p in module.named_parameters()}
        bias_mult = self.paramwise_cfg.get('bias_decay_mult')
        custom_keys = self.paramwise_cfg.get('custom_keys', {})
        for group in params[first:]:
            name = names[id(group['params'][0])]
            last = name.rsplit('.', 1)[-1]  # 'bias' itself: MMEngine's rule
            if (bias_mult is not None and self.base_wd is not None
                    and last.endswith('bias') and last != 'bias'
                    and not any(key in name for key in custom_keys)):
                group['weight_decay'] = self.base_wd * bias_mult
            for key, mult in self.lr_mult_keys.items():
                if key in name:
                    group['lr'] = group.get('lr', self.base_lr) * mult
                    break
