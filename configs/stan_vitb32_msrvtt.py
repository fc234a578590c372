# The headline retrieval config by its short name: STAN-attn, CLIP
# ViT-B/32, MSR-VTT 9k / 1k-A, 12 frames. The recipe is the
# MMAction2-layout config below, unchanged; only the default work dir
# differs (work_dirs/stan_vitb32_msrvtt).
_base_ = [
    'retrieval/stan/'
    'stan-attn_vit-base-p32-res224-clip-pre_1x1x12_msrvtt-9k-rgb.py'
]
