# STAN-attn ViT-B/16 on Kinetics-400 with a trainable classifier initialised
# from the class names' prompt-ensemble text embeddings (five templates,
# DEFAULT_TEMPLATES) and fine-tuned at 10x lr: ours. The authors' head
# (raw class names, embedded once, frozen) is stan-attn-classnames_... beside
# this file.
_base_ = ['stan-attn_vit-base-p16-res224-clip-pre_1x1x8_k400-rgb.py']

model = dict(cls_head=dict(
    _delete_=True, type='TextClassifierHead', num_classes=400,
    in_channels=512, class_names='data/kinetics400/label_map_k400.txt',
    text_encoder=dict(type='CLIPTextEncoder', arch='ViT-B/16',
                      pretrained='openai'), trainable=True))
