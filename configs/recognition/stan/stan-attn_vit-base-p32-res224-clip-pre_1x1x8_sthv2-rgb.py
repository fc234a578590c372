# STAN-attn, CLIP ViT-B/32, SSv2.
_base_ = ['stan-attn_vit-base-p16-res224-clip-pre_1x1x8_sthv2-rgb.py']

model = dict(backbone=dict(arch='ViT-B/32'))
