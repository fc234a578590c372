# STAN retrieval recipe, LSMDC: the authors' stan_lsmdc_b32_hf.py
# (docs/recipes.md): 100 epochs, lr 1e-6, weight decay 0.2, linear warm-up
# from 0.05x over 10 epochs. Ours on purpose: one cosine to 0 over the
# remaining 90 epochs; theirs has T_max 4.5 epochs over that window, so the
# lr oscillates between 0 and the base lr ten times (plainly accidental).
# The rest as MSR-VTT.
_base_ = ['stan_retrieval_msrvtt_10e.py']

max_epochs = 100
warmup_epochs = 10

train_cfg = dict(max_epochs=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=1e-6, weight_decay=0.2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.05, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs,
         eta_min=0, by_epoch=True, begin=warmup_epochs, end=max_epochs,
         convert_to_iter_based=True)
]
