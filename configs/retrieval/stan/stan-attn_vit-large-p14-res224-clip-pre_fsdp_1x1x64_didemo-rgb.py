# STAN-attn, CLIP ViT-L/14, DiDeMo paragraph retrieval: 64-frame clips, 128
# videos a batch (16 per GPU x 8 GPUs), FSDP with bf16 compute and gradient
# checkpointing on both towers (docs/scaling.md: the memory plan of
# this config). `bash tools/dist_train.sh THIS_CONFIG 8`
_base_ = [
    'stan-attn_vit-base-p32-res224-clip-pre_1x1x64_didemo-rgb.py',
    '../../_base_/strategies/fsdp.py',
]

# FlexibleRunner (with our resume; stan_mmaction/engine/runner.py): what
# runs a strategy.
runner_type = 'StanFlexibleRunner'

model = dict(backbone=dict(arch='ViT-L/14'),
             text_encoder=dict(arch='ViT-L/14'))
train_dataloader = dict(batch_size=16)
optim_wrapper = dict(type='OptimWrapper')
auto_scale_lr = dict(base_batch_size=128)
