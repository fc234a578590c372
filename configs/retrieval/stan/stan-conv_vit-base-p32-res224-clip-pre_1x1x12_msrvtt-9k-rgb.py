# STAN-conv (3D-convolution temporal modules), CLIP ViT-B/32, MSR-VTT 9k /
# 1k-A: the paper's conv row; the recipe of the attention config it
# inherits (docs/recipes.md).
_base_ = ['stan-attn_vit-base-p32-res224-clip-pre_1x1x12_msrvtt-9k-rgb.py']

model = dict(backbone=dict(temporal='conv'))
