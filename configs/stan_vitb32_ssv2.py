# STAN-attn, CLIP ViT-B/32, SSv2.
_base_ = ['stan_vitb16_ssv2.py']

model = dict(backbone=dict(arch='ViT-B/32'))
