# STAN-attn, CLIP ViT-B/16, Something-Something V2, 8x224x224.
_base_ = [
    '../../_base_/models/stan_recognizer.py',
    '../../_base_/datasets/sthv2_8x.py',
    '../../_base_/schedules/stan_adamw_30e.py',
    '../../_base_/default_runtime.py',
]

model = dict(cls_head=dict(num_classes=174))
