# Baseline: CLIP ViT-B/16 with mean pooling over frames (no STAN layers),
# Kinetics-400; same recipe, same code path.
_base_ = ['stan_vitb16_k400.py']

model = dict(backbone=dict(num_stan_layers=0))
