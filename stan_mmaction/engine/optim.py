"""An optimizer constructor that gives the STAN branch its own lr while
keeping the no-decay rule for norms and every bias."""
from collections import Counter
from typing import Dict, List, Optional

import torch.nn as nn
from mmaction.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.logging import MMLogger, print_log
from mmengine.optim import DefaultOptimWrapperConstructor

from ..utils.log_levels import LinesToDebug

#: MMEngine logs one INFO line per parameter and setting it changes (55
#: for the tiny model, hundreds for B/16) before anything of the user's:
#: those go to DEBUG, and :meth:`StanOptimWrapperConstructor.add_params`
#: logs one summary.
_PARAMWISE_LINES = ('paramwise_options -- ', )


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
        if prefix:  # recursive calls; the top-level call does the rest
            return super().add_params(params, module, prefix=prefix,
                                      **kwargs)
        logger = MMLogger.get_current_instance()
        quiet = LinesToDebug(_PARAMWISE_LINES)
        logger.addFilter(quiet)
        try:
            super().add_params(params, module, prefix=prefix, **kwargs)
        finally:
            logger.removeFilter(quiet)
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
        self._log_summary(params[first:])

    def _log_summary(self, groups: List[dict]) -> None:
        """One line for what ``paramwise_cfg`` did (MMEngine's per-parameter
        lines are at DEBUG)."""
        lrs = Counter(g.get('lr', self.base_lr) for g in groups)
        decays = Counter(g.get('weight_decay', self.base_wd) for g in groups)
        count = len(groups)

        def share(counter, what):
            return ', '.join(f'{n} at {what} {value:g}' if value is not None
                             else f'{n} without {what}'
                             for value, n in sorted(
                                 counter.items(),
                                 key=lambda kv: (kv[0] is None, kv[0] or 0)))
        print_log(f'paramwise_cfg: {count} parameter tensors; lr: '
                  f'{share(lrs, "lr")}; weight decay: '
                  f'{share(decays, "weight_decay")} (each tensor\'s '
                  "settings at log_level='DEBUG')", logger='current')
