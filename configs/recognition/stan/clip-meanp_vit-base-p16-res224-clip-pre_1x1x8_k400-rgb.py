# Baseline: CLIP ViT-B/16 with mean pooling over frames (no STAN layers),
# Kinetics-400; same recipe, same code path.
_base_ = ['stan-attn_vit-base-p16-res224-clip-pre_1x1x8_k400-rgb.py']

model = dict(backbone=dict(num_stan_layers=0))
