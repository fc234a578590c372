# STAN retrieval recipe, MSR-VTT: the authors' configs/exp/stan/
# stan_msrvtt_{b32,b16}_hf.py setting by setting (docs/recipes.md).
# AdamW (0.9, 0.98), eps 1e-8, weight decay 0.05 except norms, every bias
# and the embeddings; CLIP (both towers) at lr 2e-6, the STAN branch at 10x;
# grad clip 5 (the head's reference_gpus=8 puts gradients on the authors'
# 8-GPU scale, so it clips where theirs did); mixed precision. Global batch
# 128 (8 GPUs x 16).
max_epochs = 10

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs,
                 val_begin=1, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    # GPU; on CPU: --cfg-options optim_wrapper.type=OptimWrapper
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-6, betas=(0.9, 0.98), eps=1e-8,
                   weight_decay=0.05,
                   # torch's fused kernel: the same update in one pass
                   # (a B/16 step on a 2-core CPU 0.08 s, 0.22 s without)
                   fused=True),
    constructor='StanOptimWrapperConstructor',
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,  # StanOptimWrapperConstructor: in_proj_bias too
        lr_mult_keys={'stan_branch': 10.0},
        custom_keys={
            'class_embedding': dict(decay_mult=0.0),
            'positional_embedding': dict(decay_mult=0.0),
            'temporal_embedding': dict(decay_mult=0.0),
            'token_embedding': dict(decay_mult=0.0),
            'logit_scale': dict(decay_mult=0.0),
        }),
    clip_grad=dict(max_norm=5, norm_type=2))

# The authors' effective curve: linear warm-up from 0.05x over the whole
# run. (Their config adds a cosine that begins at epoch 10, when training
# ends, so it never runs; it is left out here.)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.05, by_epoch=True, begin=0,
         end=max_epochs, convert_to_iter_based=True)
]

auto_scale_lr = dict(enable=False, base_batch_size=128)
