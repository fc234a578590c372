# MMAction2's runtime, plus the plugin import every config of ours needs.
_base_ = ['mmaction::_base_/default_runtime.py']

custom_imports = dict(imports=['stan_mmaction'], allow_failed_imports=False)
default_scope = 'mmaction'

# Keep the last 3 epoch checkpoints besides the best one.
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=3))

# RNG states go into checkpoints: a resumed run continues exactly.
custom_hooks = [dict(type='RNGStateHook')]
