# STAN-attn ViT-B/16 on Kinetics-400 with the authors' recognition head:
# the raw class names, embedded once by CLIP's text tower and frozen;
# logits = cosine / tau, tau 0.01. (Ours, trainable and from five prompt
# templates: stan-attn-textinit_...; a linear head: stan-attn_..., both
# beside this file.)
_base_ = ['stan-attn_vit-base-p16-res224-clip-pre_1x1x8_k400-rgb.py']

model = dict(cls_head=dict(
    _delete_=True, type='TextClassifierHead', num_classes=400,
    in_channels=512, class_names='data/kinetics400/label_map_k400.txt',
    text_encoder=dict(type='CLIPTextEncoder', arch='ViT-B/16',
                      pretrained='openai'),
    templates=['{}'], logit_scale=100.0, trainable=False))
