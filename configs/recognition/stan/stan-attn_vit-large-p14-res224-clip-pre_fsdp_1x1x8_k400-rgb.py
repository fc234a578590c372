# STAN-attn, CLIP ViT-L/14, Kinetics-400 with FSDP (docs/scaling.md):
# the recipe of the L/14 Kinetics-400 config (8 GPUs x 8 clips, 2x
# accumulation, gradient checkpointing) with parameters, gradients and
# AdamW states sharded over the GPUs and bf16 compute (the strategy's mixed
# precision replaces AMP). `bash tools/dist_train.sh THIS_CONFIG 8`
_base_ = [
    'stan-attn_vit-large-p14-res224-clip-pre_1x1x8_k400-rgb.py',
    '../../_base_/strategies/fsdp.py',
]

# FlexibleRunner (with our resume; stan_mmaction/engine/runner.py): what
# runs a strategy.
runner_type = 'StanFlexibleRunner'

optim_wrapper = dict(type='OptimWrapper')
