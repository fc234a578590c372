# STAN-attn, CLIP ViT-L/14, Kinetics-400 with DeepSpeed ZeRO-2
# (docs/scaling.md; needs `pip install deepspeed` and CUDA; not run by us).
# DeepSpeed owns gradient clipping (strategy.gradient_clipping = the
# recipe's 5) and accumulation; the optimizer and its parameter-wise
# learning rates are the recipe's.
_base_ = ['stan-attn_vit-large-p14-res224-clip-pre_1x1x8_k400-rgb.py',
          '../../_base_/strategies/deepspeed_zero2.py']

# FlexibleRunner (with our resume; stan_mmaction/engine/runner.py): what
# runs a strategy.
runner_type = 'StanFlexibleRunner'

strategy = dict(gradient_accumulation_steps=2)
optim_wrapper = dict(
    _delete_=True, type='DeepSpeedOptimWrapper',
    constructor='StanOptimWrapperConstructor',
    optimizer={{_base_.optim_wrapper.optimizer}},
    paramwise_cfg={{_base_.optim_wrapper.paramwise_cfg}})
