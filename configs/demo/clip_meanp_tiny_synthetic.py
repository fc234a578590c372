# The demo's frame-order-blind baseline: CLIP with mean pooling over frames
# (CLIP4Clip meanP), through the same backbone with no STAN layers.
_base_ = ['stan_tiny_synthetic.py']

model = dict(backbone=dict(num_stan_layers=0))
