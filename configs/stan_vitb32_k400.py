# STAN-attn, CLIP ViT-B/32, Kinetics-400.
_base_ = ['stan_vitb16_k400.py']

model = dict(backbone=dict(arch='ViT-B/32'))
