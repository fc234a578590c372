# The headline Something-Something V2 config by its short name:
# STAN-attn, CLIP ViT-B/16, SSv2, 8x224x224, 6 STAN layers. The recipe is
# the MMAction2-layout config below, unchanged; only the default work dir
# differs (work_dirs/stan_vitb16_ssv2).
_base_ = [
    'recognition/stan/'
    'stan-attn_vit-base-p16-res224-clip-pre_1x1x8_sthv2-rgb.py'
]
