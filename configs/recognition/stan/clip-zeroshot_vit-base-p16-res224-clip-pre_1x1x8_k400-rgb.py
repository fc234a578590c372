# Zero-shot Kinetics-400 with CLIP ViT-B/16 (OpenAI): mean pooling over
# frames, classes scored by 100 x cosine to prompt embeddings of their names.
# No training: `python tools/test.py THIS_CONFIG none`.
_base_ = ['clip-meanp_vit-base-p16-res224-clip-pre_1x1x8_k400-rgb.py']

model = dict(cls_head=dict(
    _delete_=True, type='TextClassifierHead', num_classes=400,
    in_channels=512, class_names='data/kinetics400/label_map_k400.txt',
    text_encoder=dict(type='CLIPTextEncoder', arch='ViT-B/16',
                      pretrained='openai')))
