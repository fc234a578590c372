# STAN video-text retriever: StanCLIPBackbone (video) + CLIP's text tower
# from the same CLIP weights + a retrieval head (cosine similarity,
# temperature, symmetric InfoNCE with features gathered across GPUs with
# gradients). Leaf configs set arch, frames, temperature and weights.
clip_arch = 'ViT-B/32'
clip_weights = 'openai'  # an open_clip tag, or a CLIP checkpoint file

model = dict(
    type='StanVideoTextRetriever',
    backbone=dict(
        type='StanCLIPBackbone',
        arch=clip_arch,
        num_stan_layers=4,
        temporal='attn',
        pretrained=clip_weights,
        drop_path_rate=0.1,
        out='proj'),
    text_encoder=dict(type='CLIPTextEncoder', arch=clip_arch,
                      pretrained=clip_weights),
    # Temperature 0.01 for B/32, 0.02 for B/16, 0.05 DiDeMo (docs/recipes.md);
    # fixed. reference_gpus=8: the loss is (CE_t2v + CE_v2t) / 8, so the
    # (exact, all-gathered) gradient equals the authors' on their 8 GPUs at
    # any world size and clip_grad 5 clips where theirs did.
    head=dict(type='VideoTextRetrievalHead', temperature=0.01,
              reference_gpus=8),
    # CLIP's mean/std on 0-255 RGB; videos (B, views, 3, T, H, W).
    data_preprocessor=dict(type='RetrievalDataPreprocessor'))
