# The design card's command: `python tools/train.py
# configs/stan_vitb16_k400.py` (and tools/test.py, tools/dist_train.sh).
# STAN-attn, CLIP ViT-B/16 (OpenAI weights), Kinetics-400, 8x224x224: the
# recipe is the MMAction2-layout config below, unchanged; only the default
# work dir differs (work_dirs/stan_vitb16_k400).
_base_ = [
    'recognition/stan/'
    'stan-attn_vit-base-p16-res224-clip-pre_1x1x8_k400-rgb.py'
]
