# STAN-attn, CLIP ViT-B/16, MSR-VTT 9k / 1k-A; temperature 0.02 for B/16.
_base_ = ['stan_vitb32_msrvtt.py']

model = dict(
    backbone=dict(arch='ViT-B/16'),
    text_encoder=dict(arch='ViT-B/16'),
    head=dict(temperature=0.02))
