# The embedded demo trained with FSDP (docs/scaling.md): the same tiny
# STAN-attn, sharded over the processes of `tools/dist_train.sh CONFIG N`
# (gloo on CPUs), with CLIP's stem frozen (frozen_stages=0) and activation
# checkpointing, as the large configs run. fp32 here (CPUs without native
# bf16); the GPU configs use the base's bf16 mixed precision.
_base_ = ['stan_tiny_synthetic.py', '../_base_/strategies/fsdp.py']

# FlexibleRunner (with our resume; stan_mmaction/engine/runner.py): what
# runs a strategy.
runner_type = 'StanFlexibleRunner'

model = dict(backbone=dict(frozen_stages=0, grad_checkpointing=True))
strategy = dict(model_wrapper=dict(mixed_precision=None))
