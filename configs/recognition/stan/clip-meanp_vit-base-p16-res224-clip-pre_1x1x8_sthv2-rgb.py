# Baseline: CLIP ViT-B/16 with mean pooling over frames, SSv2.
_base_ = ['stan-attn_vit-base-p16-res224-clip-pre_1x1x8_sthv2-rgb.py']

model = dict(backbone=dict(num_stan_layers=0))
