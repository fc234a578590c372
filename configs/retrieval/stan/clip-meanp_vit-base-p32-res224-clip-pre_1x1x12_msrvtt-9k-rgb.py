# Baseline: CLIP ViT-B/32 with mean pooling over frames (CLIP4Clip meanP),
# MSR-VTT 9k / 1k-A; same recipe, same code path, no STAN layers.
_base_ = ['stan-attn_vit-base-p32-res224-clip-pre_1x1x12_msrvtt-9k-rgb.py']

model = dict(backbone=dict(num_stan_layers=0))
