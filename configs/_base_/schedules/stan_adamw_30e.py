# STAN recipe (docs/architecture.md): AdamW (0.9, 0.98), eps 1e-8, no weight
# decay on norms and biases, grad clip 5, mixed precision; CLIP at the base
# lr, the STAN branch and the new classification head at 10x; linear warm-up
# then cosine decay to 0 over the rest of the run. Global batch 128 (8 GPUs x
# 16).
max_epochs = 30
warmup_epochs = 5

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
    # lr_mult_keys scale the lr on top of the norm/bias no-decay rules
    # (plain custom_keys would replace those rules for matched parameters).
    constructor='StanOptimWrapperConstructor',
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        # 'stan_branch' = StanCLIPBackbone.BRANCH_KEY: every branch parameter.
        lr_mult_keys={'stan_branch': 10.0, 'cls_head': 10.0},
        custom_keys={
            'class_embedding': dict(decay_mult=0.0),
            'positional_embedding': dict(decay_mult=0.0),
            'temporal_embedding': dict(decay_mult=0.0),
        }),
    clip_grad=dict(max_norm=5, norm_type=2))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs,
         eta_min=0, by_epoch=True, begin=warmup_epochs, end=max_epochs,
         convert_to_iter_based=True)
]

auto_scale_lr = dict(enable=False, base_batch_size=128)
