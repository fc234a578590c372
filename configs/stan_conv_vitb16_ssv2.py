# STAN-conv (3D-conv temporal modules), CLIP ViT-B/16, SSv2.
_base_ = ['stan_vitb16_ssv2.py']

model = dict(backbone=dict(temporal='conv'))
