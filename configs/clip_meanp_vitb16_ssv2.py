# Baseline: CLIP ViT-B/16 with mean pooling over frames, SSv2.
_base_ = ['stan_vitb16_ssv2.py']

model = dict(backbone=dict(num_stan_layers=0))
