# Zero-shot Kinetics-400 with CLIP ViT-B/16 (OpenAI): mean pooling over
# frames, classes scored by 100 x cosine to prompt embeddings of their names.
# No training: python tools/test.py configs/clip_zeroshot_vitb16_k400.py none
_base_ = ['clip_meanp_vitb16_k400.py']

model = dict(cls_head=dict(
    _delete_=True, type='TextClassifierHead', num_classes=400,
    in_channels=512, class_names='data/kinetics400/label_map_k400.txt',
    text_encoder=dict(type='CLIPTextEncoder', arch='ViT-B/16',
                      pretrained='openai')))
