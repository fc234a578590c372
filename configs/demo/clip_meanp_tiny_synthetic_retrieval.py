# The retrieval demo's frame-order-blind baseline: CLIP mean pooling
# (CLIP4Clip meanP) through the same code with no STAN layers.
_base_ = ['stan_tiny_synthetic_retrieval.py']

model = dict(backbone=dict(num_stan_layers=0))
