# STAN-conv (3D-conv temporal modules), CLIP ViT-B/16, Kinetics-400.
_base_ = ['stan-attn_vit-base-p16-res224-clip-pre_1x1x8_k400-rgb.py']

model = dict(backbone=dict(temporal='conv'))
