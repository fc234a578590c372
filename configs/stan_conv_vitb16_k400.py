# STAN-conv (3D-conv temporal modules), CLIP ViT-B/16, Kinetics-400.
_base_ = ['stan_vitb16_k400.py']

model = dict(backbone=dict(temporal='conv'))
