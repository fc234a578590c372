# STAN-conv, CLIP ViT-B/32, LSMDC (the paper's conv LSMDC row): the recipe
# of the attention config it inherits (docs/recipes.md).
_base_ = ['stan-attn_vit-base-p32-res224-clip-pre_1x1x12_lsmdc-rgb.py']

model = dict(backbone=dict(temporal='conv'))
