# STAN-attn, CLIP ViT-B/16, Something-Something V2, 16x224x224 (the
# paper's 16-frame row), 6 STAN layers as at 8 frames. 8 videos per GPU,
# gradients accumulated over 2 steps (batch 128 on 8 GPUs).
_base_ = [
    '../../_base_/models/stan_recognizer.py',
    '../../_base_/datasets/sthv2_16x.py',
    '../../_base_/schedules/stan_adamw_30e.py',
    '../../_base_/default_runtime.py',
]

model = dict(backbone=dict(num_stan_layers=6), cls_head=dict(num_classes=174))
train_dataloader = dict(batch_size=8)
optim_wrapper = dict(accumulative_counts=2)
